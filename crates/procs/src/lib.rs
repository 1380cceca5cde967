//! The one process layer: how every crate of the workspace creates, watches and stops the
//! long-running processes it owns (servers, services), and writes the files they read.
//!
//! Short commands with captured output go through xshell's `cmd!` instead; this crate is for
//! processes that outlive the call that started them.

mod spawn;
mod stop;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub use spawn::{Tie, command, spawn};
pub use stop::{StopPolicy, pid_alive, stop};

/// What went wrong with a process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Starting a program failed (not found, not executable, or we died meanwhile).
    #[error("starting {program}: {source}")]
    Spawn {
        /// The program's path as given.
        program: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A signal could not be sent (e.g. EPERM: the process belongs to someone else).
    #[error("cannot send {signal} to pid {pid} ({program}): {errno}")]
    Signal {
        /// The process.
        pid: u32,
        /// What it runs.
        program: String,
        /// The signal's name.
        signal: String,
        /// The kernel's answer.
        errno: nix::errno::Errno,
    },
    /// The process outlived SIGKILL's deadline; `state` is its /proc state letter.
    #[error("pid {pid} ({program}) is still alive after SIGKILL; state {state}{why}")]
    Unkillable {
        /// The process.
        pid: u32,
        /// What it runs.
        program: String,
        /// The state letter from `/proc/<pid>/stat` (`?` when unreadable).
        state: String,
        /// What the state means, when it explains the failure.
        why: &'static str,
    },
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// Writes `contents` to `path` with `mode` from the file's creation on (0600 for a secret is
/// never readable by others, not even for a moment), creating parent directories.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let err = |source| Error::Write { path: path.display().to_string(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let mut file =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path).map_err(err)?;
    // An existing file keeps its old mode through `open`: set it before writing.
    file.set_permissions(fs::Permissions::from_mode(mode)).map_err(err)?;
    file.write_all(contents).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_0600_even_over_a_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret");
        write_file(&path, b"old", 0o644).unwrap();
        write_file(&path, b"new secret", 0o600).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"new secret");
    }

    #[test]
    fn an_unwritable_place_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = write_file(&file.join("below-a-file"), b"x", 0o600).unwrap_err();
        assert!(err.to_string().contains("below-a-file"), "{err}");
    }
}
