//! A whole environment's life: bring a suite up (run state first, then the plan), run its tests
//! against it, restart a component, and tear it down, leaving nothing behind.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{self, Backend};
use crate::components::Registry;
use crate::error::InfraError;
use crate::exec::Executor;
use crate::plan::Plan;
use crate::run::Run;
use crate::runner::{self, Event, RunReport, StepFailure};
use crate::state::{RunState, Runs, stop_keep_logs, teardown};
use crate::suite::Suite;

/// An environment that came up.
#[derive(Debug)]
pub struct Up {
    /// What was started, with the endpoints.
    pub state: RunState,
    /// How the steps went.
    pub report: RunReport,
    /// The backend, kept while the environment is used: its port-forwards (kind, cluster) live
    /// as long as this value.
    pub backend: Held,
}

/// A backend held alive; `Debug` shows its name.
#[derive(Clone)]
pub struct Held(pub Arc<dyn Backend>);

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({})", self.0.name())
    }
}

/// Why an environment is not up.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The run could not be prepared (run directory, backend, plan).
    #[error(transparent)]
    Prepare(#[from] InfraError),
    /// A step failed; everything was stopped, logs and the diagnosis kept in `dir`.
    #[error("{step} failed: {message}")]
    Failed {
        /// The failed step.
        step: String,
        /// Why.
        message: String,
        /// The steps as far as they got.
        report: Box<RunReport>,
        /// The run directory holding logs, `diagnosis.txt` and `diagnosis.json`.
        dir: PathBuf,
        /// What else was kept there, a line each (the schema as applied, the cluster's logs).
        evidence: Vec<String>,
    },
    /// Interrupted (Ctrl-C); everything was stopped and removed.
    #[error("interrupted; everything that was started has been stopped and removed")]
    Interrupted {
        /// The steps as far as they got.
        report: Box<RunReport>,
    },
}

/// How to bring an environment up.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// The backend: `local` (default) or `podman`.
    pub backend: String,
    /// Images per component, over the suite file's.
    pub images: BTreeMap<String, String>,
    /// Programs per component for the local backend, over the suite file's (relative to the
    /// workspace root).
    pub binaries: BTreeMap<String, std::path::PathBuf>,
    /// The run is meant to outlive this process (`--keep`).
    pub keep: bool,
    /// Run the steps one after another instead of in parallel (to measure what parallelism saves).
    pub sequential: bool,
    /// Neither start PostgreSQL from a migrated template nor keep one (`--no-cache`).
    pub no_cache: bool,
    /// The kind and cluster backends' options.
    pub kube: backend::kube::KubeOptions,
}

impl UpOptions {
    fn backend(&self) -> Result<Arc<dyn Backend>, InfraError> {
        backend::with_options(if self.backend.is_empty() { "local" } else { &self.backend }, &self.kube)
    }
}

/// The environment variable that names a component's image on this machine, e.g.
/// `XTASK_IMAGE_POSTGRES`: over the suite file's choice, under a `--image` flag.
pub fn image_env(component: &str) -> String {
    format!("XTASK_IMAGE_{}", component.to_uppercase().replace('-', "_"))
}

fn new_run(root: &Path, mut suite: Suite, registry: &Registry, options: &UpOptions, state: RunState) -> Run {
    suite.binaries.extend(options.binaries.clone());
    let mut images = suite.images.clone();
    for c in &suite.components {
        if let Ok(image) = std::env::var(image_env(c))
            && !image.is_empty()
        {
            images.insert(c.clone(), image);
        }
    }
    // kube-api's second image (etcd) has no component of its own to be named by.
    if suite.components.iter().any(|c| c == "kube-api")
        && let Ok(image) = std::env::var(image_env(crate::components::ETCD_IMAGE_KEY))
        && !image.is_empty()
    {
        images.insert(crate::components::ETCD_IMAGE_KEY.into(), image);
    }
    images.extend(options.images.clone());
    let mut run = Run::new(root, suite, registry.clone(), images, state);
    run.cache = !options.no_cache;
    run
}

