//! What can go wrong building, starting or stopping the cluster, each naming what to do.

use std::path::PathBuf;

/// A devcluster failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Programs the build or the cluster needs are not installed.
    #[error(
        "missing {}: install with `apt-get install -y {}`",
        .missing.iter().map(|(what, _)| what.as_str()).collect::<Vec<_>>().join(", "),
        .missing.iter().map(|(_, package)| package.as_str()).collect::<Vec<_>>().join(" ")
    )]
    MissingPackages {
        /// What is missing (a program or a file) and the Debian package that has it.
        missing: Vec<(String, String)>,
    },
    /// apt knows no source package `kubernetes`: no `deb-src` entry for bookworm.
    #[error(
        "apt has no source package `kubernetes` (no deb-src entry for Debian bookworm?): {detail}\n\
         hint: add /etc/apt/sources.list.d/debian-src.sources with\n  Types: deb-src\n  \
         URIs: http://deb.debian.org/debian\n  Suites: bookworm bookworm-updates\n  Components: main\n  \
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\nthen run `apt-get update` \
         (.ci/install-deps kube does both)"
    )]
    NoSourcePackage {
        /// What apt said.
        detail: String,
    },
    /// A build step failed; its log is kept.
    #[error("building Kubernetes: {step} failed ({status}); log {}; last lines:\n{tail}", .log.display())]
    BuildStep {
        /// The step, e.g. `go build`.
        step: String,
        /// How it ended.
        status: String,
        /// Its full log.
        log: PathBuf,
        /// The end of the log.
        tail: String,
    },
    /// A short command failed.
    // The cause is in the message and not a `source`: the chain printed with `{:#}` would say it twice.
    #[error("{what}: {cause}")]
    Command {
        /// What was being done.
        what: String,
        /// The command's failure (argv, status, output).
        cause: xshell::Error,
    },
    /// A file or directory operation failed.
    #[error("{what} {}: {cause}", .path.display())]
    Io {
        /// What was being done, e.g. `writing`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's reason.
        cause: std::io::Error,
    },
    /// Starting, watching or stopping a process failed.
    #[error(transparent)]
    Process(#[from] procs::Error),
    /// Making the cluster's certificates or reading a kubeconfig failed.
    #[error(transparent)]
    Envtest(#[from] envtest::Error),
    /// A part of the cluster did not become ready.
    #[error("{part} did not become ready: {reason}")]
    NotReady {
        /// The part (a process or a condition).
        part: String,
        /// Why, with the log tail where there is one.
        reason: String,
    },
    /// A call to the cluster's API failed.
    #[error("{what}: {cause}")]
    Kube {
        /// What was being done.
        what: String,
        /// kube's error.
        cause: kube::Error,
    },
    /// The state file does not read.
    #[error("{}: {reason}", .path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// Why it does not read.
        reason: String,
    },
    /// A devcluster of another checkout runs on this machine (there can be one).
    #[error(
        "a devcluster of {} runs on this machine (one per machine: its bridge and addresses are fixed); \
         stop it there with `cargo xtask devcluster down`",
        .owner.display()
    )]
    Busy {
        /// The state directory of the running cluster.
        owner: PathBuf,
    },
    /// The cluster's fixed addresses are in use by something else on this machine.
    #[error("{0}")]
    Conflict(String),
    /// There is no cluster to talk to.
    #[error("no devcluster runs from {}: start one with `cargo xtask devcluster up`", .dir.display())]
    NotRunning {
        /// The state directory looked in.
        dir: PathBuf,
    },
    /// Stopping left something behind; each entry says what and why.
    #[error("stopping the devcluster left {} behind:\n  {}", .left.len(), .left.join("\n  "))]
    LeftBehind {
        /// What was left, with the reason.
        left: Vec<String>,
    },
    /// Making the pause image failed.
    #[error("making the pause image: {0}")]
    Image(std::io::Error),
    /// The DNS responder failed.
    #[error("dns: {0}")]
    Dns(String),
}

impl Error {
    /// An I/O failure on `path` while `what`.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |cause| Error::Io { what, path, cause }
    }

    /// A failed short command while `what`.
    pub(crate) fn cmd(what: impl Into<String>) -> impl FnOnce(xshell::Error) -> Self {
        let what = what.into();
        move |cause| Error::Command { what, cause }
    }
}
