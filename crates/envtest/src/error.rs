//! What can go wrong starting the control plane or talking to it, each naming what to do.

use std::path::PathBuf;

/// An envtest failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No assets folder: `KUBEBUILDER_ASSETS` is unset and none was built here.
    #[error(
        "no etcd and kube-apiserver: {} is not set and `cargo xtask devcluster build` has not built \
         them here. Either build them (Kubernetes from Debian's source package; minutes, once) or set \
         {} to a folder from `setup-envtest use -p path` (sigs.k8s.io/controller-runtime/tools/setup-envtest)",
        crate::ASSETS_ENV,
        crate::ASSETS_ENV
    )]
    NoAssets,
    /// The assets folder lacks a program.
    #[error("{}: no executable {program} (a {} folder holds etcd and kube-apiserver)", .dir.display(), crate::ASSETS_ENV)]
    MissingAsset {
        /// The folder.
        dir: PathBuf,
        /// The program missing.
        program: &'static str,
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
    /// Making the certificates failed.
    #[error("making certificates: {0}")]
    Pki(#[from] rcgen::Error),
    /// etcd or kube-apiserver did not become ready.
    #[error("{part} did not become ready: {reason}")]
    NotReady {
        /// `etcd` or `kube-apiserver`.
        part: &'static str,
        /// Why, with the end of its log.
        reason: String,
    },
    /// A call to the API failed.
    #[error("{what}: {cause}")]
    Kube {
        /// What was being done.
        what: String,
        /// kube's error.
        cause: kube::Error,
    },
    /// A kubeconfig did not load.
    #[error("{}: {reason}", .path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why it does not load.
        reason: String,
    },
}

impl Error {
    /// An I/O failure on `path` while `what`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |cause| Error::Io { what, path, cause }
    }

    /// A failed API call while `what`.
    pub fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |cause| Error::Kube { what, cause }
    }
}
