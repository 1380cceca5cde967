//! `cargo xtask infra up|down|status|restart` and `cargo xtask e2e`: environments for a suite.

use std::io::IsTerminal;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use infra::report::{Finished, Tests};
use infra::session::{self, UpError};
use infra::{Event, Registry, RunState, Runs, Suite};
use serde_json::json;

use crate::BadInput;

/// Where an environment runs.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Backend {
    /// Processes on loopback ports on this machine.
    Local,
    /// Podman containers on a network of the run's own, ports published on 127.0.0.1.
    Podman,
    /// A kind cluster for the suite (created, or reused with --reuse), a namespace per run.
    Kind,
    /// An existing cluster from --kubeconfig/--context, a namespace per run.
    Cluster,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Podman => "podman",
            Backend::Kind => "kind",
            Backend::Cluster => "cluster",
        }
    }
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
    /// Stop a run's processes and containers and remove its directory.
    ///
    /// With --all, also removes containers, networks and secrets labelled as runs whose
    /// directory is gone (left by a killed xtask).
    Down {
        /// The run id (see `infra status`); optional when only one run exists.
        run: Option<String>,
        /// Tear down every run, and every labelled leftover.
        #[arg(long, conflicts_with = "run")]
        all: bool,
        /// Forget what cannot be reached (e.g. a namespace on a cluster that is gone): remove
        /// the run's record anyway, naming each resource that may still exist.
        #[arg(long)]
        force: bool,
        /// One JSON document on stdout: what was removed, and what could not be.
        #[arg(long)]
        json: bool,
    },
    /// Print the `export` lines of a run that is up, for `eval "$(cargo xtask infra env)"`
    /// (on a terminal: the endpoints with passwords hidden)
    Env {
        /// The run id (see `infra status`); optional when only one run exists.
        run: Option<String>,
    },
    /// List runs with their components, pids, ports and whether they still run.
    Status {
        /// Only this run.
        run: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Restart one service of a running environment in place (same port, same data).
    Restart {
        /// The service, e.g. `postgres` or `redis`.
        component: String,
        /// The run id; optional when only one run exists.
        #[arg(long)]
        run: Option<String>,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show or remove the migrated PostgreSQL templates local runs start from.
    ///
    /// A local run whose migrations, PostgreSQL, role, database and selection match a kept
    /// template copies it instead of running initdb and the migrations; a run that finds none
    /// makes one in the background once it is ready (`infra down` waits for that). Templates
    /// are only used on the (UTC) day they were made, because a migration may depend on the
    /// date. They live under .xtask/cache/postgres.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List the templates: id, size, age, and what their key holds; and broken ones.
    List {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove templates (all, or those named), broken ones, and what killed runs left half-written.
    ///
    /// Waits for runs copying a template to finish copying.
    Prune {
        /// Template ids (see `infra cache list`); all when none is given.
        ids: Vec<String>,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Keep the template a ready run wants (what a kept `infra up` starts in the background).
    #[command(hide = true)]
    Keep {
        /// The run directory.
        dir: PathBuf,
    },
}

#[derive(Args)]
pub struct UpArgs {
    /// The suite: a name under manifests/suites/ (without `.yaml`), or a path to a suite file.
    pub(crate) suite: String,
    /// Where to run it.
    #[arg(long, value_enum, default_value = "local")]
    pub(crate) backend: Backend,
    /// The image of a component on container backends, over the suite file's
    /// (e.g. `--image postgres=docker.io/library/postgres:16`); repeatable.
    #[arg(long, value_name = "COMPONENT=IMAGE", value_parser = parse_image)]
    pub(crate) image: Vec<(String, String)>,
    /// The program the local backend runs for a component, over the suite file's `binaries:`
    /// (e.g. `--binary datastorage=bin/data-storage`, the monorepo's own build); repeatable.
    #[arg(long, value_name = "COMPONENT=PATH", value_parser = parse_binary)]
    pub(crate) binary: Vec<(String, std::path::PathBuf)>,
    /// Leave the environment running and exit (tear down later with `infra down`).
    #[arg(long)]
    pub(crate) keep: bool,
    /// One JSON document on stdout (progress events as JSON lines on stderr).
    #[arg(long)]
    pub(crate) json: bool,
    /// Print the plan (steps, what each waits for, every argv, the expected critical path)
    /// and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// With --dry-run on kind or cluster: write every object that would be applied into DIR,
    /// one YAML file per object, secret values redacted.
    #[arg(long, value_name = "DIR", requires = "dry_run")]
    pub(crate) render: Option<std::path::PathBuf>,
    /// kind: use the suite's cluster if it exists (skipping what is in place) and keep it.
    #[arg(long)]
    pub(crate) reuse: bool,
    /// cluster: the kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub(crate) kubeconfig: Option<std::path::PathBuf>,
    /// cluster: the context in the kubeconfig (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
    /// cluster: the registry built images are pushed to, e.g. `registry.example.com/team`.
    #[arg(long, value_name = "HOST[/PATH]")]
    pub(crate) registry: Option<String>,
    /// kind, cluster: a local copy of the pinned Tekton release.yaml (offline machines);
    /// verified against the pinned SHA-256 like a download.
    #[arg(long, value_name = "FILE", env = "XTASK_TEKTON_RELEASE", hide_env_values = true)]
    pub(crate) tekton_release: Option<std::path::PathBuf>,
    /// kind, cluster: `full` applies Tekton's release and waits for its controller and
    /// webhook; `crds-only` applies its API, RBAC and configuration but not its Deployments,
    /// autoscaler and webhook configurations (a cluster that cannot pull Tekton's images).
    #[arg(long, value_enum, default_value = "full", env = "XTASK_TEKTON", hide_env_values = true)]
    pub(crate) tekton: Tekton,
    /// Write an HTML page of the steps on a time axis (critical path highlighted, what each
    /// waited for) to FILE, also when the run fails; without FILE to
    /// .xtask/timings/<run>.html. Give FILE after the suite or as --timings=FILE.
    #[arg(long, value_name = "FILE", num_args = 0..=1, conflicts_with = "dry_run")]
    pub(crate) timings: Option<Option<PathBuf>>,
    /// Run the steps one after another (for measuring what parallelism saves).
    #[arg(long, hide = true)]
    pub(crate) sequential: bool,
    /// local: run initdb and the migrations even when a migrated template matches, and keep
    /// none (see `infra cache`).
    #[arg(long)]
    pub(crate) no_cache: bool,
}

/// How much of Tekton's release a kind or cluster run applies.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Tekton {
    /// All of it, ready when its controller and admission webhook answer.
    Full,
    /// Its API, RBAC and configuration; not its Deployments, autoscaler and webhooks.
    CrdsOnly,
}

/// A report file named on the command line must be writable as a file: refused before anything
/// runs when it is a folder (a missing folder is made when the report is written).
pub(crate) fn check_report_file(flag: &str, path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        return Err(BadInput(format!(
            "{flag} {}: is a folder; give a file in it, e.g. {}",
            path.display(),
            path.join("report.xml").display()
        ))
        .into());
    }
    Ok(())
}

fn parse_image(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((c, i)) if !c.is_empty() && !i.is_empty() => Ok((c.to_string(), i.to_string())),
        _ => Err(format!("`{s}` is not COMPONENT=IMAGE")),
    }
}

