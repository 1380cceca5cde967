//! Child processes with a log file, and the probe that fails as soon as one exits.
//!
//! [`Spawn`] is the typed way to start a service process: argv as data, output to a log file.
//! [`ProcessProbe`] is ready while the process runs, or, with [`ProcessProbe::until`], when another
//! probe passes while the process still runs; once the process exits it is Failed with the exit
//! status and the last lines of the log.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use crate::{BoxFuture, Detail, Probe, ProcessReport, Status, last_lines};

/// How many log lines a failure reason and a diagnosis carry.
const TAIL_LINES: usize = 20;

/// A command for `program`: the one place this crate creates processes.
#[allow(clippy::disallowed_methods)]
fn command(program: &OsStr) -> Command {
    Command::new(program)
}

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

    /// Starts the process with stdin closed and its output going to the log file.
    pub fn start(self) -> std::io::Result<ChildProcess> {
        let log = File::options().create(true).append(true).open(&self.log)?;
        let mut cmd = command(&self.program);
        cmd.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let child = cmd.spawn().map_err(|e| {
            std::io::Error::new(e.kind(), format!("starting {}: {e}", self.program.to_string_lossy()))
        })?;
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
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        ProcessReport {
            command: self.command.clone(),
            pid: self.pid,
            exit_status: self.exit_status().map(|s| s.to_string()),
            log_path: self.log.display().to_string(),
            log_tail: last_lines(&text, TAIL_LINES),
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
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail = last_lines(&log, 5);
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
