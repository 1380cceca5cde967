//! The local backend: services as processes on free loopback ports, their data, logs and
//! rendered files under the run directory.

use super::failure;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{Backend, Blocking, Started, endpoint, probe_for};
use crate::cache::{self, Cache, Key};
use crate::error::InfraError;
use crate::model::{Addr, EndpointSpec, FileKind, Job, Placement, Program, Service, Workload};
use crate::run::{Artifact, Run};
use crate::runner::{BoxFuture, Progress, StepFailure};
use crate::state::{Resource, RunState, Runs, TemplateWanted};

/// How the local backend stops what it started: SIGINT (PostgreSQL's fast shutdown, a clean stop
/// for Redis and services), SIGKILL after 15 s.
const STOP: procs::StopPolicy =
    procs::StopPolicy { signal: Signal::SIGINT, deadline: Duration::from_secs(15) };

/// Whether a run's servers must die with xtask: a run without `--keep` must not outlive it, even
/// when xtask is SIGKILLed and no teardown runs.
fn die_with_us(run: &Run) -> bool {
    !run.state().kept
}

/// Runs services as processes on this machine.
pub struct Local {
    blocking: Blocking,
}

impl Local {
    /// The local backend.
    pub fn new() -> Self {
        Self { blocking: Blocking::new() }
    }
}

impl Default for Local {
    fn default() -> Self {
        Self::new()
    }
}

fn loopback(port: u16) -> Addr {
    Addr { host: "127.0.0.1".into(), port }
}

impl Backend for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn kube_api_from_assets(&self) -> bool {
        true
    }

    fn placement(&self, run: &Run, component: &str) -> Placement {
        Placement::Host { dir: run.dir().join(component) }
    }

    fn planned_addr(&self, _component: &str, service: &Service) -> (Addr, Addr) {
        (loopback(service.port), loopback(service.port))
    }

    fn prepare(&self, _component: &str, service: &Service) -> Option<String> {
        match &service.program {
            Program::Cargo { package } => Some(format!("cargo build --package {package}")),
            _ => None,
        }
    }

    fn run_prepare(
        self: Arc<Self>,
        run: Arc<Run>,
        component: String,
        service: Service,
        progress: Progress,
    ) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            let Program::Cargo { package } = &service.program else {
                return Ok("nothing to build".into());
            };
            progress.say(format!("cargo build --package {package}"));
            let log = run.dir().join(format!("build-{component}.log"));
            let binary = crate::build::cargo_build_bin(&run.root, package, &log).await?;
            run.set_artifact(&component, Artifact::Binary(binary.clone()));
            Ok(binary.display().to_string())
        })
    }

    fn render(&self, run: &Run, component: &str, service: &Service) -> Vec<String> {
        let dir = run.dir().join(component);
        let mut lines = match &service.program {
            Program::Postgres => vec![format!(
                "initdb + postgres -D {}/data on a free loopback port; {}",
                dir.display(),
                describe(&service.endpoint)
            )],
            Program::Redis => {
                vec![format!(
                    "redis-server {}/redis.conf on a free loopback port (requirepass: per-run secret)",
                    dir.display()
                )]
            }
            Program::Cargo { package } => vec![argv(&format!("target/debug/{package}"), service)],
            Program::Path(p) => vec![argv(&p.display().to_string(), service)],
            Program::KubeApi => vec![format!(
                "etcd + kube-apiserver from ${} in {}/ on free loopback ports; {}",
                envtest::ASSETS_ENV,
                dir.display(),
                describe(&service.endpoint)
            )],
        };
        if !service.ports.is_empty() {
            let names: Vec<&str> = service.ports.iter().map(|p| p.name.as_str()).collect();
            lines.push(format!("on free loopback ports: its own and {}", names.join(", ")));
        }
        if matches!(service.program, Program::Cargo { .. } | Program::Path(_)) {
            lines.extend(service.env.iter().map(|(k, v)| format!("env {k}={v}")));
            lines.extend(service.files.iter().map(|f| match f.kind {
                FileKind::Config => format!("file {} (0644)", f.path.display()),
                FileKind::Secret => format!("file {} (0600, secret)", f.path.display()),
            }));
        }
        lines
    }

    fn start(
        self: Arc<Self>,
        run: Arc<Run>,
        component: String,
        progress: Progress,
    ) -> BoxFuture<Result<Started, StepFailure>> {
        Box::pin(async move {
            let dir = run.dir().join(&component);
            let placement = Placement::Host { dir: dir.clone() };
            let endpoints = run.endpoints();
            // The program is chosen from the workload rendered with a placeholder port; servers
            // that pick their own port (PostgreSQL, Redis) need no more.
            let first = run
                .workload(&component, placement.clone(), &endpoints, None, Default::default())
                .map_err(failure)?;
            let Workload::Service(service) = first else {
                return Err(StepFailure::new(format!("{component} is not a service")));
            };
            match service.program.clone() {
                Program::Postgres => self.postgres(&run, &component, &service, &progress).await,
                Program::Redis => self.redis(&run, &component, &service, &progress).await,
                Program::KubeApi => self.kube_api(&run, &component, &service, &progress).await,
                Program::Cargo { .. } | Program::Path(_) => {
                    // Its own port and its named ports, chosen together so that they differ.
                    let mut free = procs::free_ports(1 + service.ports.len()).map_err(failure)?.into_iter();
                    let port = free.next().expect("one port was asked for");
                    let ports: BTreeMap<String, u16> =
                        service.ports.iter().map(|named| named.name.clone()).zip(free).collect();
                    let workload = run
                        .workload(&component, placement.clone(), &endpoints, Some(port), ports)
                        .map_err(failure)?;
                    let Workload::Service(service) = workload else { unreachable!("checked above") };
                    self.program(&run, &component, &service, port, &progress).await
                }
            }
        })
    }

    fn snapshot(&self, run: &Run, database: &str) -> Option<(String, Vec<String>)> {
        let cache = Cache::new(&Runs::new(&run.root));
        let dir = cache.dir().strip_prefix(&run.root).unwrap_or(cache.dir()).display().to_string();
        run.cache.then(|| {
            (
                format!("the migrated database of {database}, kept as a template for later runs (in the background, once the run is ready)"),
                vec![format!(
                    "a private cluster migrated the same way, kept as {dir}/<key>, unless the run started from a template or one of its key is there"
                )],
            )
        })
    }

    fn settle(&self) -> wait::BoxFuture<'_, ()> {
        Box::pin(self.blocking.settle())
    }
}

