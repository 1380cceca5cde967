//! Child process groups: a build or a test command runs in a group of its own, so stopping it
//! stops its children too (cargo's rustc, the test binaries), not just the parent.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Kills a process group when dropped (an aborted step, an interrupted run), unless disarmed.
pub(crate) struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    /// Guards the group led by `pid` (a child started with `process_group(0)`).
    pub(crate) fn new(pid: Option<u32>) -> Self {
        Self { pgid: pid.map(|p| Pid::from_raw(p as i32)) }
    }

    /// Sends `signal` to every process of the group.
    pub(crate) fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(pgid, signal);
        }
    }

    /// The group ended on its own: nothing to kill on drop.
    pub(crate) fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}
