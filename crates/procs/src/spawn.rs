//! Spawning. A child tied to our life gets PR_SET_PDEATHSIG, so it is signalled even when we are
//! SIGKILLed and no destructor runs.
//!
//! Linux sends the parent-death signal when the *thread* that forked the child exits, not the
//! process. Children are started from tokio's blocking pool, whose threads end after a few idle
//! seconds, so a tied child would die long before us. Tied children are therefore forked by one
//! thread of ours that lives as long as the process.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{Pid, getpid, getppid};

use crate::Error;

/// How a child's life relates to ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tie {
    /// The child outlives us (a kept environment, a detached server).
    Detached,
    /// The child gets this signal when we die, however we die.
    DieWithUs(Signal),
}

/// A command for `program`: the one place the workspace creates long-running processes.
#[allow(clippy::disallowed_methods)]
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    Command::new(program)
}

/// Starts `cmd` with the given tie to our life.
pub fn spawn(mut cmd: Command, tie: Tie) -> Result<Child, Error> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let err = |source| Error::Spawn { program: program.clone(), source };
    match tie {
        Tie::Detached => cmd.spawn().map_err(err),
        Tie::DieWithUs(signal) => {
            let (reply, answer) = mpsc::sync_channel(1);
            spawner().map_err(err)?.send(Job { cmd, signal, reply }).map_err(|_| err(gone()))?;
            answer.recv().map_err(|_| err(gone()))?.map_err(err)
        }
    }
}

struct Job {
    cmd: Command,
    signal: Signal,
    reply: mpsc::SyncSender<std::io::Result<Child>>,
}

fn gone() -> std::io::Error {
    std::io::Error::other("the process layer's spawner thread is gone")
}

static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

fn spawner() -> std::io::Result<&'static mpsc::Sender<Job>> {
    if let Some(tx) = SPAWNER.get() {
        return Ok(tx);
    }
    let (tx, rx) = mpsc::channel::<Job>();
    let started = std::thread::Builder::new().name("procs-spawner".into()).spawn(move || {
        for job in rx {
            let _ = job.reply.send(spawn_tied(job.cmd, job.signal));
        }
    });
    match started {
        // Two callers may race here: the loser's thread ends when its sender is dropped.
        Ok(_) => Ok(SPAWNER.get_or_init(|| tx)),
        Err(e) => Err(e),
    }
}

fn spawn_tied(mut cmd: Command, signal: Signal) -> std::io::Result<Child> {
    let parent: Pid = getpid();
    // SAFETY: the closure runs in the forked child before exec. It makes two system calls
    // (prctl, getppid), both async-signal-safe, and allocates nothing (errors are raw OS codes).
    // It runs after std has applied uid/gid, so the credential change cannot clear the setting.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal).map_err(std::io::Error::from)?;
            // We may have died between fork and prctl: then no signal will ever come.
            if getppid() != parent {
                return Err(std::io::Error::from(Errno::ESRCH));
            }
            Ok(())
        });
    }
    cmd.spawn()
}
