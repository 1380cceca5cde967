//! Kubernetes built from Debian's own `kubernetes` source package with Debian's Go, into a
//! folder laid out like envtest's `KUBEBUILDER_ASSETS`: kube-apiserver and etcd side by side,
//! with the kubelet, kube-proxy, the controller manager, the scheduler, kubectl and a pause
//! program. The folder is cached under `<cache>/xtask/kubernetes/v<version>-<key>`, where the key
//! covers everything that went into it (the source package and its checksum, the Go version,
//! the reflect2 that replaces the vendored one, and this recipe), so a changed input builds anew
//! and an unchanged one is found again in a fraction of a second.
//!
//! What the build needs Debian to differ from upstream's, each seen failing without it:
//! GOPATH mode (module mode stops at "updates to go.mod needed, disabled by -mod=vendor"),
//! `make gen_openapi` first (the tarball lacks `zz_generated.openapi.go`), and Debian's reflect2
//! 1.0.2 in place of the vendored 1.0.1 (with Go >= 1.18 the API server panics in
//! `reflect.mapiterinit` the first time a custom resource is watched).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};

use crate::Error;

/// The programs built from the source package, as `cmd/<name>`.
pub const COMPONENTS: [&str; 6] =
    ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"];

/// Every file of a complete assets folder.
pub const FILES: [&str; 8] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "etcd",
    "pause",
];

/// The variable naming a folder of prebuilt binaries to use instead of building (same layout).
pub const ASSETS_VAR: &str = "XTASK_KUBE_ASSETS";

/// Changes whenever the build's steps or patches change, so the key does too.
const RECIPE: &str = "recipe 1: GOPATH mode, gen_openapi, vendored reflect2 replaced by Debian's, \
    CGO_ENABLED=0, -ldflags '-s -w' with the version stamped, etcd linked from etcd-server, pause from pause.go";

/// The sandbox program every pod's first container runs: waits for SIGINT or SIGTERM.
const PAUSE_GO: &str = r#"// The devcluster's pause program: a pod's sandbox, waiting until it is told to stop.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
"#;

/// Where Debian's etcd-server puts etcd.
const ETCD: &str = "/usr/bin/etcd";
/// Where Debian's reflect2 1.0.2 source lives.
const REFLECT2: &str = "/usr/share/gocode/src/github.com/modern-go/reflect2";

/// What a build is made of: the cache key's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// The source package's version, e.g. `1.20.5+really1.20.2-1.1+deb12u1`.
    pub source_version: String,
    /// The SHA-256 of its `.dsc`, as apt lists it.
    pub dsc_sha256: String,
    /// `go version`'s answer.
    pub go_version: String,
    /// The version of Debian's golang-github-modern-go-reflect2-dev.
    pub reflect2_version: String,
}

impl Inputs {
    /// The inputs on this machine, asked of apt, Go and dpkg (no download).
    pub fn probe() -> Result<Self, Error> {
        check_packages()?;
        let sh = shell()?;
        let uris = cmd!(sh, "apt-get source --print-uris kubernetes").quiet().ignore_status().output();
        let uris = uris.map_err(Error::cmd("asking apt for the kubernetes source package"))?;
        let text = String::from_utf8_lossy(&uris.stdout).into_owned();
        let Some((source_version, dsc_sha256)) = parse_dsc_line(&text) else {
            let said = String::from_utf8_lossy(&uris.stderr).trim().to_string();
            return Err(Error::NoSourcePackage { detail: if said.is_empty() { text } else { said } });
        };
        let go_version =
            cmd!(sh, "go version").quiet().read().map_err(Error::cmd("asking go its version"))?;
        let format = "${Version}";
        let reflect2_version = cmd!(sh, "dpkg-query -W -f {format} golang-github-modern-go-reflect2-dev")
            .quiet()
            .read()
            .map_err(Error::cmd("asking dpkg reflect2's version"))?;
        Ok(Inputs { source_version, dsc_sha256, go_version, reflect2_version })
    }

    /// The cache key: 16 hex digits over every input and the recipe.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            RECIPE,
            PAUSE_GO,
            &self.source_version,
            &self.dsc_sha256,
            &self.go_version,
            &self.reflect2_version,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let digest = h.finalize();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The upstream Kubernetes version inside the package, e.g. `1.20.2`.
    pub fn kube_version(&self) -> String {
        kube_version(&self.source_version)
    }

    /// The folder these inputs build into, under `root`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(format!("v{}-{}", self.kube_version(), self.key()))
    }
}

