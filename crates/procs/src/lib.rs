//! The one process layer: how every crate of the workspace creates, watches and stops the
//! long-running processes it owns (servers, services), picks their ports, writes the files they
//! read and quotes the end of their logs.
//!
//! Short commands with captured output go through xshell's `cmd!` instead; this crate is for
//! processes that outlive the call that started them.

mod files;
mod ports;
mod spawn;
mod stop;

use std::path::PathBuf;

pub use files::{Workdir, log_tail, tail, write_file, write_file_atomic};
pub use ports::{PortAttempt, free_port, free_ports, port_taken_in, with_free_port, with_port};
pub use spawn::{OpenLog, Tie, command, log_output, own_process_group, spawn};
pub use stop::{StopPolicy, pid_alive, stop, stop_child};

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
    /// Waiting for a stopped child (reaping it) failed.
    #[error("waiting for pid {pid} ({program}) to exit: {source}")]
    Reap {
        /// The process.
        pid: u32,
        /// What it runs.
        program: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Creating a directory failed.
    #[error("creating a directory in {}: {source}", path.display())]
    Dir {
        /// The directory, or where a temporary one was to be created.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// No loopback port could be reserved to find a free one.
    #[error("finding a free loopback port: {source}")]
    Port {
        /// The operating system's reason.
        source: std::io::Error,
    },
}
