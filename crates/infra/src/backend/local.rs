//! The local backend: services as processes on free loopback ports, their data, logs and
//! rendered files under the run directory.

use super::failure;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{Backend, Blocking, Started, endpoint, probe_for};
use crate::error::InfraError;
use crate::model::{Addr, EndpointSpec, FileKind, Placement, Program, Service, Workload};
use crate::run::{Artifact, Run};
use crate::runner::{BoxFuture, Progress, StepFailure};
use crate::state::Resource;

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
        progress.say("initdb and start");
        let (r, c, pw) = (run.clone(), component.to_string(), password.clone());
        let (u, d) = (user.clone(), database.clone());
        let die_with_us = die_with_us(run);
        let port = self
            .blocking
            .run("starting PostgreSQL", move || {
                let options = pgserver::Options { detach: true, die_with_us, ..Default::default() };
                let pg = pgserver::PgServer::start_in(&dir, options).map_err(failure)?;
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
                pg.create_user_and_database(&u, pw.expose(), &d).map_err(failure)?;
                let moved = pg.relocated_because_of().map(|blocked| {
                    format!(
                        "; data in {} because the server's account cannot enter {}",
                        pg.data_dir().display(),
                        blocked.display()
                    )
                });
                pg.keep_running();
                Ok((port, moved.unwrap_or_default()))
            })
            .await?;
        let (port, moved) = port;
        let ep = endpoint(&service.endpoint, loopback(port), loopback(port), None);
        let probe = probe_for(&ep)?;
        Ok(Started {
            endpoint: ep,
            probe,
            summary: format!("127.0.0.1:{port}, database {database} as {user}{moved}"),
        })
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
fn ours(pid: u32, program: &str) -> bool {
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