/// The upstream version in a Debian version: the part after `really` when the package says so
/// (`1.20.5+really1.20.2-1.1` is 1.20.2), without the epoch and Debian revision.
pub fn kube_version(debian: &str) -> String {
    let upstream = debian.split_once(':').map_or(debian, |(_, v)| v);
    let upstream = upstream.rsplit_once('-').map_or(upstream, |(u, _)| u);
    let upstream = upstream.rsplit_once("really").map_or(upstream, |(_, v)| v);
    upstream.split('+').next().unwrap_or(upstream).to_string()
}

/// The version and SHA-256 of the `.dsc` in `apt-get source --print-uris`' answer.
pub fn parse_dsc_line(text: &str) -> Option<(String, String)> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let (_uri, file, _size, sum) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let version = file.strip_prefix("kubernetes_")?.strip_suffix(".dsc")?;
        let sha = sum.strip_prefix("SHA256:")?;
        Some((version.to_string(), sha.to_string()))
    })
}

/// What the build needs, and the Debian package of each: (what to look for, package).
const NEEDS: [(&str, &str); 8] = [
    ("go", "golang-go"),
    ("dpkg-source", "dpkg-dev"),
    ("rsync", "rsync"),
    ("make", "make"),
    ("apt-get", "apt"),
    (REFLECT2, "golang-github-modern-go-reflect2-dev"),
    (ETCD, "etcd-server"),
    ("gpgv", "gpgv"),
];

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// Every program or file the build needs that this machine lacks, with its package.
pub fn missing_packages() -> Vec<(String, String)> {
    NEEDS
        .iter()
        .filter(|(what, _)| if what.starts_with('/') { !Path::new(what).exists() } else { !on_path(what) })
        .map(|(what, package)| (what.to_string(), package.to_string()))
        .collect()
}

fn check_packages() -> Result<(), Error> {
    let missing = missing_packages();
    if missing.is_empty() { Ok(()) } else { Err(Error::MissingPackages { missing }) }
}

fn shell() -> Result<Shell, Error> {
    Shell::new().map_err(Error::cmd("starting a shell"))
}

/// Where built folders are kept: `$XDG_CACHE_HOME/xtask/kubernetes`, else `~/.cache/...`.
pub fn cache_root() -> PathBuf {
    envtest::built_root()
}

/// Whether `dir` holds every file of an assets folder.
pub fn complete(dir: &Path) -> bool {
    FILES.iter().all(|f| dir.join(f).is_file())
}

/// The assets folder: `$XTASK_KUBE_ASSETS` when set (it must be complete), else the cached
/// build for this machine's inputs, built first when absent. `progress` hears a line now and
/// then while it builds.
pub fn find_or_build(progress: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os(ASSETS_VAR).filter(|v| !v.is_empty()).map(PathBuf::from) {
        if !complete(&dir) {
            let missing: Vec<_> = FILES.iter().filter(|f| !dir.join(f).is_file()).copied().collect();
            return Err(Error::State {
                path: dir,
                reason: format!("{ASSETS_VAR} names a folder without {}", missing.join(", ")),
            });
        }
        return Ok(dir);
    }
    let inputs = Inputs::probe()?;
    let dir = inputs.dir(&cache_root());
    if complete(&dir) {
        return Ok(dir);
    }
    build(&inputs, &dir, progress)?;
    Ok(dir)
}

/// The build's record, kept beside the binaries.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    inputs: Inputs,
    key: String,
    seconds: u64,
}

