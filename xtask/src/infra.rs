//! `cargo xtask infra up|down|status|restart` and `cargo xtask e2e`: environments for a suite.

use std::io::IsTerminal;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use infra::session::{self, UpError};
use infra::{Event, Plan, RunState, Runs, Suite};
use serde_json::json;

use crate::BadInput;

/// Where an environment runs.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Backend {
    /// Processes on loopback ports on this machine.
    Local,
}

/// Bring a suite's environment up, inspect it, restart a part of it, tear it down.
#[derive(Args)]
pub struct Infra {
    #[command(subcommand)]
    command: InfraCommand,
}

#[derive(Subcommand)]
enum InfraCommand {
    /// Start a suite's components in parallel, each gated on real readiness; print endpoints.
    ///
    /// Endpoints go to stdout as `export NAME=value` lines, so
    /// `eval "$(cargo xtask infra up workflowexecution --keep)"` sets them in your shell.
    /// Without --keep the environment lives until Ctrl-C.
    Up(UpArgs),
    /// Stop a run's processes and remove its directory.
    Down {
        /// The run id (see `infra status`); optional when only one run exists.
        run: Option<String>,
        /// Tear down every run.
        #[arg(long, conflicts_with = "run")]
        all: bool,
    },
    /// List runs with their components, pids, ports and whether they still run.
    Status {
        /// Only this run.
        run: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Restart one component of a running environment in place (same port, same data).
    Restart {
        /// `postgres` or `redis`.
        component: String,
        /// The run id; optional when only one run exists.
        #[arg(long)]
        run: Option<String>,
    },
}

#[derive(Args)]
pub struct UpArgs {
    /// The suite: a name under manifests/suites/ (without `.yaml`), or a path to a suite file.
    pub(crate) suite: String,
    /// Where to run it.
    #[arg(long, value_enum, default_value = "local")]
    pub(crate) backend: Backend,
    /// Leave the environment running and exit (tear down later with `infra down`).
    #[arg(long)]
    pub(crate) keep: bool,
    /// One JSON document on stdout (progress events as JSON lines on stderr).
    #[arg(long)]
    pub(crate) json: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Run the steps one after another (for measuring what parallelism saves).
    #[arg(long, hide = true)]
    pub(crate) sequential: bool,
}

pub(crate) fn load_suite(root: &Path, name: &str) -> anyhow::Result<Suite> {
    let path =
        if name.ends_with(".yaml") { std::path::PathBuf::from(name) } else { infra::suite::path(root, name) };
    if !path.exists() {
        let known = infra::suite::names(root).join(", ");
        return Err(
            BadInput(format!("no suite `{name}` ({} not found); suites: {known}", path.display())).into()
        );
    }
    infra::suite::load(&path).map_err(|e| BadInput(e.to_string()).into())
}

/// SIGINT, SIGTERM and SIGHUP, caught from the moment they are installed: installed before anything is
/// started, so an interrupt at any point tears down instead of killing this process mid-way.
pub(crate) struct Interrupts {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Interrupts {
    pub(crate) fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            // A closed terminal must not leave the servers (in their own groups) running.
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// Shows run events: a spinner per step on a terminal, plain timestamped lines otherwise, JSON
/// lines with `--json`.
fn printer(json: bool) -> impl FnMut(&Event) {
    let started = Instant::now();
    let bars = (!json && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
    let mut spinners: std::collections::HashMap<String, indicatif::ProgressBar> = Default::default();
    let style = indicatif::ProgressStyle::with_template("{spinner} {prefix:<18} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    move |e| {
        if json {
            eprintln!("{}", serde_json::to_string(e).unwrap_or_default());
            return;
        }
        let line = match e {
            Event::Started { step, .. } => format!("{step}: started"),
            Event::Progress { step, message } => format!("{step}: {message}"),
            Event::Ready { step, duration_ms, summary } => {
                format!("{step}: ready in {:.1}s ({summary})", *duration_ms as f64 / 1000.0)
            }
            Event::Failed { step, message } => format!("{step}: FAILED: {message}"),
        };
        let Some(multi) = &bars else {
            eprintln!("[{:6.1}s] {line}", started.elapsed().as_secs_f64());
            return;
        };
        match e {
            Event::Started { step, .. } => {
                let bar = multi.add(indicatif::ProgressBar::new_spinner().with_style(style.clone()));
                bar.set_prefix(step.clone());
                bar.enable_steady_tick(std::time::Duration::from_millis(100));
                spinners.insert(step.clone(), bar);
            }
            Event::Progress { step, message } => {
                if let Some(bar) = spinners.get(step) {
                    bar.set_message(message.clone());
                }
            }
            Event::Ready { step, .. } | Event::Failed { step, .. } => {
                if let Some(bar) = spinners.remove(step) {
                    bar.finish_and_clear();
                }
                let _ = multi.println(line);
                if matches!(e, Event::Failed { .. }) {
                    for (_, bar) in spinners.drain() {
                        bar.abandon_with_message("stopped");
                    }
                }
            }
        }
    }
}

/// Brings the environment up, printing progress; errors are already reported on stderr.
pub(crate) async fn bring_up(
    root: &Path,
    runs: &Runs,
    suite: Suite,
    json: bool,
    sequential: bool,
    ints: &mut Interrupts,
) -> Result<infra::session::Up, ExitCode> {
    let options = session::UpOptions { sequential };
    match session::up(root, runs, suite, options, ints.recv(), printer(json)).await {
        Ok(up) => {
            if !json {
                eprint!("{}", infra::report::summary(&up.report));
            }
            Ok(up)
        }
        Err(UpError::Failed { step, message, report, dir }) => {
            if json {
                println!(
                    "{}",
                    json!({"ok": false, "failed_step": step, "error": message, "report": report, "run_dir": dir})
                );
            } else {
                eprint!("{}", infra::report::summary(&report));
                if let Some((_, f)) = &report.failure
                    && let Some(d) = &f.diagnosis
                {
                    eprintln!("\ndiagnosis:\n{d}");
                }
                eprintln!("error: {step} did not come up: {message}");
                eprintln!(
                    "logs and diagnosis kept in {}; remove with `cargo xtask infra down --all`",
                    dir.display()
                );
            }
            Err(ExitCode::FAILURE)
        }
        Err(UpError::Interrupted { .. }) => {
            eprintln!("interrupted: everything that was started has been stopped and removed");
            Err(ExitCode::from(130))
        }
        Err(e @ UpError::Io(_)) => {
            eprintln!("error: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

pub(crate) async fn tear_down(state: &RunState) -> anyhow::Result<()> {
    let dir = state.dir.clone();
    tokio::task::spawn_blocking(move || infra::teardown(&dir)).await?.context("tearing down")?;
    Ok(())
}

impl Infra {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let root = crate::workspace_root();
        let runs = Runs::new(&root);
        match self.command {
            InfraCommand::Up(args) => runtime()?.block_on(up(&root, &runs, args)),
            InfraCommand::Down { run, all } => down(&runs, run, all),
            InfraCommand::Status { run, json } => status(&runs, run, json),
            InfraCommand::Restart { component, run } => {
                let dir = pick(&runs, run.as_deref())?;
                let mut state = RunState::load(&dir).with_context(|| format!("reading {}", dir.display()))?;
                session::restart(&mut state, &component).map_err(BadInput)?;
                eprintln!("{component} restarted in run {}", state.id);
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting tokio")
}

async fn up(root: &Path, runs: &Runs, args: UpArgs) -> anyhow::Result<ExitCode> {
    let mut ints = Interrupts::install()?;
    let suite = load_suite(root, &args.suite)?;
    if args.dry_run {
        println!("plan for suite {} on the local backend:\n{}", suite.name, Plan::local(&suite));
        return Ok(ExitCode::SUCCESS);
    }
    let up = match bring_up(root, runs, suite, args.json, args.sequential, &mut ints).await {
        Ok(up) => up,
        Err(code) => return Ok(code),
    };
    if args.json {
        println!("{}", json!({"ok": true, "run": up.state.id, "env": up.state.env, "report": up.report}));
    } else {
        print!("{}", infra::report::exports(&up.state));
    }
    if args.keep {
        eprintln!("run {} keeps running; stop it with `cargo xtask infra down {}`", up.state.id, up.state.id);
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("environment up; press Ctrl-C to stop it");
    ints.recv().await;
    tear_down(&up.state).await?;
    eprintln!("stopped and removed run {}", up.state.id);
    Ok(ExitCode::SUCCESS)
}

fn pick(runs: &Runs, run: Option<&str>) -> anyhow::Result<std::path::PathBuf> {
    runs.pick(run).map_err(|e| BadInput(e).into())
}

fn down(runs: &Runs, run: Option<String>, all: bool) -> anyhow::Result<ExitCode> {
    let dirs = if all { runs.list() } else { vec![pick(runs, run.as_deref())?] };
    for dir in dirs {
        let stopped = infra::teardown(&dir).with_context(|| format!("tearing down {}", dir.display()))?;
        eprintln!("removed {} ({} process(es) stopped)", dir.display(), stopped.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn status(runs: &Runs, run: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let dirs = match run {
        Some(id) => vec![pick(runs, Some(&id))?],
        None => runs.list(),
    };
    let rows: Vec<serde_json::Value> =
        dirs.iter().filter_map(|d| RunState::load(d).ok()).map(|s| infra::report::status_row(&s)).collect();
    if json {
        println!("{}", json!({ "runs": rows }));
    } else if rows.is_empty() {
        println!("no runs under {}", runs.base().display());
    } else {
        for r in &rows {
            println!(
                "{} (suite {}, {})",
                r["run"].as_str().unwrap_or(""),
                r["suite"].as_str().unwrap_or(""),
                if r["running"] == true { "running" } else { "stopped" }
            );
            for (name, c) in r["components"].as_object().into_iter().flatten() {
                println!(
                    "  {name:<12} pid {:<8} port {:<6} {}",
                    c["pid"],
                    c["port"],
                    if c["running"] == true { "running" } else { "not running" }
                );
            }
            for (k, v) in r["endpoints"].as_object().into_iter().flatten() {
                println!("  {k}={}", v.as_str().unwrap_or(""));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