fn describe(spec: &EndpointSpec) -> String {
    match spec {
        EndpointSpec::Postgres { user, database, .. } => {
            format!("role {user} (password: per-run secret), database {database}")
        }
        EndpointSpec::Redis { .. } => "requirepass: per-run secret".into(),
        EndpointSpec::KubeApi { namespace, clients } => format!(
            "DataStorage's identity in namespace {namespace}; tokens (per run, 0600) for {}",
            clients.join(", ")
        ),
        EndpointSpec::Http { ready_path, ready_port: None, .. } => {
            format!("ready when GET {ready_path} answers 200")
        }
        EndpointSpec::Http { ready_path, ready_port: Some(name), .. } => {
            format!("ready when GET {ready_path} on its {name} port answers 200")
        }
    }
}

impl Local {
    async fn postgres(
        &self,
        run: &Arc<Run>,
        component: &str,
        service: &Service,
        progress: &Progress,
    ) -> Result<Started, StepFailure> {
        let EndpointSpec::Postgres { user, database, password } = service.endpoint.clone() else {
            return Err(StepFailure::new(format!(
                "{component}: a PostgreSQL program needs a PostgreSQL endpoint"
            )));
        };
        let dir = run.dir().join(component);
        let cache = Cache::new(&Runs::new(&run.root));
        // Where the cluster comes from, best first: a migrated template, a fresh one, initdb.
        let mut origins = Vec::new();
        // The key of the migrated template tried first, to keep anew should it not start.
        let mut replacement = None;
        if run.cache {
            match template_wanted(run, component, &user, &database) {
                Some(Ok(wanted)) => {
                    let (id, fresh) = (wanted.key.id(), wanted.key.initdb().id());
                    match cache.lookup(&id) {
                        Some(t) => {
                            origins.push(Origin::Migrated(id, t));
                            replacement = Some(wanted);
                        }
                        None => want_template(run, wanted)?,
                    }
                    if let Some(t) = cache.lookup(&fresh) {
                        origins.push(Origin::Fresh(fresh, t));
                    }
                }
                // The migrations step reports what is wrong with the migrations; here it only
                // means no template can be named.
                Some(Err(e)) => progress.say(format!("no template: {e}")),
                None => {}
            }
        }
        origins.push(Origin::Initdb);
        let mut not_used = Vec::new();
        for origin in origins {
            progress.say(origin.to_string());
            let (r, c, pw, templates) = (run.clone(), component.to_string(), password.clone(), cache.clone());
            let (u, d, dir, o) = (user.clone(), database.clone(), dir.clone(), origin.clone());
            let die_with_us = die_with_us(run);
            let started = self
                .blocking
                .run("starting PostgreSQL", move || {
                    let options = pgserver::Options { detach: true, die_with_us, ..Default::default() };
                    let pg = match &o {
                        Origin::Initdb => pgserver::PgServer::start_in(&dir, options),
                        Origin::Fresh(_, t) => {
                            let _reading = templates.reading().map_err(failure)?;
                            pgserver::PgServer::start_from_template(&dir, t, options, &[])
                        }
                        Origin::Migrated(_, t) => {
                            let _reading = templates.reading().map_err(failure)?;
                            pgserver::PgServer::start_from_template(&dir, t, options, &[(&u, pw.expose())])
                        }
                    };
                    let pg = match pg {
                        Ok(pg) => pg,
                        Err(e) => {
                            // Whatever a failed copy left goes, so the next origin starts clean.
                            if !matches!(o, Origin::Initdb) {
                                pgserver::remove_data(&dir).map_err(failure)?;
                            }
                            return Ok(Err(e.to_string()));
                        }
                    };
                    let (port, superuser, log) = (pg.port(), pg.password().to_string(), pg.log_path());
                    if let Some(pid) = pg.pid() {
                        r.created(Resource::Process {
                            component: c,
                            pid,
                            program: "postgres".into(),
                            port: Some(port),
                            log: Some(log),
                        })?;
                    }
                    r.update(|s| s.postgres_superuser_password = Some(superuser))?;
                    if !matches!(o, Origin::Migrated(..)) {
                        pg.create_user_and_database(&u, pw.expose(), &d).map_err(failure)?;
                    }
                    let moved = pg.relocated_because_of().map(|blocked| {
                        format!(
                            "; data in {} because the server's account cannot enter {}",
                            pg.data_dir().display(),
                            blocked.display()
                        )
                    });
                    pg.keep_running();
                    Ok(Ok((port, moved.unwrap_or_default())))
                })
                .await?;
            let (port, moved) = match started {
                Ok(started) => started,
                Err(why) if !matches!(origin, Origin::Initdb) => {
                    not_used.push(format!("{origin}: {why}"));
                    // A template that will not start is removed now and kept anew once the run
                    // is ready, so the next run does not fall back too.
                    if let (Origin::Migrated(id, _), Some(wanted)) = (&origin, replacement.take()) {
                        let (cache, id) = (cache.clone(), id.clone());
                        let removing = move || cache.prune(|e| e.meta.id == id).map_err(failure);
                        if let Err(f) = self.blocking.run("removing a template", removing).await {
                            not_used.push(format!("removing it: {}", f.message));
                        }
                        want_template(run, wanted)?;
                    }
                    continue;
                }
                Err(why) => return Err(failure(why)),
            };
            if let Origin::Migrated(id, _) = &origin {
                run.set_from_template(id.clone());
            }
            let ep = endpoint(&service.endpoint, loopback(port), loopback(port), None);
            let probe = probe_for(&ep)?;
            let from = match &origin {
                Origin::Migrated(id, _) => format!(", from snapshot {id}"),
                Origin::Fresh(id, _) => format!(", from fresh-cluster template {id}"),
                Origin::Initdb => String::new(),
            };
            let failed = not_used.iter().map(|n| format!("; not used: {n}")).collect::<String>();
            return Ok(Started {
                endpoint: ep,
                probe,
                summary: format!("127.0.0.1:{port}, database {database} as {user}{from}{moved}{failed}"),
            });
        }
        unreachable!("initdb is the last origin and returns")
    }