/// The plan `up` would carry out, without starting anything or creating a run directory.
pub fn plan(
    root: &Path,
    runs: &Runs,
    suite: Suite,
    registry: &Registry,
    options: &UpOptions,
) -> Result<Plan, InfraError> {
    let backend = options.backend()?;
    let state = RunState {
        id: format!("{}-<run>", suite.name),
        suite: suite.name.clone(),
        backend: backend.name().into(),
        dir: runs.base().join(format!("{}-<run>", suite.name)),
        ..Default::default()
    };
    let run = new_run(root, suite, registry, options, state);
    Plan::new(&run, &*backend)
}

/// What a plan needs from this machine that can be checked before anything starts: etcd and
/// kube-apiserver for `kube-api`.
fn preflight(plan: &Plan, backend: &dyn Backend) -> Result<(), InfraError> {
    for (name, service) in &plan.services {
        // On Kubernetes the cluster is the API, on podman images run it: nothing to find here.
        if service.program == crate::model::Program::KubeApi && backend.kube_api_from_assets() {
            envtest::Assets::find().map_err(|e| InfraError::Backend {
                backend: backend.name(),
                message: format!("{name}: {e}"),
            })?;
        }
    }
    Ok(())
}

/// A dry run's plan with what each step is expected to take on its backend.
#[derive(Debug, serde::Serialize)]
pub struct DryRun {
    /// The plan.
    pub plan: Plan,
    /// Expected seconds per step, when the backend publishes estimates.
    pub estimates: BTreeMap<String, u64>,
    /// The expected critical path through the plan, then `suite` for an e2e run.
    pub critical_path: Vec<String>,
    /// Its expected total in seconds (the suite's own time not included).
    pub critical_path_secs: u64,
}

/// The plan `up` would carry out, with the backend's step estimates and the expected critical path.
pub fn dry_run(
    root: &Path,
    runs: &Runs,
    suite: Suite,
    registry: &Registry,
    options: &UpOptions,
) -> Result<DryRun, InfraError> {
    let backend = options.backend()?;
    let plan = plan(root, runs, suite, registry, options)?;
    let estimates: BTreeMap<String, u64> =
        plan.steps.iter().filter_map(|s| backend.estimate(s).map(|d| (s.id.clone(), d.as_secs()))).collect();
    let (mut critical_path, total) = if estimates.is_empty() {
        (Vec::new(), 0)
    } else {
        let ms = estimates.iter().map(|(k, v)| (k.clone(), u128::from(*v) * 1000)).collect();
        plan.critical_path(&ms)
    };
    if !critical_path.is_empty() {
        critical_path.push("suite".into());
    }
    Ok(DryRun { plan, estimates, critical_path, critical_path_secs: (total / 1000) as u64 })
}

/// What `--render` wrote.
#[derive(Debug)]
pub struct Rendered {
    /// The files, in apply order.
    pub files: Vec<PathBuf>,
    /// What could not be rendered here, and why.
    pub skipped: Vec<String>,
}

