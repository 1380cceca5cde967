//! A whole environment's life: bring a suite up (run state first, then the plan), run its tests
//! against it, restart a component, and tear it down, leaving nothing behind.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::local::Local;
use crate::plan::Plan;
use crate::runner::{self, Event, RunReport, StepFailure};
use crate::state::{RunState, Runs, teardown};
use crate::suite::Suite;

/// An environment that came up.
#[derive(Debug)]
pub struct Up {
    /// What was started, with the endpoints.
    pub state: RunState,
    /// How the steps went.
    pub report: RunReport,
}

/// Why an environment is not up.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The run directory could not be prepared.
    #[error("preparing the run directory: {0}")]
    Io(#[from] std::io::Error),
    /// A step failed; processes were stopped, logs and the diagnosis kept in `dir`.
    #[error("{step} failed: {message}")]
    Failed {
        /// The failed step.
        step: String,
        /// Why.
        message: String,
        /// The steps as far as they got.
        report: Box<RunReport>,
        /// The run directory holding logs and `diagnosis.txt`.
        dir: PathBuf,
    },
    /// Interrupted (Ctrl-C); everything was stopped and removed.
    #[error("interrupted; everything that was started has been stopped and removed")]
    Interrupted {
        /// The steps as far as they got.
        report: Box<RunReport>,
    },
}

/// How to bring an environment up.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpOptions {
    /// Run the steps one after another instead of in parallel (to measure what parallelism saves).
    pub sequential: bool,
}

/// Brings `suite` up on the local backend under `runs`, reporting on `on_event`.
///
/// On failure every started process is stopped and the run directory keeps the logs and a
/// `diagnosis.txt`; on interrupt everything is stopped and removed.
pub async fn up(
    root: &Path,
    runs: &Runs,
    suite: Suite,
    options: UpOptions,
    interrupt: impl Future<Output = ()>,
    on_event: impl FnMut(&Event),
) -> Result<Up, UpError> {
    let (id, dir) = runs.create(&suite.name)?;
    let state = RunState {
        id,
        suite: suite.name.clone(),
        backend: "local".into(),
        dir: dir.clone(),
        created: chrono::Local::now().to_rfc3339(),
        ..Default::default()
    };
    state.save()?;
    let plan = Plan::local(&suite);
    let local = Arc::new(Local::new(root, suite, state));
    let limit = if options.sequential { 1 } else { usize::MAX };
    let report = runner::run_limited(&plan, local.clone(), limit, interrupt, on_event).await;
    if report.ok() {
        return Ok(Up { state: local.state(), report });
    }
    // Start-ups still running in the background finish (or fail) before anything is removed.
    local.settle().await;
    if report.interrupted {
        let dir2 = dir.clone();
        tokio::task::spawn_blocking(move || teardown(&dir2)).await.map_err(std::io::Error::other)??;
        return Err(UpError::Interrupted { report: Box::new(report) });
    }
    let (step, failure) = report.failure.clone().unwrap_or_else(|| {
        ("run".into(), StepFailure::new("the run ended with steps that never became ready"))
    });
    // Evidence first (best effort); the processes are stopped whatever happens writing it.
    let text =
        format!("{step} failed: {}\n\n{}\n", failure.message, failure.diagnosis.as_deref().unwrap_or(""));
    let _ = std::fs::write(dir.join("diagnosis.txt"), text);
    if let Some(json) = &failure.diagnosis_json {
        let _ = std::fs::write(
            dir.join("diagnosis.json"),
            serde_json::to_string_pretty(json).unwrap_or_default(),
        );
    }
    let dir2 = dir.clone();
    tokio::task::spawn_blocking(move || stop_keep_logs(&dir2)).await.map_err(std::io::Error::other)??;
    Err(UpError::Failed { step, message: failure.message, report: Box::new(report), dir })
}

