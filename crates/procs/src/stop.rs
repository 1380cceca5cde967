//! Stopping a process we started, from this process or a later one (`infra down`): a polite
//! signal, a deadline, SIGKILL, a second deadline, and then a diagnosis instead of a loop.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Error;

/// How to stop a program: the signal it treats as "shut down cleanly", and how long it gets.
#[derive(Debug, Clone, Copy)]
pub struct StopPolicy {
    /// The clean-shutdown signal (PostgreSQL: SIGINT, its fast shutdown; most others SIGTERM).
    pub signal: Signal,
    /// How long the program may take to stop before SIGKILL.
    pub deadline: Duration,
}

impl StopPolicy {
    /// How a child stopped this way relates to our life: it gets this policy's signal when we
    /// die if `die_with_us`, else it is detached.
    pub fn tie(&self, die_with_us: bool) -> crate::Tie {
        if die_with_us { crate::Tie::DieWithUs(self.signal) } else { crate::Tie::Detached }
    }
}

/// How long a SIGKILLed process may take to disappear before we report it.
const KILL_DEADLINE: Duration = Duration::from_secs(5);

/// Whether a process with this pid exists and has not exited. A zombie (exited, not yet reaped
/// by its parent) counts as gone: waiting for it to vanish would wait for the parent instead.
pub fn pid_alive(pid: u32) -> bool {
    if kill(Pid::from_raw(pid as i32), None).is_err() {
        return false;
    }
    // The state follows the parenthesised command name, which may itself contain spaces.
    state(pid).as_deref() != Some("Z")
}

fn state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).map(str::to_string)
}

/// Stops `pid` (which runs `program`, for messages): `policy.signal`, then SIGKILL after
/// `policy.deadline`, then an error saying why if it still lives. A process already gone is
/// stopped.
pub fn stop(pid: u32, program: &str, policy: StopPolicy) -> Result<(), Error> {
    let target = Pid::from_raw(pid as i32);
    let send = |signal: Signal| match kill(target, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => {
            Err(Error::Signal { pid, program: program.into(), signal: signal.as_str().into(), errno })
        }
    };
    if !pid_alive(pid) {
        return Ok(());
    }
    send(policy.signal)?;
    if wait_gone(pid, policy.deadline) {
        return Ok(());
    }
    send(Signal::SIGKILL)?;
    if wait_gone(pid, KILL_DEADLINE) {
        return Ok(());
    }
    let state = state(pid).unwrap_or_else(|| "?".into());
    let why = if state == "D" { " (uninterruptible sleep: blocked in the kernel, e.g. on I/O)" } else { "" };
    Err(Error::Unkillable { pid, program: program.into(), state, why })
}

/// Stops our own child `child` (running `program`) like [`stop`], then reaps it and returns how
/// it ended: a child is not gone until its parent has waited for it.
pub fn stop_child(child: &mut Child, program: &str, policy: StopPolicy) -> Result<ExitStatus, Error> {
    stop(child.id(), program, policy)?;
    child.wait().map_err(|source| Error::Reap { pid: child.id(), program: program.into(), source })
}

fn wait_gone(pid: u32, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    let mut pause = Duration::from_millis(1);
    while Instant::now() < until {
        if !pid_alive(pid) {
            return true;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    !pid_alive(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Tie, command, spawn};

    #[test]
    fn a_process_ignoring_the_polite_signal_is_killed_after_the_deadline() {
        let mut cmd = command("sh");
        cmd.args(["-c", "trap '' TERM; while :; do sleep 0.01; done"]);
        let mut child = spawn(cmd, Tie::Detached).unwrap();
        let pid = child.id();
        // Reap in the background, as a parent does; until then the child is a zombie.
        let reaper = std::thread::spawn(move || child.wait());
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        stop(pid, "sh", StopPolicy { signal: Signal::SIGTERM, deadline: Duration::from_millis(300) })
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300), "it was given its deadline");
        let status = reaper.join().unwrap().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    }

    #[test]
    fn a_stopped_child_is_reaped_and_says_how_it_ended() {
        use std::os::unix::process::ExitStatusExt;
        let mut cmd = command("sleep");
        cmd.arg("1000");
        let mut child = spawn(cmd, Tie::Detached).unwrap();
        let pid = child.id();
        let status = stop_child(
            &mut child,
            "sleep",
            StopPolicy { signal: Signal::SIGTERM, deadline: Duration::from_secs(5) },
        )
        .unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
        assert_eq!(state(pid), None, "reaped: no zombie left behind");
    }

    #[test]
    fn stopping_a_gone_process_is_not_an_error() {
        let mut child = spawn(command("true"), Tie::Detached).unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid));
        stop(pid, "true", StopPolicy { signal: Signal::SIGTERM, deadline: Duration::from_secs(1) }).unwrap();
    }

    #[test]
    fn a_zombie_counts_as_gone() {
        let mut child = spawn(command("true"), Tie::Detached).unwrap();
        let pid = child.id();
        let until = Instant::now() + Duration::from_secs(10);
        while state(pid).as_deref() != Some("Z") && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(state(pid).as_deref(), Some("Z"), "exited but not reaped");
        assert!(!pid_alive(pid));
        child.wait().unwrap();
    }
}
