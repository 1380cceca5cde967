//! `cargo xtask infra` on the podman backend as a user runs it: real containers, and what a
//! killed xtask or a container that will not start leaves behind.
//!
//! Images cannot be pulled on every machine: these tests use the images named by
//! `XTASK_IMAGE_POSTGRES`/`XTASK_IMAGE_REDIS` (README's test command sets them through
//! `.ci/with-env`) and are skipped, saying so, without them or without podman.
#![allow(clippy::disallowed_methods)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn xtask(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("XTASK_STATE_DIR", state)
        .output()
        .expect("run xtask")
}

/// Whether this machine can run the tests, saying why not when it cannot.
fn podman_here() -> bool {
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("skipping: podman is not installed");
        return false;
    }
    if std::env::var_os("XTASK_IMAGE_POSTGRES").is_none() || std::env::var_os("XTASK_IMAGE_REDIS").is_none() {
        eprintln!("skipping: XTASK_IMAGE_POSTGRES/REDIS are not set (run under .ci/with-env)");
        return false;
    }
    true
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().expect("run podman");
    assert!(out.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every container, network and secret labelled with run `id`, as podman itself lists them.
fn labelled(id: &str) -> Vec<String> {
    let filter = format!("label=xtask.run={id}");
    let mut out: Vec<String> = podman(&["ps", "-a", "--filter", &filter, "--format", "container {{.Names}}"])
        .lines()
        .chain(podman(&["network", "ls", "--filter", &filter, "--format", "network {{.Name}}"]).lines())
        .map(str::to_string)
        .collect();
    // podman 4.3's `secret ls` has no label filter.
    for name in podman(&["secret", "ls", "--format", "{{.Name}}"]).lines() {
        let label = podman(&["secret", "inspect", "--format", "{{index .Spec.Labels \"xtask.run\"}}", name]);
        if label.trim() == id {
            out.push(format!("secret {name}"));
        }
    }
    out
}

/// Removes whatever a test left, also when an assertion failed half-way.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = xtask(self.0, &["infra", "down", "--all"]);
    }
}

/// xtask SIGKILLed with a podman environment up: the containers are the engine's, so they stay;
/// `infra status` says whose they are, even once the run directory is lost too, and
/// `infra down --all` removes every container, network and secret of the run.
#[test]
fn after_xtask_is_killed_down_all_finds_the_leftovers_by_label() {
    if !podman_here() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["infra", "up", "gateway", "--backend", "podman"])
        .env("XTASK_STATE_DIR", state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let id = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("export XTASK_RUN=").map(|v| v.trim_matches('\'').to_string()))
        .expect("infra up printed its endpoints");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    child.wait().unwrap();

    let before = labelled(&id);
    for kind in ["container", "network", "secret"] {
        assert!(before.iter().any(|r| r.starts_with(kind)), "a {kind} of run {id} exists: {before:?}");
    }
    let status = String::from_utf8_lossy(&xtask(state.path(), &["infra", "status"]).stdout).into_owned();
    assert!(status.contains(&id) && status.contains("orphaned"), "{status}");

    std::fs::remove_dir_all(state.path().join("runs").join(&id)).unwrap();
    let status = xtask(state.path(), &["infra", "status"]);
    let text =
        format!("{}{}", String::from_utf8_lossy(&status.stdout), String::from_utf8_lossy(&status.stderr));
    assert!(text.contains(&id), "stray resources are named by run even without its directory: {text}");

    let down = xtask(state.path(), &["infra", "down", "--all"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(labelled(&id), Vec::<String>::new(), "nothing of run {id} is left");
}

/// A container that exits during start-up fails the step at once (not at the readiness
/// deadline), names the exit code and the container's own last words, keeps its log in the run
/// directory, and removes the containers.
#[test]
fn a_container_that_exits_is_diagnosed_and_its_log_kept() {
    if !podman_here() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    // The PostgreSQL image as DataStorage: its entrypoint exits at once, asking for a password.
    let wrong = format!("datastorage={}", std::env::var("XTASK_IMAGE_POSTGRES").unwrap());
    let started = Instant::now();
    let out = xtask(state.path(), &["infra", "up", "gateway", "--backend", "podman", "--image", &wrong]);
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(took < Duration::from_secs(60), "failed fast, not at a deadline: {took:?}\n{err}");
    assert!(err.contains("datastorage"), "{err}");
    assert!(err.contains("exited: exit code 1"), "{err}");
    assert!(err.contains("POSTGRES_PASSWORD"), "the container's last log lines are shown: {err}");

    let runs: Vec<_> =
        std::fs::read_dir(state.path().join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "the failed run's directory is kept: {runs:?}");
    let log = std::fs::read_to_string(runs[0].join("datastorage/container.log")).unwrap();
    assert!(log.contains("exit code 1") && log.contains("POSTGRES_PASSWORD"), "{log}");
    let diagnosis = std::fs::read_to_string(runs[0].join("diagnosis.txt")).unwrap();
    assert!(diagnosis.contains("datastorage"), "{diagnosis}");
    let id = runs[0].file_name().unwrap().to_string_lossy().into_owned();
    let containers: Vec<String> = labelled(&id).into_iter().filter(|r| r.starts_with("container")).collect();
    assert_eq!(containers, Vec::<String>::new(), "the failed run's containers are removed");
}
