//! Process plumbing for the server: dropping root privileges, detaching, stopping, all through
//! the workspace's process layer (`procs`).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User, chown};

use crate::{Error, RUN_AS_ENV};

pub(crate) use procs::command;

/// PostgreSQL's fast shutdown (SIGINT), and how long it may take before the server is killed.
pub(crate) const STOP: procs::StopPolicy =
    procs::StopPolicy { signal: Signal::SIGINT, deadline: Duration::from_secs(20) };

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

/// Asks a child server for a fast shutdown, kills it if it lingers, and reaps it.
pub(crate) fn stop_child(child: &mut Child) -> Result<(), Error> {
    procs::stop(child.id(), "postgres", STOP)?;
    child.wait().map_err(|source| Error::Io { action: "waiting for postgres to stop".into(), source })?;
    Ok(())
}

/// Stops a server started by another process (fast shutdown, then SIGKILL after a deadline).
pub fn stop_pid(pid: u32) -> Result<(), Error> {
    Ok(procs::stop(pid, "postgres", STOP)?)
}
