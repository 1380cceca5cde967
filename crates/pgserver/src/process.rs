//! Process plumbing for the server: dropping root privileges, detaching, stopping.
//!
//! The server is spawned with `std::process::Command` rather than xshell because it must run as
//! another user, in its own session when detached, and outlive the call that started it.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User, chown};

use crate::{Error, RUN_AS_ENV};

/// A command for `program`: the one place this crate creates processes.
#[allow(clippy::disallowed_methods)]
pub(crate) fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    Command::new(program)
}

/// How long a fast shutdown may take before the server is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// The account the server's processes run as.
pub(crate) struct RunAs {
    ids: Option<(Uid, Gid)>,
}

impl RunAs {
    /// Ourselves, unless we are root: then `$PG_RUN_AS` or `postgres`.
    pub(crate) fn for_current_user() -> Result<Self, Error> {
        if !Uid::effective().is_root() {
            return Ok(Self { ids: None });
        }
        let name = std::env::var(RUN_AS_ENV).unwrap_or_else(|_| "postgres".to_string());
        match User::from_name(&name) {
            Ok(Some(user)) => Ok(Self { ids: Some((user.uid, user.gid)) }),
            _ => Err(Error::UserNotFound { user: name }),
        }
    }

    /// Makes `path` owned by the account, so the server can write there.
    pub(crate) fn hand_over(&self, path: &Path) -> Result<(), Error> {
        if let Some((uid, gid)) = self.ids {
            chown(path, Some(uid), Some(gid)).map_err(|e| Error::Io {
                action: format!("giving {} to the server's user", path.display()),
                source: e.into(),
            })?;
        }
        Ok(())
    }

    /// Makes `cmd` run as the account.
    pub(crate) fn apply(&self, cmd: &mut Command) {
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
    }
}

/// Puts the child in its own process group, so a Ctrl-C meant for us does not reach it.
pub(crate) fn detach(cmd: &mut Command) {
    cmd.process_group(0);
}

/// Asks a child server for a fast shutdown (SIGINT), waits, and kills it if it lingers.
pub(crate) fn stop_child(child: &mut Child) -> Result<(), Error> {
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGINT);
    let deadline = Instant::now() + STOP_DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(());
            }
            Err(source) => return Err(Error::Io { action: "waiting for postgres to stop".into(), source }),
        }
    }
}

/// Whether a process with this pid exists and has not exited: a zombie (exited, not yet reaped
/// by its parent) counts as gone, or stopping a server handed over by `keep_running` from the
/// same parent would wait for a process that is already dead.
pub fn pid_alive(pid: u32) -> bool {
    if kill(Pid::from_raw(pid as i32), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain spaces.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => true,
    }
}

/// Stops a server started by another process (fast shutdown, then SIGKILL after a deadline).
pub fn stop_pid(pid: u32) -> Result<(), Error> {
    let target = Pid::from_raw(pid as i32);
    if kill(target, Signal::SIGINT).is_err() {
        return Ok(());
    }
    let deadline = Instant::now() + STOP_DEADLINE;
    while pid_alive(pid) {
        if Instant::now() > deadline {
            let _ = kill(target, Signal::SIGKILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