/// Stops a run's processes and removes its data, keeping logs, state and diagnosis for reading.
fn stop_keep_logs(dir: &Path) -> std::io::Result<()> {
    let keep = logs_dir(dir)?;
    for name in [
        "state.json",
        "diagnosis.txt",
        "build.log",
        "postgres/postgres.log",
        "redis/redis.log",
        "datastorage/datastorage.log",
    ] {
        let from = dir.join(name);
        if from.exists() {
            let to = keep.join(name.replace('/', "-"));
            std::fs::copy(&from, &to)?;
        }
    }
    teardown(dir)?;
    std::fs::rename(&keep, dir)
}

fn logs_dir(dir: &Path) -> std::io::Result<PathBuf> {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".logs");
    let keep = dir.with_file_name(name);
    std::fs::create_dir_all(&keep)?;
    Ok(keep)
}

/// How a suite's test command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestOutcome {
    /// Exit status 0.
    Passed,
    /// Non-zero exit or killed by a signal.
    Failed(String),
    /// Ran past the suite's timeout and was killed.
    TimedOut(Duration),
    /// Interrupted (Ctrl-C) and killed.
    Interrupted,
}

/// Runs the suite's test command from the workspace root with the environment's endpoints set,
/// plus `XTASK_BIN` and `XTASK_RUN` so a test can drive the environment (e.g. restart PostgreSQL).
pub async fn run_tests(
    root: &Path,
    suite: &Suite,
    state: &RunState,
    interrupt: impl Future<Output = ()>,
) -> std::io::Result<(TestOutcome, Duration)> {
    let started = Instant::now();
    let argv = &suite.test.argv;
    let mut cmd = tokio::process::Command::from(crate::build::command(&argv[0]));
    cmd.args(&argv[1..]).current_dir(root).envs(&state.env).env("XTASK_RUN", &state.id).process_group(0);
    if let Ok(me) = std::env::current_exe() {
        cmd.env("XTASK_BIN", me);
    }
    let mut child =
        cmd.spawn().map_err(|e| std::io::Error::other(format!("starting {}: {e}", argv.join(" "))))?;
    // The command (cargo) and everything it starts (the test binaries) form one group.
    let mut group = crate::group::GroupGuard::new(child.id());
    let stop = async |group: &crate::group::GroupGuard, child: &mut tokio::process::Child| {
        group.signal(nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
            group.signal(nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait().await;
        }
    };
    let outcome = tokio::select! {
        status = child.wait() => {
            let status = status?;
            group.disarm();
            if status.success() { TestOutcome::Passed } else { TestOutcome::Failed(status.to_string()) }
        }
        () = tokio::time::sleep(suite.test.timeout) => {
            stop(&group, &mut child).await;
            TestOutcome::TimedOut(suite.test.timeout)
        }
        () = interrupt => {
            stop(&group, &mut child).await;
            TestOutcome::Interrupted
        }
    };
    Ok((outcome, started.elapsed()))
}

/// Restarts one component of a running environment in place (same port, same data).
pub fn restart(state: &mut RunState, component: &str) -> Result<(), String> {
    let comp = state.components.get(component).cloned().ok_or_else(|| {
        format!(
            "run {} has no running {component} (it has: {})",
            state.id,
            state.components.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let dir = state.dir.join(component);
    if let Some(pid) = comp.pid {
        pgserver::stop_pid(pid).map_err(|e| e.to_string())?;
    }
    let pid = match component {
        "postgres" => {
            let options = pgserver::Options {
                port: comp.port,
                password: state.postgres_superuser_password.clone(),
                detach: true,
                ..Default::default()
            };
            pgserver::PgServer::start_in(&dir, options).map_err(|e| e.to_string())?.keep_running()
        }
        "redis" => {
            let password = state
                .env
                .get("REDIS_URL")
                .and_then(|u| u.split_once("://:"))
                .and_then(|(_, r)| r.split_once('@'))
                .map(|(p, _)| p.to_string());
            let options = redisserver::Options { port: comp.port, password, detach: true };
            redisserver::RedisServer::start_in(&dir, options).map_err(|e| e.to_string())?.keep_running()
        }
        other => return Err(format!("restarting {other} is not supported (postgres and redis are)")),
    };
    if let Some(c) = state.components.get_mut(component) {
        c.pid = pid;
    }
    state.save().map_err(|e| e.to_string())
}
