//! Process plumbing for the server, through the workspace's process layer (`procs`).

use std::process::{Child, Command};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::Error;

pub(crate) use procs::command;

/// Redis's clean shutdown (SIGTERM), and how long it may take before the server is killed.
pub(crate) const STOP: procs::StopPolicy =
    procs::StopPolicy { signal: Signal::SIGTERM, deadline: Duration::from_secs(10) };

/// Puts the child in its own process group, so a Ctrl-C meant for us does not reach it.
pub(crate) fn detach(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

/// Asks the server to shut down, kills it if it lingers, and reaps it.
pub(crate) fn stop_child(child: &mut Child) -> Result<(), Error> {
    procs::stop(child.id(), "redis-server", STOP)?;
    child.wait().map_err(|source| Error::Io { action: "waiting for redis-server to stop".into(), source })?;
    Ok(())
}
