//! Child processes with a log file, and the probe that fails as soon as one exits.
//!
//! [`Spawn`] is the typed way to start a service process: argv as data, output to a log file.
//! [`ProcessProbe`] is ready while the process runs, or, with [`ProcessProbe::until`], when another
//! probe passes while the process still runs; once the process exits it is Failed with the exit
//! status and the last lines of the log.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};

use crate::{BoxFuture, Detail, Probe, ProcessReport, Status, WaitError, WaitReport, Waiter};

/// How many log lines a failure reason and a diagnosis carry.
const TAIL_LINES: usize = 20;

/// A process to start: program, arguments, environment, working directory and log file.
#[derive(Debug, Clone)]
pub struct Spawn {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    log: PathBuf,
}

impl Spawn {
    /// A process running `program`, its stdout and stderr appended to `log`.
    pub fn new(program: impl AsRef<OsStr>, log: impl Into<PathBuf>) -> Self {
        Self {
            program: program.as_ref().into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            log: log.into(),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().into());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().into()));
        self
    }

    /// Sets an environment variable for the process.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().into(), value.as_ref().into()));
        self
    }

    /// Runs the process in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The command line as separate arguments, program first.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(&self.program).chain(&self.args).map(|a| a.to_string_lossy().into_owned()).collect()
    }

    /// Starts the process with stdin closed and its output appended to the log file.
    pub fn start(self) -> Result<ChildProcess, procs::Error> {
        let mut cmd = procs::command(&self.program);
        cmd.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        procs::log_output(&mut cmd, &self.log, procs::OpenLog::Append)?;
        let child = procs::spawn(cmd, procs::Tie::Detached)?;
        Ok(ChildProcess {
            pid: child.id(),
            child: Arc::new(Mutex::new(child)),
            command: self.argv().join(" "),
            log: self.log,
        })
    }
}

/// A started process; it is killed when this value is dropped.
#[derive(Debug)]
pub struct ChildProcess {
    child: Arc<Mutex<Child>>,
    pid: u32,
    command: String,
    log: PathBuf,
}

impl ChildProcess {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The file its output goes to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// How it ended, or `None` while it runs.
    pub fn try_wait(&self) -> std::io::Result<Option<ExitStatus>> {
        self.child.lock().expect("child lock").try_wait()
    }

    /// A probe that fails once this process has exited.
    pub fn probe(&self) -> ProcessProbe {
        ProcessProbe::new(self.child.clone(), self.command.clone(), self.log.clone())
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let mut child = self.child.lock().expect("child lock");
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Why a child process did not become ready, with the end of its log.
#[derive(Debug, thiserror::Error)]
pub enum ChildNotReady {
    /// It exited first.
    #[error("{command} exited ({status}); last log lines:\n{log_tail}")]
    Exited {
        /// What it ran.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// The end of its log.
        log_tail: String,
    },
    /// It still runs, but the wait gave up on it (its readiness probe failed, or the deadline passed).
    #[error("{command} did not become ready within {waited:?} ({reason}); last log lines:\n{log_tail}")]
    NotReady {
        /// What it runs.
        command: String,
        /// How long the wait ran.
        waited: std::time::Duration,
        /// What the wait last heard.
        reason: String,
        /// The end of its log.
        log_tail: String,
    },
}

impl ChildNotReady {
    /// Whether it exited because another process had bound its port first (its log says so).
    pub fn port_taken(&self) -> bool {
        matches!(self, Self::Exited { log_tail, .. } if procs::port_taken_in(log_tail))
    }
}

impl Waiter {
    /// From synchronous code (a server launcher): waits until `ready` passes while `child`
    /// (running `command`, writing `log`) runs, failing as soon as it exits. The child is handed
    /// back while it runs, whatever the outcome (the caller stops it); `None` once it exited.
    pub fn wait_child_blocking(
        &mut self,
        child: Child,
        command: &str,
        log: &Path,
        ready: impl Probe + 'static,
    ) -> (Option<Child>, Result<WaitReport, ChildNotReady>) {
        let started = std::time::Instant::now();
        let shared = Arc::new(Mutex::new(child));
        let mut probe = ProcessProbe::new(shared.clone(), command, log).until(ready);
        let waited = self.wait_for_blocking(&mut probe);
        drop(probe);
        let mutex = Arc::into_inner(shared).expect("the probe that shared the child is gone");
        let mut child = mutex.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (command, log_tail) = (command.to_string(), || procs::log_tail(log, TAIL_LINES));
        match (waited, child.try_wait()) {
            (Ok(report), _) => (Some(child), Ok(report)),
            (Err(_), Ok(Some(status))) => {
                (None, Err(ChildNotReady::Exited { command, status, log_tail: log_tail() }))
            }
            (Err(e), _) => {
                let reason = match e {
                    WaitError::Failed { reason, .. } => reason,
                    WaitError::TimedOut { pending, .. } => pending,
                };
                let waited = started.elapsed();
                (Some(child), Err(ChildNotReady::NotReady { command, waited, reason, log_tail: log_tail() }))
            }
        }
    }
}

/// Watches a child process: Failed with exit status and log tail as soon as it exits.
pub struct ProcessProbe {
    child: Arc<Mutex<Child>>,
    pid: u32,
    command: String,
    log: PathBuf,
    ready: Option<Box<dyn Probe>>,
}

impl ProcessProbe {
    /// A probe for a child shared with its owner, described by `command`, logging to `log`.
    pub fn new(child: Arc<Mutex<Child>>, command: impl Into<String>, log: impl Into<PathBuf>) -> Self {
        let pid = child.lock().expect("child lock").id();
        Self { child, pid, command: command.into(), log: log.into(), ready: None }
    }

    /// Ready only when `ready` also passes, e.g. the service's HTTP health check.
    pub fn until(mut self, ready: impl Probe + 'static) -> Self {
        self.ready = Some(Box::new(ready));
        self
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().expect("child lock").try_wait().ok().flatten()
    }

    fn report(&self) -> ProcessReport {
        ProcessReport {
            command: self.command.clone(),
            pid: self.pid,
            exit_status: self.exit_status().map(|s| s.to_string()),
            log_path: self.log.display().to_string(),
            log_tail: procs::log_tail(&self.log, TAIL_LINES),
        }
    }
}

impl Probe for ProcessProbe {
    fn name(&self) -> String {
        let program = self.command.split(' ').next().unwrap_or_default();
        match &self.ready {
            Some(p) => format!("{} (process {program}, pid {})", p.name(), self.pid),
            None => format!("process {program} (pid {})", self.pid),
        }
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            if let Some(status) = self.exit_status() {
                let tail = procs::log_tail(&self.log, 5);
                let tail = if tail.is_empty() { "(log is empty)".to_string() } else { tail };
                return Status::Failed(format!("process exited ({status}); last log lines:\n{tail}"));
            }
            match &mut self.ready {
                None => Status::Ready,
                // An exit during this check shows up at the next one, a few milliseconds later.
                Some(probe) => probe.check().await,
            }
        })
    }

    fn diagnose(&mut self) -> BoxFuture<'_, Vec<Detail>> {
        Box::pin(async move {
            let mut details = vec![Detail::Process(self.report())];
            if let Some(p) = &mut self.ready {
                details.extend(p.diagnose().await);
            }
            details
        })
    }
}