/// Builds `inputs` into `dir`: in a work folder beside it, renamed into place only when whole,
/// so an interrupted build never leaves a folder that looks complete.
pub fn build(inputs: &Inputs, dir: &Path, progress: &dyn Fn(&str)) -> Result<(), Error> {
    let started = Instant::now();
    let root = dir.parent().expect("an assets folder has a parent");
    std::fs::create_dir_all(root).map_err(Error::io("creating", root))?;
    remove_stale_work(root);
    let work = root.join(format!(".work-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(work.clone());
    let out = work.join("out");
    for d in [&out, &work.join("gopath/src/k8s.io"), &work.join("home"), &work.join("pause")] {
        std::fs::create_dir_all(d).map_err(Error::io("creating", d))?;
    }
    let step = Steps { work: &work, progress, started };
    progress(&format!(
        "building Kubernetes {} from Debian's source package {} with {} (once; about 8 minutes on 2 cores)",
        inputs.kube_version(),
        inputs.source_version,
        inputs.go_version.trim_start_matches("go version ")
    ));
    step.run(
        "apt-get source",
        "source.log",
        &work,
        &["apt-get", "source", "--download-only", "kubernetes"],
        &[],
    )?;
    let dsc = format!(
        "kubernetes_{}.dsc",
        inputs.source_version.split_once(':').map_or(&*inputs.source_version, |(_, v)| v)
    );
    step.run("dpkg-source -x", "extract.log", &work, &["dpkg-source", "-x", &dsc, "src"], &[])?;
    let src = work.join("src");
    let vendored = src.join("vendor/github.com/modern-go/reflect2");
    std::fs::remove_dir_all(&vendored).map_err(Error::io("removing the vendored reflect2", &vendored))?;
    copy_tree(Path::new(REFLECT2), &vendored)?;
    let linked = work.join("gopath/src/k8s.io/kubernetes");
    std::os::unix::fs::symlink(&src, &linked).map_err(Error::io("linking", &linked))?;
    let gopath = work.join("gopath").display().to_string();
    let gocache = work.join("gocache").display().to_string();
    let home = work.join("home").display().to_string();
    let env: Vec<(&str, &str)> = vec![
        ("GOPATH", &gopath),
        ("GOCACHE", &gocache),
        ("HOME", &home),
        ("GO111MODULE", "off"),
        ("CGO_ENABLED", "0"),
        ("GOFLAGS", ""),
    ];
    step.run("make gen_openapi", "gen_openapi.log", &linked, &["make", "gen_openapi"], &env)?;
    let version = format!("v{}", inputs.kube_version());
    let mut ldflags = String::from("-s -w");
    let (major, minor) = {
        let mut it = inputs.kube_version().split('.').map(str::to_string).collect::<Vec<_>>().into_iter();
        (it.next().unwrap_or_default(), it.next().unwrap_or_default())
    };
    for pkg in [
        "k8s.io/kubernetes/vendor/k8s.io/component-base/version",
        "k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version",
    ] {
        ldflags.push_str(&format!(
            " -X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor} -X {pkg}.gitTreeState=clean"
        ));
    }
    let out_arg = format!("{}/", out.display());
    let mut argv = vec!["go", "build", "-v", "-ldflags", &ldflags, "-o", &out_arg];
    let packages: Vec<String> = COMPONENTS.iter().map(|c| format!("k8s.io/kubernetes/cmd/{c}")).collect();
    argv.extend(packages.iter().map(String::as_str));
    step.run("go build", "go-build.log", &linked, &argv, &env)?;
    let pause_src = work.join("pause/pause.go");
    std::fs::write(&pause_src, PAUSE_GO).map_err(Error::io("writing", &pause_src))?;
    let pause_out = out.join("pause").display().to_string();
    step.run(
        "go build pause",
        "pause.log",
        &work.join("pause"),
        &["go", "build", "-ldflags", "-s -w", "-o", &pause_out, "pause.go"],
        &env,
    )?;
    let etcd = out.join("etcd");
    std::os::unix::fs::symlink(ETCD, &etcd).map_err(Error::io("linking", &etcd))?;
    let record = Record { inputs: inputs.clone(), key: inputs.key(), seconds: started.elapsed().as_secs() };
    let json = serde_json::to_string_pretty(&record).expect("the record serializes");
    std::fs::write(out.join("build.json"), json).map_err(Error::io("writing", out.join("build.json")))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(Error::io("replacing the incomplete", dir))?;
    }
    std::fs::rename(&out, dir).map_err(Error::io("keeping", dir))?;
    progress(&format!(
        "built Kubernetes {} in {}: {}",
        inputs.kube_version(),
        mmss(started.elapsed()),
        dir.display()
    ));
    Ok(())
}

/// A work folder of a build whose process is gone is removed by the next build.
fn remove_stale_work(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(".work-").and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !procs::pid_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    let sh = shell()?;
    cmd!(sh, "cp -r {from} {to}").quiet().run().map_err(Error::cmd(format!("copying {}", from.display())))
}

fn mmss(d: Duration) -> String {
    format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
}

/// The build's steps: each a process with its output in a log under the work folder.
struct Steps<'a> {
    work: &'a Path,
    progress: &'a dyn Fn(&str),
    started: Instant,
}

/// How often a running step says it is still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