/// Writes every object a Kubernetes backend would apply for `suite` into `dir`, one YAML file
/// per object (`NN-kind-name.yaml`), secret values redacted.
pub fn render(
    root: &Path,
    runs: &Runs,
    suite: Suite,
    registry: &Registry,
    options: &UpOptions,
    dir: &Path,
) -> Result<Rendered, InfraError> {
    let backend = options.backend()?;
    if !backend.kubernetes() {
        return Err(InfraError::Invalid(format!(
            "--render writes Kubernetes objects: use it with --backend kind or cluster, not {}",
            backend.name()
        )));
    }
    // A name Kubernetes accepts, unlike the `<run>` placeholder of a printed plan.
    let id = format!("{}-dry-run", suite.name);
    let state = RunState {
        id: id.clone(),
        suite: suite.name.clone(),
        backend: backend.name().into(),
        dir: runs.base().join(&id),
        ..Default::default()
    };
    let run = new_run(root, suite, registry, options, state);
    let plan = Plan::new(&run, &*backend)?;
    let ns = backend::kube::namespace_name(&id);
    let mut docs: Vec<(String, String)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let ns_object = crate::kubernetes::namespace(&ns, &id);
    docs.push((ns_object.id(), ns_object.to_redacted_yaml()?));
    for step in &plan.steps {
        match &step.kind {
            crate::plan::StepKind::Start(c) => {
                let service = &plan.services[c];
                let image = backend::kube::planned_image(&service.image);
                for o in crate::kubernetes::service_objects(&ns, &id, c, service, &image)? {
                    docs.push((o.id(), o.to_redacted_yaml()?));
                }
            }
            crate::plan::StepKind::Apply(c) => {
                if let Some(crate::model::Manifests::Tekton) = plan.manifests.get(c) {
                    match backend::kube::local_tekton(options.kube.tekton_release.as_deref()) {
                        Some(release) => {
                            for step in release?.plan().steps() {
                                if let tekton::Step::Apply(o) = step {
                                    let name = tekton::object_ref(o);
                                    let yaml = serde_saphyr::to_string(&**o)
                                        .map_err(|e| InfraError::Model(format!("{name}: rendering YAML: {e}")))?;
                                    docs.push((name, yaml));
                                }
                            }
                        }
                        None => skipped.push(format!(
                            "{c}: the pinned release is not on this machine (it is downloaded by a real run; pass --tekton-release FILE to render it)"
                        )),
                    }
                }
                if let Some(crate::model::Manifests::Controller(spec)) = plan.manifests.get(c) {
                    let image = backend::kube::planned_image(&spec.image);
                    for o in backend::kube::controller_objects(root, spec, &ns, &image)? {
                        let name = tekton::object_ref(&o);
                        let yaml = serde_saphyr::to_string(&o)
                            .map_err(|e| InfraError::Model(format!("{name}: rendering YAML: {e}")))?;
                        docs.push((name, yaml));
                    }
                }
            }
            _ => {}
        }
    }
    std::fs::create_dir_all(dir).map_err(InfraError::io("creating the render directory"))?;
    let mut written = Vec::new();
    for (i, (name, yaml)) in docs.iter().enumerate() {
        let slug: String = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
            .collect();
        let path = dir.join(format!("{:02}-{slug}.yaml", i + 1));
        std::fs::write(&path, yaml).map_err(InfraError::io("writing a rendered object"))?;
        written.push(path);
    }
    Ok(Rendered { files: written, skipped })
}

/// Brings `suite` up on the chosen backend under `runs`, reporting on `on_event`.
///
/// On failure everything started is stopped and the run directory keeps the logs, a
/// `diagnosis.txt` and `diagnosis.json`; on interrupt everything is stopped and removed.
pub async fn up(
    root: &Path,
    runs: &Runs,
    suite: Suite,
    registry: &Registry,
    options: UpOptions,
    interrupt: impl Future<Output = ()>,
    on_event: impl FnMut(&Event),
) -> Result<Up, UpError> {
    let backend = options.backend()?;
    let (id, dir) = runs
        .create(&suite.name)
        .map_err(InfraError::io(format!("creating a run directory under {}", runs.base().display())))?;
    let state = RunState {
        id,
        suite: suite.name.clone(),
        backend: backend.name().into(),
        dir: dir.clone(),
        created: chrono::Local::now().to_rfc3339(),
        owner_pid: std::process::id(),
        kept: options.keep,
        ..Default::default()
    };
    state.save().map_err(InfraError::io("saving the run state"))?;
    let run = Arc::new(new_run(root, suite, registry, &options, state).with_signing());
    let plan = match Plan::new(&run, &*backend).and_then(|p| preflight(&p, &*backend).map(|()| p)) {
        Ok(p) => p,
        Err(e) => {
            let _ = teardown(&dir);
            return Err(e.into());
        }
    };
    let executor = Arc::new(Executor::new(plan.clone(), backend.clone(), run.clone()));
    let limit = if options.sequential { 1 } else { usize::MAX };
    let report = runner::run_limited(&plan, executor, limit, interrupt, on_event).await;
    if report.ok() {
        return Ok(Up { state: run.state(), report, backend: Held(backend) });
    }
    // Start-ups still running in the background finish (or fail) before anything is removed.
    backend.settle().await;
    if report.interrupted {
        let d = dir.clone();
        tokio::task::spawn_blocking(move || teardown(&d))
            .await
            .map_err(|e| InfraError::Invalid(format!("teardown crashed: {e}")))??;
        return Err(UpError::Interrupted { report: Box::new(report) });
    }
    let (step, failure) = report.failure.clone().unwrap_or_else(|| {
        ("run".into(), StepFailure::new("the run ended with steps that never became ready"))
    });
    let mut evidence = save_schema(&run.endpoints(), &run.dir()).await.into_iter().collect::<Vec<_>>();
    evidence.extend(keep_evidence(&run, &*backend, &step, &failure));
    let d = dir.clone();
    tokio::task::spawn_blocking(move || stop_keep_logs(&d))
        .await
        .map_err(|e| InfraError::Invalid(format!("teardown crashed: {e}")))??;
    Err(UpError::Failed { step, message: failure.message, report: Box::new(report), dir, evidence })
}

