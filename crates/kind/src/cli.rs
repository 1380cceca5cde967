//! The `kind` CLI and the one engine command it needs, each as an [`Invocation`] and a typed run.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::STDERR_LINES;
use crate::images::parse_node_images;
use crate::{Error, Invocation, KIND_PROVIDER_VAR, Provider};

/// The variable naming the `kind` binary (a name on `PATH` or a path; default `kind`).
pub const KIND_VAR: &str = "KIND";

/// Which `kind` binary to run, on which provider, with which `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    binary: String,
    provider: Provider,
    search_path: Option<OsString>,
}

/// What `kind create cluster` is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCluster {
    /// The cluster name (`--name`); node containers are named `<name>-control-plane`, ….
    pub name: String,
    /// The kind config file (`--config`).
    pub config: PathBuf,
    /// The node image (`--image`), replacing any `image:` in the config; e.g. [`crate::NODE_IMAGE`].
    pub image: Option<String>,
    /// How long kind waits for the control plane (`--wait`); `None` leaves kind's default (no wait).
    pub wait: Option<Duration>,
    /// Where kind writes the cluster's kubeconfig (`--kubeconfig`); `None` means `$KUBECONFIG` or
    /// `~/.kube/config`, which kind edits and switches the current context of.
    pub kubeconfig: Option<PathBuf>,
}

impl CreateCluster {
    /// A cluster `name` from config file `config`, with kind's defaults for everything else.
    pub fn new(name: impl Into<String>, config: impl Into<PathBuf>) -> Self {
        Self { name: name.into(), config: config.into(), image: None, wait: None, kubeconfig: None }
    }
}

/// A cluster's kubeconfig: credentials for its API server, so `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Kubeconfig(String);

impl Kubeconfig {
    /// The kubeconfig YAML, for writing to a file with restrictive permissions.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kubeconfig YAML, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kubeconfig(<redacted, {} bytes>)", self.0.len())
    }
}

/// The cluster names in `kind get clusters` stdout, one per line.
///
/// kind prints "No kind clusters found." on stderr with exit status 0; it is skipped here too in
/// case a version prints it on stdout, since it is never a cluster name.
pub fn parse_clusters(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "No kind clusters found.")
        .map(String::from)
        .collect()
}

impl Kind {
    /// `binary` (a name on `PATH` or a path) driving `provider`.
    pub fn new(binary: impl Into<String>, provider: Provider) -> Self {
        Self { binary: binary.into(), provider, search_path: None }
    }

    /// Runs every command with `PATH` set to `path`, for that child only.
    ///
    /// It also decides where a bare binary name is found, so tests can put a fake `kind` or engine
    /// first without changing the test process's environment, which parallel tests share.
    pub fn with_search_path(mut self, path: impl Into<OsString>) -> Self {
        self.search_path = Some(path.into());
        self
    }

    /// The binary from [`KIND_VAR`] and the provider from [`Provider::detect`] on this process's
    /// environment and `PATH`.
    pub fn from_env() -> Result<Self, Error> {
        let var = |key: &str| std::env::var(key).ok();
        let binary = var(KIND_VAR).map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
        let provider = Provider::detect(var, |program| on_path(program, None))?;
        Ok(Self::new(binary.unwrap_or_else(|| "kind".into()), provider))
    }

    /// The `kind` binary.
    pub fn binary(&self) -> &str {
        &self.binary
    }

    /// The provider kind is told to use.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// A `kind` invocation. The provider is always set, for docker too: an inherited
    /// `KIND_EXPERIMENTAL_PROVIDER` would otherwise override the provider chosen here.
    fn kind_cmd(&self, args: Vec<String>) -> Invocation {
        let mut invocation = Invocation::new(self.binary.clone(), args);
        invocation.env.push((KIND_PROVIDER_VAR.into(), self.provider.as_str().into()));
        invocation
    }

    /// `kind create cluster --name N --config FILE [--image IMAGE] [--wait D] [--kubeconfig FILE]`.
    pub fn create_cluster_cmd(&self, spec: &CreateCluster) -> Invocation {
        let mut args = strings(["create", "cluster", "--name", &spec.name, "--config"]);
        args.push(path_arg(&spec.config));
        if let Some(image) = &spec.image {
            args.extend(strings(["--image", image]));
        }
        if let Some(wait) = spec.wait {
            args.extend(["--wait".to_string(), go_duration(wait)]);
        }
        if let Some(kubeconfig) = &spec.kubeconfig {
            args.extend(["--kubeconfig".to_string(), path_arg(kubeconfig)]);
        }
        self.kind_cmd(args)
    }

    /// `kind delete cluster --name N`.
    pub fn delete_cluster_cmd(&self, name: &str) -> Invocation {
        self.kind_cmd(strings(["delete", "cluster", "--name", name]))
    }

    /// `kind get clusters`.
    pub fn get_clusters_cmd(&self) -> Invocation {
        self.kind_cmd(strings(["get", "clusters"]))
    }

    /// `kind get kubeconfig --name N`.
    pub fn get_kubeconfig_cmd(&self, name: &str) -> Invocation {
        self.kind_cmd(strings(["get", "kubeconfig", "--name", name]))
    }

