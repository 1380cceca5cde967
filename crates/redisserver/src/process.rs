//! Process plumbing for the server: the one place this crate spawns, and stopping.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Error;

/// How long a shutdown may take before the server is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A command for `program`: the one place this crate creates processes.
#[allow(clippy::disallowed_methods)]
pub(crate) fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    Command::new(program)
}

/// Puts the child in its own process group, so a Ctrl-C meant for us does not reach it.
pub(crate) fn detach(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

/// Asks the server to shut down (SIGTERM), waits for it, and kills it if it lingers.
pub(crate) fn stop_child(child: &mut Child) -> Result<(), Error> {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + STOP_DEADLINE;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(());
            }
            Err(source) => {
                return Err(Error::Io { action: "waiting for redis-server to stop".into(), source });
            }
        }
    }
}
