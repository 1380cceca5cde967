//! The errors of this crate: what went wrong, naming the file, component, run or resource.

use std::path::PathBuf;

/// What can go wrong preparing, running or tearing down an environment.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// A file-system operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being attempted.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Starting, stopping or writing for a process failed.
    #[error(transparent)]
    Process(#[from] procs::Error),
    /// A component could not render its workload.
    #[error("{0}")]
    Model(String),
    /// A component asked for an endpoint no step has published (a missing `needs` entry).
    #[error("no endpoint `{0}` has been published; the component must list it in its needs")]
    NotPublished(String),
    /// No run matches.
    #[error("{0}")]
    NoRun(String),
    /// The named run exists but cannot be read.
    #[error("run {}: cannot read its state: {reason}", dir.display())]
    Unreadable {
        /// The run directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// A backend could not carry out an action.
    #[error("{backend}: {message}")]
    Backend {
        /// The backend.
        backend: &'static str,
        /// What failed.
        message: String,
    },
    /// A request that does not fit the run (restarting a component it does not have, ...).
    #[error("{0}")]
    Invalid(String),
    /// Resources that could not be removed; each is named with the reason.
    #[error("teardown left {} resource(s) behind:\n{}", .0.len(), .0.join("\n"))]
    Leftovers(Vec<String>),
}

impl InfraError {
    /// An I/O error with what was being attempted.
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> InfraError {
        let action = action.into();
        move |source| InfraError::Io { action, source }
    }
}