    /// `kind load image-archive ARCHIVE --name N`.
    pub fn load_image_archive_cmd(&self, archive: &Path, name: &str) -> Invocation {
        let mut args = strings(["load", "image-archive"]);
        args.push(path_arg(archive));
        args.extend(strings(["--name", name]));
        self.kind_cmd(args)
    }

    /// `kind export logs DIR --name N`.
    pub fn export_logs_cmd(&self, dir: &Path, name: &str) -> Invocation {
        let mut args = strings(["export", "logs"]);
        args.push(path_arg(dir));
        args.extend(strings(["--name", name]));
        self.kind_cmd(args)
    }

    /// `<engine> exec <cluster>-control-plane crictl images -o json`: the images the node holds.
    pub fn node_images_cmd(&self, cluster: &str) -> Invocation {
        let node = control_plane(cluster);
        Invocation::new(self.provider.engine(), strings(["exec", &node, "crictl", "images", "-o", "json"]))
    }

    /// Runs `invocation` and returns its stdout, or an error with its stderr tail (never stdout).
    pub fn run(&self, invocation: &Invocation) -> Result<String, Error> {
        let io = |e: xshell::Error| Error::Io {
            action: format!("running `{invocation}`"),
            source: std::io::Error::other(e.to_string()),
        };
        let sh = xshell::Shell::new().map_err(io)?;
        if let Some(path) = &self.search_path {
            sh.set_var("PATH", path);
        }
        let (program, args) = (&invocation.program, &invocation.args);
        let mut cmd = xshell::cmd!(sh, "{program} {args...}").quiet().ignore_status();
        for (key, value) in &invocation.env {
            cmd = cmd.env(key, value);
        }
        let out = cmd.output().map_err(|e| {
            if on_path(program, self.search_path.as_deref()) {
                io(e)
            } else if *program == self.binary {
                Error::KindNotInstalled { binary: program.clone() }
            } else {
                Error::EngineNotInstalled { program: program.clone() }
            }
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let stderr = procs::tail(&String::from_utf8_lossy(&out.stderr), STDERR_LINES);
            Err(Error::Failed { command: invocation.to_string(), status: out.status, stderr })
        }
    }

    /// Creates the cluster; kind prints its progress on stderr, which is kept only on failure.
    pub fn create_cluster(&self, spec: &CreateCluster) -> Result<(), Error> {
        self.run(&self.create_cluster_cmd(spec)).map(drop)
    }

    /// Deletes the cluster; kind succeeds when it does not exist, so this is idempotent.
    pub fn delete_cluster(&self, name: &str) -> Result<(), Error> {
        self.run(&self.delete_cluster_cmd(name)).map(drop)
    }

    /// The names of the clusters on this provider; empty when there are none.
    pub fn get_clusters(&self) -> Result<Vec<String>, Error> {
        self.run(&self.get_clusters_cmd()).map(|stdout| parse_clusters(&stdout))
    }

    /// The cluster's kubeconfig (host address), as kind prints it.
    pub fn get_kubeconfig(&self, name: &str) -> Result<Kubeconfig, Error> {
        self.run(&self.get_kubeconfig_cmd(name)).map(Kubeconfig)
    }

    /// Loads an image archive (`docker save` / `podman save` output) into every node.
    pub fn load_image_archive(&self, archive: &Path, name: &str) -> Result<(), Error> {
        self.run(&self.load_image_archive_cmd(archive, name)).map(drop)
    }

    /// Writes the nodes' logs (journal, kubelet, containerd, pods) under `dir`.
    pub fn export_logs(&self, dir: &Path, name: &str) -> Result<(), Error> {
        self.run(&self.export_logs_cmd(dir, name)).map(drop)
    }

    /// The image references the cluster's control-plane node holds; see [`crate::has_image`].
    pub fn node_images(&self, cluster: &str) -> Result<BTreeSet<String>, Error> {
        let stdout = self.run(&self.node_images_cmd(cluster))?;
        parse_node_images(&stdout, &control_plane(cluster))
    }
}

/// kind's name for a cluster's (first) control-plane node container.
fn control_plane(cluster: &str) -> String {
    format!("{cluster}-control-plane")
}

fn strings<const N: usize>(words: [&str; N]) -> Vec<String> {
    words.map(String::from).to_vec()
}

/// A path as one argument. Lossy for non-UTF-8 paths, which xtask never creates.
fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A duration as Go's `time.ParseDuration` reads it, which is what kind's `--wait` takes.
fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// Whether `program` can be started: a path that exists, or a name in a directory of `path`
/// (this process's `PATH` when `None`), the same lookup the child's exec does.
fn on_path(program: &str, path: Option<&std::ffi::OsStr>) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    let path = path.map(OsString::from).or_else(|| std::env::var_os("PATH")).unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_list_is_one_name_per_line() {
        assert_eq!(parse_clusters("xtask-we\nkind\n\n"), ["xtask-we", "kind"]);
        assert!(parse_clusters("").is_empty());
        assert!(parse_clusters("No kind clusters found.\n").is_empty());
    }

    #[test]
    fn wait_is_rendered_as_a_go_duration() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_secs(120)), "120s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn kubeconfig_debug_does_not_show_the_credentials() {
        let kubeconfig = Kubeconfig("client-key-data: c2VjcmV0\n".into());
        assert_eq!(format!("{kubeconfig:?}"), "Kubeconfig(<redacted, 26 bytes>)");
    }
}