    async fn redis(
        &self,
        run: &Arc<Run>,
        component: &str,
        service: &Service,
        progress: &Progress,
    ) -> Result<Started, StepFailure> {
        let EndpointSpec::Redis { password } = service.endpoint.clone() else {
            return Err(StepFailure::new(format!("{component}: a Redis program needs a Redis endpoint")));
        };
        let dir = run.dir().join(component);
        progress.say("start");
        let (r, c) = (run.clone(), component.to_string());
        let die_with_us = die_with_us(run);
        let port = self
            .blocking
            .run("starting Redis", move || {
                let options = redisserver::Options {
                    password: Some(password.expose().to_string()),
                    detach: true,
                    die_with_us,
                    ..Default::default()
                };
                let server = redisserver::RedisServer::start_in(&dir, options).map_err(failure)?;
                let (port, log) = (server.port(), server.log_path());
                if let Some(pid) = server.keep_running() {
                    r.created(Resource::Process {
                        component: c,
                        pid,
                        program: "redis-server".into(),
                        port: Some(port),
                        log: Some(log),
                    })?;
                }
                Ok(port)
            })
            .await?;
        let ep = endpoint(&service.endpoint, loopback(port), loopback(port), None);
        let probe = probe_for(&ep)?;
        Ok(Started { endpoint: ep, probe, summary: format!("127.0.0.1:{port}") })
    }