impl Steps<'_> {
    /// Runs `argv` in `dir` with `env` added, its output in `log`; a progress line every 15 s
    /// (with the count of packages compiled for `go build -v`); a failure keeps the log.
    fn run(
        &self,
        step: &str,
        log: &str,
        dir: &Path,
        argv: &[&str],
        env: &[(&str, &str)],
    ) -> Result<(), Error> {
        let log = self.work.join(log);
        let mut command = procs::command(argv[0]);
        command.args(&argv[1..]).current_dir(dir).envs(env.iter().copied());
        procs::log_output(&mut command, &log, procs::OpenLog::Truncate)?;
        procs::own_process_group(&mut command);
        let mut child = procs::spawn(command, procs::Tie::DieWithUs(nix::sys::signal::Signal::SIGKILL))?;
        let step_started = Instant::now();
        let mut said = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(Error::io("waiting for", &log))? {
                break status;
            }
            if said.elapsed() >= PROGRESS_EVERY {
                said = Instant::now();
                let compiled = if step == "go build" {
                    let lines = std::fs::read_to_string(&log).map(|t| t.lines().count()).unwrap_or(0);
                    format!(", {lines} packages compiled")
                } else {
                    String::new()
                };
                (self.progress)(&format!(
                    "building Kubernetes: {step}, {} so far{compiled} (total {})",
                    mmss(step_started.elapsed()),
                    mmss(self.started.elapsed())
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        if status.success() {
            return Ok(());
        }
        // Kept for the user: the work folder goes with the failed build.
        let kept =
            cache_root().join(format!("failed-{}", log.file_name().unwrap_or_default().to_string_lossy()));
        let _ = std::fs::create_dir_all(cache_root());
        let _ = std::fs::copy(&log, &kept);
        Err(Error::BuildStep {
            step: step.to_string(),
            status: status.to_string(),
            log: kept,
            tail: procs::log_tail(&log, 20),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_version_is_read_from_debians() {
        assert_eq!(kube_version("1.20.5+really1.20.2-1.1+deb12u1"), "1.20.2");
        assert_eq!(kube_version("1:1.28.3-2"), "1.28.3");
        assert_eq!(kube_version("1.20.2"), "1.20.2");
    }

    #[test]
    fn the_dsc_is_found_in_apts_answer() {
        let answer = "Reading package lists...\nNeed to get 34.5 MB of source archives.\n\
            'http://deb.debian.org/debian/pool/main/k/kubernetes/kubernetes_1.20.5%2breally1.20.2-1.1%2bdeb12u1.dsc' kubernetes_1.20.5+really1.20.2-1.1+deb12u1.dsc 1973 SHA256:19fa1da5aefcef673894ac9511986bd98a14410cf8eea0b626613c30df435257\n\
            'http://deb.debian.org/debian/pool/main/k/kubernetes/kubernetes_1.20.5%2breally1.20.2.orig.tar.gz' kubernetes_1.20.5+really1.20.2.orig.tar.gz 34428927 SHA256:b83c\n";
        let (version, sha) = parse_dsc_line(answer).unwrap();
        assert_eq!(version, "1.20.5+really1.20.2-1.1+deb12u1");
        assert!(sha.starts_with("19fa1da5"));
        assert_eq!(parse_dsc_line("E: You must put some 'deb-src' URIs in your sources.list\n"), None);
    }

    #[test]
    fn every_input_moves_the_key() {
        let base = Inputs {
            source_version: "1.20.5+really1.20.2-1.1+deb12u1".into(),
            dsc_sha256: "19fa".into(),
            go_version: "go version go1.19.8 linux/amd64".into(),
            reflect2_version: "1.0.2-2".into(),
        };
        let key = base.key();
        assert_eq!(key.len(), 16);
        let changed = [
            Inputs { source_version: "1.20.5+really1.20.2-1.1+deb12u2".into(), ..base.clone() },
            Inputs { dsc_sha256: "19fb".into(), ..base.clone() },
            Inputs { go_version: "go version go1.19.9 linux/amd64".into(), ..base.clone() },
            Inputs { reflect2_version: "1.0.2-3".into(), ..base.clone() },
        ];
        for other in changed {
            assert_ne!(other.key(), key, "{other:?}");
        }
        assert_eq!(base.dir(Path::new("/c")), PathBuf::from(format!("/c/v1.20.2-{key}")));
    }

    #[test]
    fn a_folder_missing_a_binary_is_not_complete() {
        let dir = tempfile::tempdir().unwrap();
        for f in FILES {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        assert!(complete(dir.path()));
        std::fs::remove_file(dir.path().join("kube-proxy")).unwrap();
        assert!(!complete(dir.path()));
    }
}
