//! Process plumbing for the server: dropping root privileges and stopping, through the
//! workspace's process layer (`procs`).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User, chown};

use crate::{Error, RUN_AS_ENV};

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

    /// The first directory on the way to `path` the account cannot pass through (no search
    /// permission for it); `None` when it can reach `path`, or when we are the account.
    pub(crate) fn blocked_at(&self, path: &Path) -> Option<std::path::PathBuf> {
        use std::os::unix::fs::MetadataExt;
        let (uid, gid) = self.ids?;
        let groups = User::from_uid(uid)
            .ok()
            .flatten()
            .and_then(|u| nix::unistd::getgrouplist(&std::ffi::CString::new(u.name).ok()?, gid).ok())
            .unwrap_or_else(|| vec![gid]);
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        // Every ancestor must be searchable; `path` itself is handed over to the account.
        let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
        ancestors.reverse();
        ancestors.into_iter().find_map(|dir| {
            let m = std::fs::metadata(dir).ok()?;
            let bit = if m.uid() == uid.as_raw() {
                0o100
            } else if groups.iter().any(|g| g.as_raw() == m.gid()) {
                0o010
            } else {
                0o001
            };
            (m.mode() & bit == 0).then(|| dir.to_path_buf())
        })
    }

    /// Makes `cmd` run as the account.
    pub(crate) fn apply(&self, cmd: &mut Command) {
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
    }
}

/// Stops a server started by another process (fast shutdown, then SIGKILL after a deadline).
pub fn stop_pid(pid: u32) -> Result<(), Error> {
    Ok(procs::stop(pid, "postgres", STOP)?)
}