    /// Starts the control plane, then puts DataStorage's identity and its clients on it and
    /// writes their tokens (0600) and DataStorage's kubeconfig (by token file).
    async fn kube_api(
        &self,
        run: &Arc<Run>,
        component: &str,
        service: &Service,
        progress: &Progress,
    ) -> Result<Started, StepFailure> {
        let EndpointSpec::KubeApi { namespace, clients } = &service.endpoint else {
            return Err(StepFailure::new(format!("{component}: a Kubernetes API needs its endpoint spec")));
        };
        let assets = envtest::Assets::find().map_err(failure)?;
        let dir = run.dir().join(component);
        progress.say("start etcd and kube-apiserver");
        // Each process recorded as it starts, before anything waits on it: a Ctrl-C or a kill
        // during the start leaves teardown everything to stop.
        let unrecorded: Arc<Mutex<Option<StepFailure>>> = Arc::default();
        let (r, c, d, u) = (run.clone(), component.to_string(), dir.clone(), unrecorded.clone());
        let record = move |pid: u32, program: &'static str| {
            let resource = Resource::Process {
                component: c.clone(),
                pid,
                program: program.into(),
                port: None,
                log: Some(d.join(format!("{program}.log"))),
            };
            if let Err(e) = r.created(resource) {
                *u.lock().expect("record lock") = Some(e);
            }
        };
        let options = envtest::Options {
            dir: Some(dir.clone()),
            die_with_us: die_with_us(run),
            detach: true,
            // The suite's readiness budget, as for every other service: a loaded machine is slow.
            timeout: run.suite.ready_timeout,
            on_spawn: Some(Arc::new(record)),
        };
        let plane = envtest::ControlPlane::start(&assets, options).await.map_err(failure)?;
        if let Some(e) = unrecorded.lock().expect("record lock").take() {
            return Err(e);
        }
        progress.say("identities and tokens");
        let client = plane.client().await.map_err(failure)?;
        let tokens = super::identity::provision(run, &client, namespace, clients, &dir).await?;
        let kubeconfig = dir.join("datastorage.kubeconfig");
        let text = envtest::kubeconfig::render(
            "kube-api",
            &plane.url(),
            &plane.ca(),
            datastorage::rbac::SERVICE_ACCOUNT,
            &envtest::kubeconfig::Auth::TokenFile(tokens[datastorage::rbac::SERVICE_ACCOUNT].clone()),
        );
        procs::write_file(&kubeconfig, text.as_bytes(), 0o600).map_err(failure)?;
        let (port, summary) = (plane.port(), plane.url());
        plane.keep_running();
        let mut tokens = tokens;
        tokens.remove(datastorage::rbac::SERVICE_ACCOUNT);
        let ep = crate::model::Endpoint {
            kind: crate::model::EndpointKind::KubeApi {
                namespace: namespace.clone(),
                kubeconfig: Some(kubeconfig),
                inside: None,
                tokens,
            },
            host: loopback(port),
            inside: loopback(port),
        };
        let probe = probe_for(&ep)?;
        Ok(Started { endpoint: ep, probe, summary })
    }

    async fn program(
        &self,
        run: &Arc<Run>,
        component: &str,
        service: &Service,
        port: u16,
        _progress: &Progress,
    ) -> Result<Started, StepFailure> {
        let binary = match (&service.program, run.artifact(component)) {
            (_, Some(Artifact::Binary(b))) => b,
            (Program::Path(p), _) => p.clone(),
            _ => return Err(StepFailure::new(format!("{component}: its program was not built"))),
        };
        let dir = run.dir().join(component);
        std::fs::create_dir_all(&dir).map_err(|e| failure(format!("creating {}: {e}", dir.display())))?;
        for f in &service.files {
            let mode = match f.kind {
                FileKind::Config => 0o644,
                FileKind::Secret => 0o600,
            };
            procs::write_file(&f.path, f.contents.as_bytes(), mode).map_err(failure)?;
        }
        let log_path = dir.join(format!("{component}.log"));
        let mut cmd = procs::command(&binary);
        cmd.args(&service.args).envs(service.env.iter().map(|(k, v)| (k, v))).current_dir(&dir);
        procs::log_output(&mut cmd, &log_path, procs::OpenLog::Truncate).map_err(failure)?;
        procs::own_process_group(&mut cmd);
        let command = std::iter::once(binary.display().to_string())
            .chain(service.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let child = procs::spawn(cmd, STOP.tie(die_with_us(run))).map_err(failure)?;
        let program = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        run.created(Resource::Process {
            component: component.to_string(),
            pid: child.id(),
            program,
            port: Some(port),
            log: Some(log_path.clone()),
        })?;
        // Rendered with the ports chosen here, the service's named ports are those loopback ports.
        let ready = super::ready_port(service).map(loopback);
        let ep = endpoint(&service.endpoint, loopback(port), loopback(port), ready);
        let ready = probe_for(&ep)?;
        let probe = wait::ProcessProbe::new(Arc::new(Mutex::new(child)), command, log_path).until(ready);
        Ok(Started { endpoint: ep, probe: Box::new(probe), summary: format!("http://127.0.0.1:{port}") })
    }
}

