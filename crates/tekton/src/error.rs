//! Everything that can stop a Tekton install, each naming the file, document or object at fault.

use std::path::PathBuf;
use std::time::Duration;

/// Why loading, applying or waiting for the Tekton release failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pin (`manifests/tekton/release.yaml`) is malformed.
    #[error("invalid Tekton pin: {reason}")]
    Pin {
        /// What is wrong with it.
        reason: String,
    },
    /// The release file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The release file is not the pinned one; nothing of it was parsed or applied.
    #[error(
        "{}: SHA-256 mismatch, refusing to use it: expected {expected}, actual {actual}",
        .path.display()
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The pinned digest (lowercase hex).
        expected: String,
        /// The file's digest (lowercase hex).
        actual: String,
    },
    /// A YAML document does not parse.
    #[error("{}: document {document} does not parse (line {line}): {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The document's position in the file, 1-based.
        document: usize,
        /// The line of the error in the file, 1-based.
        line: u64,
        /// The parser's message.
        message: String,
    },
    /// A YAML document parses but is not a Kubernetes object.
    #[error("{}: document {document} (line {line}) is not a Kubernetes object: {reason}", .path.display())]
    NotAnObject {
        /// The file.
        path: PathBuf,
        /// The document's position in the file, 1-based.
        document: usize,
        /// The line the document starts at, 1-based.
        line: u64,
        /// What is missing or malformed.
        reason: String,
    },
    /// The API server refused a server-side apply.
    #[error("applying {object} failed: {source}")]
    Apply {
        /// The object as `Kind/namespace/name`.
        object: String,
        /// The client's error.
        source: Box<kube::Error>,
    },
    /// A CRD did not become `Established` before the deadline.
    #[error("CRD {crd} not Established after {:.1}s; last condition: {last}", .waited.as_secs_f64())]
    CrdNotEstablished {
        /// The CRD's name.
        crd: String,
        /// Its last observed condition (or why none was observed).
        last: String,
        /// How long the wait ran.
        waited: Duration,
    },
    /// A part of Tekton reached a state it will not recover from (e.g. `ProgressDeadlineExceeded`).
    #[error("{what} failed: {reason}")]
    Failed {
        /// The part, e.g. `deployment tekton-pipelines/tekton-pipelines-webhook`.
        what: String,
        /// Why.
        reason: String,
    },
    /// Tekton was not ready before the deadline.
    #[error("Tekton not ready after {:.1}s: {pending}", .waited.as_secs_f64())]
    NotReady {
        /// How long the wait ran.
        waited: Duration,
        /// What was still missing, with the last reason.
        pending: String,
    },
}
