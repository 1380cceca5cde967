//! Spawning. A child tied to our life gets PR_SET_PDEATHSIG, so it is signalled even when we are
//! SIGKILLed and no destructor runs.
//!
//! Linux sends the parent-death signal when the *thread* that forked the child exits, not the
//! process. Children are started from tokio's blocking pool, whose threads end after a few idle
//! seconds, so a tied child would die long before us. Tied children are therefore forked by one
//! thread of ours that lives as long as the process.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

/// Whether a log starts empty or keeps what earlier runs of the process wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenLog {
    /// Emptied when the process starts.
    Truncate,
    /// Appended to.
    Append,
}

/// Sends `cmd`'s stdout and stderr to the log file at `path` (one file, in the order written)
/// and closes its stdin: a server we start reads nothing from us and must not hold our terminal.
pub fn log_output(cmd: &mut Command, path: &Path, open: OpenLog) -> Result<(), Error> {
    let err = |source| Error::Write { path: path.to_path_buf(), source };
    let mut options = File::options();
    match open {
        OpenLog::Truncate => options.write(true).create(true).truncate(true),
        OpenLog::Append => options.append(true).create(true),
    };
    let log = options.open(path).map_err(err)?;
    let log_err = log.try_clone().map_err(err)?;
    cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
    Ok(())
}

/// Puts `cmd`'s child in a process group of its own: a Ctrl-C on our terminal reaches only us,
/// so we decide how our children stop, and the group can be signalled as a whole.
pub fn own_process_group(cmd: &mut Command) -> &mut Command {
    cmd.process_group(0)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run_logged(path: &Path, open: OpenLog, word: &str) {
        let mut cmd = command("sh");
        cmd.args(["-c", &format!("echo {word}-out; echo {word}-err >&2; read x || echo no-stdin")]);
        log_output(&mut cmd, path, open).unwrap();
        own_process_group(&mut cmd);
        let mut child = spawn(cmd, Tie::Detached).unwrap();
        let pid = child.id() as i32;
        assert_eq!(nix::unistd::getpgid(Some(Pid::from_raw(pid))).unwrap(), Pid::from_raw(pid));
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn output_goes_to_the_log_in_its_own_group_with_stdin_closed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("child.log");
        run_logged(&log, OpenLog::Truncate, "first");
        run_logged(&log, OpenLog::Append, "second");
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "first-out\nfirst-err\nno-stdin\nsecond-out\nsecond-err\nno-stdin\n");
        run_logged(&log, OpenLog::Truncate, "third");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "third-out\nthird-err\nno-stdin\n");
    }
}