/// Where a run's PostgreSQL cluster comes from.
#[derive(Debug, Clone)]
enum Origin {
    /// A copy of the migrated template with this id: nothing left to migrate.
    Migrated(String, std::path::PathBuf),
    /// A copy of the fresh-cluster template with this id: saves initdb.
    Fresh(String, std::path::PathBuf),
    /// `initdb`.
    Initdb,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Migrated(id, _) => write!(f, "from snapshot {id}"),
            Origin::Fresh(id, _) => write!(f, "from fresh-cluster template {id}"),
            Origin::Initdb => write!(f, "initdb and start"),
        }
    }
}

/// How the keeper's private clusters run: out of reach of our Ctrl-C, and gone with the keeper.
fn private() -> pgserver::Options {
    pgserver::Options { detach: true, die_with_us: true, ..Default::default() }
}

/// The snapshot step, a background step (see [`crate::background`]): makes the migrated
/// template `wanted` apart from the run (a private cluster from the fresh-cluster template, or
/// initdb, migrated the way the run was, passwords cleared, stopped cleanly) and keeps it in the
/// cache; keeps a fresh-cluster template first when there is none. Nothing of the run is
/// touched, so its tests may do what they like meanwhile. A template that cannot be kept is
/// said, not a failure: the run itself is fine.
pub(crate) async fn keep_template(
    state: &RunState,
    wanted: &TemplateWanted,
    progress: &(dyn Fn(String) + Send + Sync),
) -> String {
    let cache = Cache::new(&Runs::containing(&state.dir));
    let blocking = Blocking::new();
    let key = &wanted.key;
    let id = key.id();
    let fresh =
        keep_fresh_template(state, key.initdb(), &cache, &blocking, progress).await.unwrap_or_default();
    if cache.lookup(&id).is_some() {
        return format!("template {id} is already kept{fresh}");
    }
    progress(format!("migrating a private cluster into template {id}"));
    let kept = make_template(state, wanted, &cache, &blocking, progress).await;
    match kept {
        Ok(cache::Stored::New(bytes)) => {
            format!("kept template {id} ({:.1} MB) for later runs{fresh}", bytes as f64 / 1e6)
        }
        Ok(cache::Stored::AlreadyThere) => format!("template {id} is already kept{fresh}"),
        Err(f) => format!("no template kept: {}{fresh}", f.message),
    }
}