/// Saves the PostgreSQL schema as applied into `schema.txt` when the run's PostgreSQL was up,
/// and says what it holds: after a failed migration or a service that cannot find its tables,
/// the first question is what the database really has.
async fn save_schema(endpoints: &BTreeMap<String, crate::model::Endpoint>, dir: &Path) -> Option<String> {
    let endpoint = endpoints.get("postgres")?.clone();
    let url = endpoint.url(crate::model::View::Host);
    let read = async {
        let client = migrations::connect(url.expose()).await?;
        client.explained(migrations::schema::describe(&client).await).await
    };
    let line = match tokio::time::timeout(Duration::from_secs(10), read).await {
        Ok(Ok(schema)) => {
            let path = dir.join("schema.txt");
            match std::fs::write(&path, schema.to_string()) {
                Ok(()) => format!("schema as applied: {} ({})", path.display(), schema.summary()),
                Err(e) => {
                    format!("schema as applied: {} (writing {}: {e})", schema.summary(), path.display())
                }
            }
        }
        Ok(Err(e)) => format!("schema as applied: not read ({e})"),
        Err(_) => "schema as applied: not read (PostgreSQL did not answer in 10 s)".into(),
    };
    Some(line)
}

/// Writes the diagnosis and the backend's logs (container logs) into the run directory;
/// returns a line for each kind of log kept.
fn keep_evidence(run: &Run, backend: &dyn Backend, step: &str, failure: &StepFailure) -> Vec<String> {
    let dir = run.dir();
    let mut kept = Vec::new();
    for (name, text) in backend.collect_logs(run) {
        let path = dir.join(&name);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        // The first line says what the file is (a container's exit status, where kind's logs went).
        kept.push(format!("{}: {}", path.display(), text.lines().next().unwrap_or_default()));
        let _ = std::fs::write(path, text);
    }
    let text =
        format!("{step} failed: {}\n\n{}\n", failure.message, failure.diagnosis.as_deref().unwrap_or(""));
    let _ = std::fs::write(dir.join("diagnosis.txt"), text);
    if let Some(json) = &failure.diagnosis_json {
        let _ = std::fs::write(
            dir.join("diagnosis.json"),
            serde_json::to_string_pretty(json).unwrap_or_default(),
        );
    }
    kept
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
    let mut std_cmd = procs::command(&argv[0]);
    procs::own_process_group(&mut std_cmd);
    let mut cmd = tokio::process::Command::from(std_cmd);
    cmd.args(&argv[1..]).current_dir(root).envs(crate::state::test_env(state)?).env("XTASK_RUN", &state.id);
    if let Ok(me) = std::env::current_exe() {
        cmd.env("XTASK_BIN", me);
    }
    // The suite's output is a log for people: on our stderr, so that our stdout stays the
    // command's result (with --json, one JSON document and nothing else).
    let stderr = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?;
    cmd.stdout(std::process::Stdio::from(stderr));
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

/// Restarts one service of a running environment in place (same port, same data) and waits
/// until it is ready again.
pub async fn restart(state: &mut RunState, component: &str) -> Result<(), InfraError> {
    let endpoint = state.endpoints.get(component).cloned().ok_or_else(|| {
        InfraError::Invalid(format!(
            "run {} has no running service `{component}` (it has: {})",
            state.id,
            state.endpoints.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    match state.backend.as_str() {
        "local" => restart_local(state, component)?,
        "podman" => {
            let name = state
                .resources
                .iter()
                .find_map(|r| match r {
                    crate::state::Resource::Container { component: c, name } if c == component => {
                        Some(name.clone())
                    }
                    _ => None,
                })
                .ok_or_else(|| {
                    InfraError::Invalid(format!("run {} has no container for {component}", state.id))
                })?;
            let engine = container::Engine::from_env();
            tokio::task::spawn_blocking(move || engine.restart(&name))
                .await
                .map_err(|e| InfraError::Invalid(e.to_string()))?
                .map_err(|e| InfraError::Backend { backend: "podman", message: e.to_string() })?;
        }
        "kind" | "cluster" => {
            let (ns, kubeconfig, context) = state
                .namespace()
                .ok_or_else(|| InfraError::Invalid(format!("run {} has no namespace", state.id)))?;
            let client = backend::kube::client_for(kubeconfig, context).await?;
            backend::kube::restart_component(client, ns, &state.id, component, Duration::from_secs(120))
                .await?;
            if !state.owner_alive() {
                // The endpoint is a port-forward of the xtask that brought the run up: gone with it.
                return Ok(());
            }
        }
        other => {
            return Err(InfraError::Invalid(format!("restarting on the {other} backend is not supported")));
        }
    }
    let mut probe = backend::probe_for(&endpoint).map_err(|f| InfraError::Invalid(f.message))?;
    wait::Waiter::new(Duration::from_secs(60))
        .wait_for(&mut probe)
        .await
        .map(drop)
        .map_err(|e| InfraError::Invalid(format!("{component} did not come back: {e}")))
}

fn restart_local(state: &mut RunState, component: &str) -> Result<(), InfraError> {
    let (pid, port) = state
        .resources
        .iter()
        .find_map(|r| match r {
            crate::state::Resource::Process { component: c, pid, port, .. } if c == component => {
                Some((*pid, *port))
            }
            _ => None,
        })
        .ok_or_else(|| InfraError::Invalid(format!("run {} has no process for {component}", state.id)))?;
    let dir = state.dir.join(component);
    let stop = crate::state::Resource::Process {
        component: component.into(),
        pid,
        program: "?".into(),
        port,
        log: None,
    };
    backend::remove(&stop)?;
    let failed = |e: &dyn std::fmt::Display| InfraError::Backend { backend: "local", message: e.to_string() };
    let new_pid = match component {
        "postgres" => {
            let options = pgserver::Options {
                port,
                password: state.postgres_superuser_password.clone(),
                detach: true,
                ..Default::default()
            };
            pgserver::PgServer::start_in(&dir, options).map_err(|e| failed(&e))?.keep_running()
        }
        "redis" => {
            let password =
                state.endpoints.get("redis").and_then(|e| e.password()).map(|p| p.expose().to_string());
            let options = redisserver::Options { port, password, detach: true, die_with_us: false };
            redisserver::RedisServer::start_in(&dir, options).map_err(|e| failed(&e))?.keep_running()
        }
        other => {
            return Err(InfraError::Invalid(format!(
                "restarting {other} on the local backend is not supported (postgres and redis are)"
            )));
        }
    };
    for r in &mut state.resources {
        if let crate::state::Resource::Process { component: c, pid, .. } = r
            && c == component
            && let Some(new) = new_pid
        {
            *pid = new;
        }
    }
    state.save().map_err(InfraError::io("saving the run state"))
}

/// How an end-to-end run ended.
#[derive(Debug)]
pub struct E2e {
    /// The run as it was when the tests ran.
    pub state: RunState,
    /// How the setup went.
    pub setup: RunReport,
    /// How the tests ended and how long they took.
    pub outcome: TestOutcome,
    /// How long the tests took.
    pub tests: Duration,
    /// The last log lines of every component, when the tests did not pass.
    pub diagnosis: Option<String>,
    /// Whether the run was kept (`--keep`) rather than torn down.
    pub kept: bool,
}

/// Up, the suite's tests, a diagnosis when they fail, and teardown (unless `keep`; on a failure
/// the logs and diagnosis stay in the run directory). `interrupt` is asked for a fresh future
/// for each phase.
pub async fn e2e<F: Future<Output = ()>>(
    root: &Path,
    runs: &Runs,
    suite: Suite,
    registry: &Registry,
    options: UpOptions,
    mut interrupt: impl FnMut() -> F,
    on_event: impl FnMut(&Event),
) -> Result<E2e, UpError> {
    let keep = options.keep;
    let mut on_event = on_event;
    let mut up = up(root, runs, suite.clone(), registry, options, interrupt(), &mut on_event).await?;
    let state = up.state.clone();
    // Background steps run beside the tests; teardown waits for them (they work on the run).
    let background = Background::start(&mut up.report, &state, &mut on_event);
    let (outcome, took) = match run_tests(root, &suite, &state, interrupt()).await {
        Ok(r) => r,
        Err(e) => (TestOutcome::Failed(format!("could not start the test command: {e}")), Duration::ZERO),
    };
    background.finish(&mut up.report, &mut on_event).await;
    let failed = !matches!(outcome, TestOutcome::Passed | TestOutcome::Interrupted);
    let mut diagnosis = failed.then(|| crate::report::log_tails(&state, 15));
    if let Some(d) = &mut diagnosis {
        let _ = std::fs::write(state.dir.join("diagnosis.txt"), format!("tests {outcome:?}\n\n{d}"));
        if let Some(schema) = save_schema(&state.endpoints, &state.dir).await {
            d.push_str(&format!("\n{schema}\n"));
        }
    }
    let kept = keep && outcome != TestOutcome::Interrupted;
    if !kept {
        let dir = state.dir.clone();
        let result =
            tokio::task::spawn_blocking(move || if failed { stop_keep_logs(&dir) } else { teardown(&dir) })
                .await
                .map_err(|e| InfraError::Invalid(format!("teardown crashed: {e}")))?;
        result?;
    }
    Ok(E2e { state, setup: up.report, outcome, tests: took, diagnosis, kept })
}

/// The background steps of a ready run, running in this process (see [`crate::background`]).
pub struct Background {
    task: Option<(String, tokio::task::JoinHandle<(String, Duration)>)>,
}

impl Background {
    /// Starts the background steps `report` left (there is one: keeping a template), saying so
    /// on `on_event`; nothing when there are none.
    pub fn start(report: &mut RunReport, state: &RunState, on_event: &mut impl FnMut(&Event)) -> Self {
        let step = report.steps.iter_mut().find(|s| s.outcome == crate::runner::Outcome::Background);
        let Some(step) = step else {
            return Self { task: None };
        };
        step.start_ms = Some(report.wall_ms);
        on_event(&Event::Started { step: step.step.clone(), at_ms: report.wall_ms });
        let state = state.clone();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let said = crate::background::run(&state, &|_| {}).await;
            (said, started.elapsed())
        });
        Self { task: Some((step.step.clone(), task)) }
    }

    /// Waits for the background steps to end and records them in `report` as ready, with what
    /// they said.
    pub async fn finish(self, report: &mut RunReport, on_event: &mut impl FnMut(&Event)) {
        let Some((id, task)) = self.task else { return };
        let (summary, took) = task
            .await
            .unwrap_or_else(|e| (format!("no template kept: the step crashed: {e}"), Duration::ZERO));
        let Some(step) = report.steps.iter_mut().find(|s| s.step == id) else { return };
        let duration_ms = took.as_millis();
        step.end_ms = step.start_ms.map(|s| s + duration_ms);
        step.outcome = crate::runner::Outcome::Ready;
        step.summary = Some(summary.clone());
        on_event(&Event::Ready { step: id, duration_ms, summary });
    }
}

/// Tears down the runs in `dirs`; runs whose state cannot be read are swept all the same.
pub fn down(dirs: &[PathBuf]) -> Vec<(PathBuf, Result<Vec<String>, InfraError>)> {
    dirs.iter().map(|d| (d.clone(), teardown(d))).collect()
}

/// Tears down each run directory like [`down`], forgetting what cannot be reached (see
/// [`state::forget`]): for each, what was removed and what was forgotten.
pub fn forget(dirs: &[PathBuf]) -> Vec<(PathBuf, Result<crate::state::Forgotten, InfraError>)> {
    dirs.iter().map(|d| (d.clone(), crate::state::forget(d))).collect()
}

/// Containers, networks and secrets labelled as runs that have no run directory any more
/// (the run directory was deleted, or xtask was killed before it recorded them).
pub fn stray_runs(runs: &Runs) -> Result<Vec<String>, InfraError> {
    let ids = crate::backend::podman::leftover_runs(runs.base())?;
    Ok(ids.into_iter().filter(|id| !runs.dir(id).exists()).collect())
}

/// Removes the engine resources of a run that has no directory.
pub fn remove_stray(runs: &Runs, id: &str) -> Result<Vec<String>, InfraError> {
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for r in crate::backend::podman::leftovers(runs.base(), Some(id))?.iter().rev() {
        match backend::remove(r) {
            Ok(()) => removed.push(r.to_string()),
            Err(e) => failed.push(format!("{r}: {e}")),
        }
    }
    if failed.is_empty() { Ok(removed) } else { Err(InfraError::Leftovers(failed)) }
}