fn parse_binary(s: &str) -> Result<(String, std::path::PathBuf), String> {
    parse_image(s).map(|(c, p)| (c, p.into())).map_err(|_| format!("`{s}` is not COMPONENT=PATH"))
}

impl UpArgs {
    /// The schema of the `--json` document: the plan's with `--dry-run`, else `schema`.
    pub(crate) fn json_schema(&self, schema: &'static str) -> Option<&'static str> {
        self.json.then_some(if self.dry_run { "xtask.plan/2" } else { schema })
    }

    /// The options `infra::session` takes; an image for a component the suite lacks is bad input.
    pub(crate) fn options(&self, suite: &Suite) -> anyhow::Result<session::UpOptions> {
        if let Some(Some(path)) = &self.timings {
            check_report_file("--timings", path)?;
        }
        let flagged = self
            .image
            .iter()
            .map(|(c, _)| ("--image", c))
            .chain(self.binary.iter().map(|(c, _)| ("--binary", c)));
        for (flag, c) in flagged {
            if !suite.components.contains(c) {
                return Err(BadInput(format!(
                    "{flag} {c}=...: suite {} has no component `{c}` (it has: {})",
                    suite.name,
                    suite.components.join(", ")
                ))
                .into());
            }
        }
        if matches!(self.backend, Backend::Local) && !self.image.is_empty() {
            return Err(BadInput(format!(
                "--image {}=...: images are for container backends (podman, kind, cluster); the local \
                 backend runs programs: use --binary COMPONENT=PATH, or --backend podman",
                self.image[0].0
            ))
            .into());
        }
        for (c, _) in &self.binary {
            if !infra::components::Registry::builtin().get(c).is_some_and(|c| c.replaceable()) {
                return Err(BadInput(format!(
                    "--binary {c}=...: `{c}` runs its own program; only datastorage takes another"
                ))
                .into());
            }
        }
        // Checked before anything starts, with the flag or suite field that named it.
        let root = crate::workspace_root();
        let named = self.binary.iter().map(|(c, p)| (format!("--binary {c}={}", p.display()), p));
        let in_suite = (suite.binaries.iter())
            .filter(|(c, _)| !self.binary.iter().any(|(f, _)| f == *c))
            .map(|(c, p)| (format!("suite {}: binaries.{c}", suite.name), p));
        for (what, path) in named.chain(in_suite) {
            infra::components::runnable(&root, path).map_err(|why| BadInput(format!("{what}: {why}")))?;
        }
        Ok(session::UpOptions {
            backend: self.backend.name().into(),
            images: self.image.iter().cloned().collect(),
            binaries: self.binary.iter().cloned().collect(),
            keep: self.keep,
            sequential: self.sequential,
            no_cache: self.no_cache,
            kube: infra::backend::kube::KubeOptions {
                kubeconfig: self.kubeconfig.clone(),
                context: self.context.clone(),
                registry: self.registry.clone(),
                reuse: self.reuse,
                tekton_release: self.tekton_release.clone(),
                tekton: match self.tekton {
                    Tekton::Full => infra::backend::kube::TektonMode::Full,
                    Tekton::CrdsOnly => infra::backend::kube::TektonMode::CrdsOnly,
                },
            },
        })
    }

    /// Prints the plan; what `--dry-run` does for `infra up` and `e2e`.
    pub(crate) fn print_plan(&self, root: &Path, runs: &Runs, suite: Suite) -> anyhow::Result<ExitCode> {
        let options = self.options(&suite)?;
        let name = suite.name.clone();
        let registry = Registry::builtin();
        if let Some(dir) = &self.render {
            let written = session::render(root, runs, suite.clone(), &registry, &options, dir)
                .map_err(|e| BadInput(e.to_string()))?;
            eprintln!("wrote {} objects into {}", written.files.len(), dir.display());
            for s in &written.skipped {
                eprintln!("not rendered: {s}");
            }
        }
        let dry = session::dry_run(root, runs, suite, &registry, &options)?;
        if self.json {
            println!(
                "{}",
                json!({"schema": "xtask.plan/2", "suite": name, "plan": dry.plan, "estimates_secs": dry.estimates,
                       "critical_path": dry.critical_path, "critical_path_secs": dry.critical_path_secs})
            );
        } else {
            println!("plan for suite {name} on the {} backend:\n{}", dry.plan.backend, dry.plan);
            if !dry.critical_path.is_empty() {
                let steps: Vec<String> = dry
                    .critical_path
                    .iter()
                    .map(|s| match dry.estimates.get(s) {
                        Some(secs) => format!("{s} (~{secs} s)"),
                        None => s.clone(),
                    })
                    .collect();
                println!(
                    "expected critical path (~{} s before the suite; estimates, see BENCHMARKS.md):\n  {}",
                    dry.critical_path_secs,
                    steps.join(" -> ")
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

pub(crate) fn load_suite(root: &Path, name: &str) -> anyhow::Result<Suite> {
    let path =
        if name.ends_with(".yaml") { std::path::PathBuf::from(name) } else { infra::suite::path(root, name) };
    if !path.exists() {
        let known = infra::suite::names(root).map(|n| n.join(", ")).unwrap_or_else(|e| e.to_string());
        return Err(
            BadInput(format!("no suite `{name}` ({} not found); suites: {known}", path.display())).into()
        );
    }
    // Kept typed: the error's diagnostic names the file, line and column.
    let suite = infra::suite::load(&path, &Registry::builtin())?;
    infra::suite::check_tables(&path, &suite, &root.join("migrations"))?;
    Ok(suite)
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
pub(crate) fn printer(json: bool) -> impl FnMut(&Event) {
    let started = Instant::now();
    let bars = (!json && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
    let mut spinners: std::collections::HashMap<String, indicatif::ProgressBar> = Default::default();
    // A step that starts once the others are done is a background one (keeping a template): it
    // runs beside the tests, whose output a ticking spinner would cut into, so it gets a line.
    let mut finished_any = false;
    let style = indicatif::ProgressStyle::with_template("{spinner} {prefix:<18} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    move |e| {
        if json {
            crate::output::event_line("xtask.up-event/1", e);
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
            Event::Started { step, .. } if spinners.is_empty() && finished_any => {
                let _ = multi.println(format!("{step}: started, in the background"));
            }
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
                finished_any = true;
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
    options: session::UpOptions,
    json: bool,
    ints: &mut Interrupts,
    files: &ReportFiles<'_>,
) -> Result<infra::session::Up, ExitCode> {
    let name = suite.name.clone();
    let backend = options.backend.clone();
    match session::up(root, runs, suite, &Registry::builtin(), options, ints.recv(), printer(json)).await {
        Ok(up) => {
            if !json {
                eprint!("{}", infra::report::summary(&up.report));
            }
            let finished = Finished {
                suite: &name,
                backend: &up.state.backend,
                run: Some(&up.state.id),
                setup: &up.report,
                tests: &Tests::NotPart,
            };
            if !files.write(&finished) {
                return Err(ExitCode::FAILURE);
            }
            Ok(up)
        }
        Err(e) => {
            let code = report_up_error_with_files(&name, &backend, e, files);
            Err(code)
        }
    }
}

/// The files a run writes when it ends (`--timings`, `--junit`): on success and on failure,
/// since a dashboard needs the report most when something broke.
pub(crate) struct ReportFiles<'a> {
    /// `--timings`: absent, without a file (the default path), or with one.
    pub(crate) timings: Option<&'a Option<PathBuf>>,
    /// `--junit FILE`.
    pub(crate) junit: Option<&'a Path>,
    /// Where the runs live: the default timings file goes beside them.
    pub(crate) runs: &'a Runs,
    /// `--json`: say where files went as JSON lines, like the progress events.
    pub(crate) json: bool,
    /// The schema of the command's `--json` document (`xtask.up/1`, `xtask.e2e/1`).
    pub(crate) schema: &'static str,
}

impl ReportFiles<'_> {
    /// Writes every file asked for, saying where on stderr; false when one could not be written
    /// (said on stderr too).
    pub(crate) fn write(&self, run: &Finished) -> bool {
        let mut ok = true;
        if let Some(file) = self.timings {
            let path = file.clone().unwrap_or_else(|| {
                // A run that never got an id still gets a file of its own.
                let id = run.run.map(str::to_string).unwrap_or_else(|| {
                    let secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or_default();
                    format!("{}-{secs}", run.suite)
                });
                self.runs.timings_file(&format!("{id}.html"))
            });
            ok &= self.write_one("timings", &path, &infra::timings::html(run));
        }
        if let Some(path) = self.junit {
            ok &= self.write_one("junit", path, &infra::junit::render(run));
        }
        ok
    }

    fn write_one(&self, what: &str, path: &Path, text: &str) -> bool {
        match infra::report::write_atomic(path, text) {
            Ok(()) if self.json => {
                eprintln!("{}", json!({"event": "wrote", "report": what, "path": path}));
                true
            }
            Ok(()) => {
                eprintln!("{what}: wrote {}", path.display());
                true
            }
            Err(e) => {
                eprintln!("error: writing the {what} report to {}: {e}", path.display());
                false
            }
        }
    }
}

/// Writes the report files for a run that did not come up, then reports why it did not;
/// returns the exit status.
pub(crate) fn report_up_error_with_files(
    suite: &str,
    backend: &str,
    e: UpError,
    files: &ReportFiles<'_>,
) -> ExitCode {
    let empty = infra::RunReport::default();
    let (setup, run, tests) = match &e {
        UpError::Failed { step, message, report, dir, .. } => (
            &**report,
            dir.file_name().map(|n| n.to_string_lossy().into_owned()),
            Tests::SetupFailed(format!("{step} failed: {message}")),
        ),
        UpError::Interrupted { report } => (&**report, None, Tests::Interrupted),
        UpError::Prepare(why) => (&empty, None, Tests::SetupFailed(why.to_string())),
    };
    let finished = Finished { suite, backend, run: run.as_deref(), setup, tests: &tests };
    // Written first: what follows on stderr is the diagnosis, the last thing a reader sees.
    files.write(&finished);
    report_up_error(e, files.json.then_some(files.schema))
}

/// Prints why an environment did not come up; returns the exit status. With `schema` (under
/// `--json`), also the command's document, `ok: false`.
pub(crate) fn report_up_error(e: UpError, schema: Option<&'static str>) -> ExitCode {
    match e {
        UpError::Failed { step, message, report, dir, evidence } => {
            if let Some(schema) = schema {
                println!(
                    "{}",
                    json!({"schema": schema, "ok": false, "exit_code": 1, "failed_step": step, "error": message,
                           "report": report, "run_dir": dir, "evidence": evidence})
                );
            } else {
                eprint!("{}", infra::report::summary(&report));
                let diagnosis = report.failure.as_ref().and_then(|(_, f)| f.diagnosis.as_deref());
                if let Some(d) = diagnosis {
                    eprintln!("\ndiagnosis:\n{d}");
                }
                // The diagnosis above already shows the log lines the message ends with.
                let first = message.lines().next().unwrap_or_default();
                match diagnosis {
                    Some(_) if first != message => {
                        eprintln!("error: {step} did not come up: {first} (see the diagnosis above)")
                    }
                    _ => eprintln!("error: {step} did not come up: {message}"),
                }
                if !evidence.is_empty() {
                    eprintln!("kept for a look:");
                    for line in &evidence {
                        eprintln!("  {line}");
                    }
                }
                let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                eprintln!(
                    "logs and diagnosis kept in {}; remove with `cargo xtask infra down {id}`",
                    dir.display()
                );
            }
            ExitCode::FAILURE
        }
        UpError::Interrupted { report } => {
            if let Some(schema) = schema {
                println!(
                    "{}",
                    json!({"schema": schema, "ok": false, "exit_code": 130, "interrupted": true, "report": report})
                );
            }
            eprintln!("interrupted: everything that was started has been stopped and removed");
            ExitCode::from(130)
        }
        UpError::Prepare(e) => crate::output::report_error(&e.into(), schema),
    }
}

impl Infra {
    /// The schema of the `--json` document the subcommand prints, when asked for.
    pub fn json_schema(&self) -> Option<&'static str> {
        match &self.command {
            InfraCommand::Up(args) => args.json_schema("xtask.up/1"),
            InfraCommand::Down { json, .. } => json.then_some("xtask.down/1"),
            InfraCommand::Status { json, .. } => json.then_some("xtask.status/1"),
            InfraCommand::Env { .. } => None,
            InfraCommand::Restart { json, .. } => json.then_some("xtask.restart/1"),
            InfraCommand::Cache { command: CacheCommand::List { json } } => {
                json.then_some("xtask.cache-list/1")
            }
            InfraCommand::Cache { command: CacheCommand::Prune { json, .. } } => {
                json.then_some("xtask.cache-prune/1")
            }
            InfraCommand::Cache { command: CacheCommand::Keep { .. } } => None,
        }
    }

    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let root = crate::workspace_root();
        let runs = Runs::new(&root);
        match self.command {
            InfraCommand::Up(args) => runtime()?.block_on(up(&root, &runs, args)),
            InfraCommand::Down { run, all, force, json } => down(&runs, run, all, force, json),
            InfraCommand::Status { run, json } => status(&runs, run, json),
            InfraCommand::Env { run } => env(&runs, run),
            InfraCommand::Cache { command: CacheCommand::Keep { dir } } => runtime()?.block_on(keep(&dir)),
            InfraCommand::Cache { command } => cache(&root, &runs, command),
            InfraCommand::Restart { component, run, json } => {
                let dir = pick(&runs, run.as_deref())?;
                let mut state = RunState::load(&dir).with_context(|| format!("reading {}", dir.display()))?;
                let started = Instant::now();
                runtime()?.block_on(session::restart(&mut state, &component)).map_err(classify)?;
                if json {
                    println!(
                        "{}",
                        json!({"schema": "xtask.restart/1", "ok": true, "run": state.id, "component": component,
                               "duration_ms": started.elapsed().as_millis()})
                    );
                } else {
                    eprintln!("{component} restarted in run {}", state.id);
                }
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

/// Errors that name something the caller got wrong (a run, a component) exit 2; the rest 1.
fn classify(e: infra::InfraError) -> anyhow::Error {
    match e {
        infra::InfraError::NoRun(_) | infra::InfraError::Invalid(_) => BadInput(e.to_string()).into(),
        other => other.into(),
    }
}

async fn up(root: &Path, runs: &Runs, args: UpArgs) -> anyhow::Result<ExitCode> {
    let mut ints = Interrupts::install()?;
    let suite = load_suite(root, &args.suite)?;
    if args.dry_run {
        return args.print_plan(root, runs, suite);
    }
    report_orphans(runs);
    let options = args.options(&suite)?;
    let files = ReportFiles {
        timings: args.timings.as_ref(),
        junit: None,
        runs,
        json: args.json,
        schema: "xtask.up/1",
    };
    let mut up = match bring_up(root, runs, suite, options, args.json, &mut ints, &files).await {
        Ok(up) => up,
        Err(code) => return Ok(code),
    };
    // Work the run does not need (keeping a template) goes on after it is ready: in a detached
    // xtask when this one exits now, else here, beside the wait for Ctrl-C.
    let kept_by = match args.keep && infra::background::wanted(&up.state) {
        true => Some(spawn_keeper(&up.state)),
        false => None,
    };
    let background = match args.keep {
        true => None,
        false => Some(session::Background::start(&mut up.report, &up.state, &mut |_| {})),
    };
    if args.json {
        println!(
            "{}",
            json!({"schema": "xtask.up/1", "ok": true, "run": up.state.id, "env": up.state.env, "report": up.report})
        );
    } else if std::io::stdout().is_terminal() {
        // Passwords stay off the screen; `eval "$(...)"` reads stdout through a pipe and gets them.
        println!("endpoints (passwords hidden):");
        for (k, v) in &up.state.env {
            println!("  {k}={}", redact::connection_string(v));
        }
        println!(
            "to set them in your shell: eval \"$(cargo xtask infra up {} --keep)\", or read {}",
            args.suite,
            up.state.dir.join("state.json").display()
        );
    } else {
        print!("{}", infra::report::exports(&up.state));
    }
    if args.keep {
        eprintln!("run {} keeps running; stop it with `cargo xtask infra down {}`", up.state.id, up.state.id);
        match kept_by {
            Some(Ok(line)) => eprintln!("{line}"),
            Some(Err(e)) => eprintln!("note: no template of the migrated database kept: {e:#}"),
            None => {}
        }
        print_reach(&up.state);
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("environment up; press Ctrl-C to stop it");
    ints.recv().await;
    if let Some(background) = background {
        background.finish(&mut up.report, &mut printer(args.json)).await;
    }
    tear_down(&up.state).await?;
    eprintln!("stopped and removed run {}", up.state.id);
    Ok(ExitCode::SUCCESS)
}

/// Starts a detached `xtask infra cache keep` for the kept run in `state` (recorded in the
/// run, so `infra down` waits for it); says where it logs.
fn spawn_keeper(state: &RunState) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding this program")?;
    let (pid, log) = infra::background::detach(&state.dir, &exe, &["infra", "cache", "keep"])?;
    Ok(format!(
        "keeping a template of the migrated database in the background (pid {pid}, log {}); `infra down` waits for it",
        log.display()
    ))
}

/// `infra cache keep DIR`: runs the background steps of the ready run in `dir`, saying what
/// they do on stdout (the log its `infra up` gave it).
async fn keep(dir: &Path) -> anyhow::Result<ExitCode> {
    let state =
        RunState::load(dir).with_context(|| format!("reading {}", dir.join("state.json").display()))?;
    let said = infra::background::run(&state, &|m| println!("{m}")).await;
    println!("{said}");
    Ok(ExitCode::SUCCESS)
}

/// On a cluster, how to reach a kept run once this process (and its port-forwards) is gone.
/// `infra env`: the exports of a run that is up, the way `infra up` prints them.
fn env(runs: &Runs, run: Option<String>) -> anyhow::Result<ExitCode> {
    let dir = pick(runs, run.as_deref())?;
    let state = RunState::load(&dir).map_err(|e| anyhow::anyhow!("run {}: {e}", dir.display()))?;
    if state.env.is_empty() {
        anyhow::bail!(
            "run {} has no endpoints (it did not come up); `cargo xtask infra status {}` says more",
            state.id,
            state.id
        );
    }
    if std::io::stdout().is_terminal() {
        println!("endpoints of run {} (passwords hidden):", state.id);
        for (k, v) in &state.env {
            println!("  {k}={}", redact::connection_string(v));
        }
        println!("to set them in your shell: eval \"$(cargo xtask infra env {})\"", state.id);
    } else {
        print!("{}", infra::report::exports(&state));
    }
    print_reach(&state);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_reach(state: &RunState) {
    let lines = infra::report::reach(state);
    if !lines.is_empty() {
        eprintln!("its port-forwards end with this xtask; to keep the endpoints' URLs working, run:");
        for l in lines {
            eprintln!("  {l}");
        }
    }
}

/// Tears a run down from a blocking thread.
pub(crate) async fn tear_down(state: &RunState) -> anyhow::Result<()> {
    let dir = state.dir.clone();
    tokio::task::spawn_blocking(move || infra::teardown(&dir)).await?.context("tearing down")?;
    Ok(())
}

/// Says which runs were left behind by an xtask that is gone, before starting another.
fn report_orphans(runs: &Runs) {
    let dirs = runs.list().unwrap_or_else(|e| {
        eprintln!("note: cannot look for runs left behind: {e}");
        Vec::new()
    });
    for dir in dirs {
        if let Ok(state) = RunState::load(&dir)
            && state.orphaned()
            && !state.resources.is_empty()
        {
            eprintln!(
                "note: run {} was left running by xtask pid {}, which is gone; remove it with `cargo xtask infra down {}`",
                state.id, state.owner_pid, state.id
            );
        }
    }
    if let Ok(strays) = session::stray_runs(runs) {
        for id in strays {
            eprintln!(
                "note: containers of run {id} are left without a run directory; `cargo xtask infra down --all` removes them"
            );
        }
    }
}

fn pick(runs: &Runs, run: Option<&str>) -> anyhow::Result<std::path::PathBuf> {
    runs.pick(run).map_err(|e| BadInput(e.to_string()).into())
}

fn down(runs: &Runs, run: Option<String>, all: bool, force: bool, json: bool) -> anyhow::Result<ExitCode> {
    let dirs = if all { runs.list()? } else { vec![pick(runs, run.as_deref())?] };
    let mut removed_runs = Vec::new();
    let mut errors = Vec::new();
    let results: Vec<_> = if force {
        session::forget(&dirs)
    } else {
        let down = session::down(&dirs).into_iter();
        down.map(|(d, r)| (d, r.map(|removed| infra::state::Forgotten { removed, forgotten: Vec::new() })))
            .collect()
    };
    for (dir, result) in results {
        let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match result {
            Ok(infra::state::Forgotten { removed, forgotten }) => {
                if !json {
                    eprintln!("removed {} ({} resource(s) stopped)", dir.display(), removed.len());
                    for f in &forgotten {
                        eprintln!("warning: forgotten, may still exist: {f}");
                    }
                }
                removed_runs.push(json!({"run": id, "dir": dir, "resources_stopped": removed.len(),
                                         "forgotten": forgotten}));
            }
            Err(e) => {
                let message = format!("tearing down {}: {e}", dir.display());
                if !json {
                    eprintln!("error: {message}");
                    eprintln!(
                        "hint: if what could not be reached is gone for good (e.g. a deleted cluster), \
                         `cargo xtask infra down {id} --force` removes the run and names what it forgot"
                    );
                }
                errors.push(json!({"run": id, "error": message}));
            }
        }
    }
    let mut strays = Vec::new();
    if all {
        for id in session::stray_runs(runs)? {
            match session::remove_stray(runs, &id) {
                Ok(removed) => {
                    if !json {
                        eprintln!("removed leftovers of run {id}: {}", removed.join(", "));
                    }
                    strays.push(json!({"run": id, "removed": removed}));
                }
                Err(e) => {
                    let message = format!("removing leftovers of run {id}: {e}");
                    if !json {
                        eprintln!("error: {message}");
                    }
                    errors.push(json!({"run": id, "error": message}));
                }
            }
        }
    }
    if json {
        println!(
            "{}",
            json!({"schema": "xtask.down/1", "ok": errors.is_empty(), "removed": removed_runs,
                   "strays_removed": strays, "errors": errors})
        );
    }
    Ok(if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// An age for people: `42s`, `7m`, `3h`, `2d`.
fn human_age(age: Duration) -> String {
    match age.as_secs() {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn cache(root: &Path, runs: &Runs, command: CacheCommand) -> anyhow::Result<ExitCode> {
    let cache = infra::cache::Cache::new(runs);
    let shown = cache.dir().strip_prefix(root).unwrap_or(cache.dir()).display().to_string();
    let row = |e: &infra::cache::Entry| {
        json!({"id": e.meta.id, "bytes": e.bytes, "age_secs": e.age.as_secs(), "created": e.meta.created,
               "run": e.meta.run, "key": e.meta.key})
    };
    let line = |e: &infra::cache::Entry| {
        let k = &e.meta.key;
        let holds = if k.selection == "initdb" {
            "a fresh cluster (initdb only)".to_string()
        } else {
            format!(
                "{} migrations ({}) as {} in {}, for {}",
                k.migrations.len(),
                k.selection,
                k.user,
                k.database,
                k.day
            )
        };
        format!(
            "{}  {:>6.1} MB  {:>4} old  {}: {holds}",
            e.meta.id,
            e.bytes as f64 / 1e6,
            human_age(e.age),
            k.postgres
        )
    };
    match command {
        CacheCommand::List { json } => {
            let entries = cache.list()?;
            let broken = cache.broken()?;
            if json {
                let rows: Vec<_> = entries.iter().map(row).collect();
                let broken: Vec<_> =
                    broken.iter().map(|(dir, why)| json!({"dir": dir, "error": why})).collect();
                println!(
                    "{}",
                    json!({"schema": "xtask.cache-list/1", "dir": cache.dir(), "templates": rows, "broken": broken})
                );
                return Ok(ExitCode::SUCCESS);
            }
            for (_, why) in &broken {
                println!("broken, used by no run (`cargo xtask infra cache prune` removes it): {why}");
            }
            if entries.is_empty() {
                println!("no templates under {shown}");
            } else {
                for e in &entries {
                    println!("{}", line(e));
                }
                let total: u64 = entries.iter().map(|e| e.bytes).sum();
                println!("{} templates, {:.1} MB under {shown}", entries.len(), total as f64 / 1e6);
            }
        }
        CacheCommand::Keep { dir } => unreachable!("run by `keep` ({})", dir.display()),
        CacheCommand::Prune { ids, json } => {
            let known: Vec<String> = cache.list()?.into_iter().map(|e| e.meta.id).collect();
            if let Some(unknown) = ids.iter().find(|id| !known.contains(id)) {
                return Err(BadInput(format!(
                    "no template `{unknown}` under {shown} (`cargo xtask infra cache list` shows them)"
                ))
                .into());
            }
            let removed = cache.prune(|e| ids.is_empty() || ids.contains(&e.meta.id))?;
            if json {
                let rows: Vec<_> = removed.iter().map(row).collect();
                println!("{}", json!({"schema": "xtask.cache-prune/1", "ok": true, "removed": rows}));
            } else {
                for e in &removed {
                    println!("removed {}", line(e));
                }
                let total: u64 = removed.iter().map(|e| e.bytes).sum();
                println!("removed {} templates, {:.1} MB", removed.len(), total as f64 / 1e6);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status(runs: &Runs, run: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let dirs = match run {
        Some(id) => vec![pick(runs, Some(&id))?],
        None => runs.list()?,
    };
    let rows: Vec<serde_json::Value> = dirs
        .iter()
        .map(|d| match RunState::load(d) {
            Ok(s) => infra::report::status_row(&s),
            Err(e) => {
                let id = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let file = d.join("state.json");
                json!({"run": id, "dir": d, "state": format!(
                    "unreadable: {}: {e}; `cargo xtask infra down {id}` removes it", file.display())})
            }
        })
        .collect();
    let strays = session::stray_runs(runs).unwrap_or_default();
    if json {
        println!("{}", json!({"schema": "xtask.status/1", "runs": rows, "stray_runs": strays}));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() && strays.is_empty() {
        println!("no runs under {}", runs.base().display());
    }
    for r in &rows {
        println!(
            "{} (suite {}, {} backend): {}",
            r["run"].as_str().unwrap_or("?"),
            r["suite"].as_str().unwrap_or("?"),
            r["backend"].as_str().unwrap_or("?"),
            r["state"].as_str().unwrap_or("?")
        );
        for res in r["resources"].as_array().into_iter().flatten() {
            let what = match res["type"].as_str() {
                Some("process") => format!(
                    "{:<12} process {} pid {} port {} {}",
                    res["component"].as_str().unwrap_or(""),
                    res["program"].as_str().unwrap_or(""),
                    res["pid"],
                    res["port"],
                    if res["running"] == true { "running" } else { "not running" }
                ),
                Some("container") => {
                    format!(
                        "{:<12} container {}",
                        res["component"].as_str().unwrap_or(""),
                        res["name"].as_str().unwrap_or("")
                    )
                }
                Some("background") => format!(
                    "{:<12} {} pid {} {}: {}",
                    "background",
                    res["program"].as_str().unwrap_or(""),
                    res["pid"],
                    if res["running"] == true { "running" } else { "done" },
                    res["task"].as_str().unwrap_or(""),
                ),
                Some(other) => format!("{:<12} {other} {}", "", res["name"].as_str().unwrap_or("")),
                None => continue,
            };
            println!("  {what}");
        }
        for (k, v) in r["endpoints"].as_object().into_iter().flatten() {
            println!("  {k}={}", v.as_str().unwrap_or(""));
        }
    }
    for id in strays {
        println!(
            "{id}: containers, networks or secrets left without a run directory; `cargo xtask infra down --all`"
        );
    }
    Ok(ExitCode::SUCCESS)
}