/// [`keep_template`]'s private cluster, from start to store.
async fn make_template(
    state: &RunState,
    wanted: &TemplateWanted,
    cache: &Cache,
    blocking: &Blocking,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<cache::Stored, StepFailure> {
    let key = wanted.key.clone();
    let selection = wanted.selection();
    // The files may have changed since the run started: a template is only what its key says.
    let bin = pgserver::Binaries::locate().map_err(failure)?;
    let now = Key::new(&bin, &key.user, &key.database, &wanted.migrations, &selection).map_err(failure)?;
    if now != key {
        return Err(failure("the migrations, the selection or the day changed since the run started"));
    }
    let work = cache.workdir(&key.id()).map_err(failure)?;
    let made = migrate_and_store(state, wanted, cache, blocking, &work, progress).await;
    let _ = cache.remove_workdir(&work);
    made
}

/// [`make_template`] in the work directory `work`.
async fn migrate_and_store(
    state: &RunState,
    wanted: &TemplateWanted,
    cache: &Cache,
    blocking: &Blocking,
    work: &Path,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<cache::Stored, StepFailure> {
    let (key, selection) = (wanted.key.clone(), wanted.selection());
    let dir = work.join(&wanted.component);
    let password = pgserver::random_password();
    let (templates, d, pw, k) = (cache.clone(), dir.clone(), password.clone(), key.clone());
    let pg = blocking
        .run("starting a private cluster", move || {
            let fresh = templates.lookup(&k.initdb().id());
            let pg = match fresh {
                Some(t) => {
                    let _reading = templates.reading().map_err(failure)?;
                    pgserver::PgServer::start_from_template(&d, &t, private(), &[])
                }
                None => pgserver::PgServer::start_in(&d, private()),
            };
            let pg = pg.map_err(failure)?;
            pg.create_user_and_database(&k.user, &pw, &k.database).map_err(failure)?;
            Ok(pg)
        })
        .await?;
    let set = migrations::MigrationSet::load(&wanted.migrations).map_err(failure)?;
    let url = format!("postgres://{}:{password}@127.0.0.1:{}/{}", key.user, pg.port(), key.database);
    let client = migrations::connect(&url).await.map_err(failure)?;
    // A line per migration: teardown waits for a keeper as long as it keeps saying something.
    let mut said = |e: migrations::Event| {
        if let migrations::Event::Started { name, .. } = e {
            progress(format!("applying {name}"));
        }
    };
    let applied = migrations::up(&client, &set, &selection, &migrations::Options::default(), &mut said).await;
    client.explained(applied).await.map_err(failure)?;
    drop(client);
    progress("storing the template".into());
    let (cache, meta) = (cache.clone(), cache::Meta::new(key, &state.id));
    blocking
        .run("keeping a template", move || {
            let user = meta.key.user.clone();
            store_as_template(pg, &[&user], &cache, &meta)
        })
        .await
}

/// Clears the passwords of `roles` and the superuser, stops `pg` cleanly and keeps its data
/// in the cache as `meta`'s template: a template holds no password and needs no recovery.
fn store_as_template(
    mut pg: pgserver::PgServer,
    roles: &[&str],
    cache: &Cache,
    meta: &cache::Meta,
) -> Result<cache::Stored, StepFailure> {
    let clear: String = roles
        .iter()
        .chain([&pgserver::SUPERUSER])
        .map(|role| format!("ALTER ROLE {} PASSWORD NULL;\n", pgserver::quote_ident(role)))
        .collect();
    pg.psql("postgres", &clear).map_err(failure)?;
    pg.stop().map_err(failure)?;
    cache.store(meta, &pg.data_dir()).map_err(failure)
}

/// Keeps a fresh cluster (initdb only) as a template when there is none for these binaries:
/// runs whose migrations have no template yet copy it instead of running initdb. Says what it
/// did, or nothing when the template was there.
async fn keep_fresh_template(
    state: &RunState,
    key: Key,
    cache: &Cache,
    blocking: &Blocking,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Option<String> {
    let id = key.id();
    cache.lookup(&id).is_none().then_some(())?;
    progress(format!("initdb into fresh-cluster template {id}"));
    let meta = cache::Meta::new(key, &state.id);
    let cache = cache.clone();
    let made = blocking
        .run("keeping a fresh-cluster template", move || {
            let work = cache.workdir(&meta.id).map_err(failure)?;
            // A server, not a bare initdb: its data goes wherever the server's account can
            // reach (the state directory may be closed to it), and it is stopped cleanly.
            let made = pgserver::PgServer::start_in(&work.join("fresh"), private())
                .map_err(failure)
                .and_then(|pg| store_as_template(pg, &[], &cache, &meta));
            let _ = cache.remove_workdir(&work);
            made
        })
        .await;
    Some(match made {
        Ok(_) => format!("; kept fresh-cluster template {id}"),
        Err(f) => format!("; no fresh-cluster template kept: {}", f.message),
    })
}

/// Records the migrated template the run wants kept once it is ready.
fn want_template(run: &Run, wanted: TemplateWanted) -> Result<(), StepFailure> {
    run.update(|s| s.template_wanted = Some(wanted))
}

/// The migrated template `component` (PostgreSQL) would start from: its key (its migrations
/// job's files and selection, the service's role and database, this machine's binaries) and
/// what it is made from. `None` when no migrations job uses it.
fn template_wanted(
    run: &Run,
    component: &str,
    user: &str,
    database: &str,
) -> Option<Result<TemplateWanted, InfraError>> {
    run.suite.components.iter().find_map(|name| {
        let placement = Placement::Host { dir: run.dir().join(name) };
        match run.workload(name, placement, &BTreeMap::new(), None, Default::default()) {
            Ok(Workload::Job(Job::Migrations { dir, selection, database: db })) if db == component => Some(
                pgserver::Binaries::locate()
                    .map_err(|e| InfraError::Invalid(e.to_string()))
                    .and_then(|bin| Key::new(&bin, user, database, &dir, &selection))
                    .map(|key| TemplateWanted {
                        component: component.to_string(),
                        key,
                        migrations: dir,
                        tables: match selection {
                            migrations::Selection::All => None,
                            migrations::Selection::Tables(t) => Some(t),
                        },
                    }),
            ),
            _ => None,
        }
    })
}

/// A program's command line as the plan shows it.
fn argv(program: &str, service: &Service) -> String {
    std::iter::once(program.to_string()).chain(service.args.iter().cloned()).collect::<Vec<_>>().join(" ")
}

/// Stops a process the local backend started (see [`STOP`]); an error says why if it will not die.
pub fn remove(resource: &Resource) -> Result<(), InfraError> {
    let Resource::Process { pid, program, .. } = resource else {
        return Err(InfraError::Invalid(format!("the local backend did not create {resource}")));
    };
    if !procs::pid_alive(*pid) || !ours(*pid, program) {
        return Ok(());
    }
    Ok(procs::stop(*pid, program, STOP)?)
}

/// Whether `pid` still runs `program` (a recycled pid belongs to someone else).
pub(crate) fn ours(pid: u32, program: &str) -> bool {
    if program == "?" {
        return true;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            let first = raw.split(|b| *b == 0).next().unwrap_or_default();
            let first = String::from_utf8_lossy(first);
            first.rsplit('/').next() == Some(program) || first.starts_with(program)
        })
        .unwrap_or(false)
}
