//! What can go wrong running kind or its engine, with the evidence: command, exit status, stderr.

use std::process::ExitStatus;

/// How many lines of stderr an error keeps: enough for kind's final `ERROR:` and its causes.
pub(crate) const STDERR_LINES: usize = 20;

/// A failed kind or engine operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `kind` binary is not on `PATH`, or the configured path does not exist.
    #[error(
        "kind binary `{binary}` was not found: install kind \
         (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) or set KIND to its path"
    )]
    KindNotInstalled {
        /// The binary that was looked for.
        binary: String,
    },
    /// The engine kind runs on (docker or podman) is not on `PATH`.
    #[error(
        "container engine `{program}` was not found: install it, or set XTASK_KIND_PROVIDER to the other one"
    )]
    EngineNotInstalled {
        /// The engine program that was looked for.
        program: String,
    },
    /// The command ran and exited unsuccessfully. Only stderr is kept: stdout may be a kubeconfig.
    #[error("`{command}` failed ({status}){}", stderr_suffix(stderr))]
    Failed {
        /// The command line, environment included (it never carries a secret).
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// The last lines of its stderr.
        stderr: String,
    },
    /// A provider variable holds something other than `docker` or `podman`.
    #[error(
        "{var}={value} is not a supported kind provider: use docker or podman (set XTASK_KIND_PROVIDER to override)"
    )]
    UnknownProvider {
        /// The variable that was read.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// `crictl images -o json` printed something that is not its JSON document.
    #[error("parsing the image list of {what}: {source}")]
    ParseImages {
        /// Where the list came from, e.g. `node xtask-control-plane`.
        what: String,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// A kind cluster config that does not parse or is not a `kind.x-k8s.io/v1alpha4` `Cluster`.
    #[error("invalid kind config: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The command could not be started or waited for (other than "not found").
    #[error("{action}: {source}")]
    Io {
        /// What was being done, with the command line.
        action: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// The kept stderr of a [`Error::Failed`], empty for other errors.
    pub fn stderr(&self) -> &str {
        match self {
            Error::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() { String::new() } else { format!(":\n{stderr}") }
}
