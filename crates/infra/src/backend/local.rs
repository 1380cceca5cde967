//! The local backend: services as processes on free loopback ports, their data, logs and
//! rendered files under the run directory.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Backend, Blocking, Started, endpoint, probe_for};
use crate::error::InfraError;
use crate::model::{Addr, EndpointSpec, FileKind, Placement, Program, Service, Workload};
use crate::run::{Artifact, Run};
use crate::runner::{BoxFuture, Progress, StepFailure};
use crate::state::{Resource, pid_alive};

/// How long a process may take to stop after SIGINT before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// How long a killed process may take to disappear before teardown reports it.
const KILL_DEADLINE: Duration = Duration::from_secs(5);

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

fn failure(e: impl std::fmt::Display) -> StepFailure {
    StepFailure::new(e.to_string())
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
            Program::Cargo { package } => {
                vec![format!("target/debug/{package} --config {}/config.yaml", dir.display())]
            }
            Program::Path(p) => vec![format!("{} --config {}/config.yaml", p.display(), dir.display())],
        };
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
            let first = run.workload(&component, placement.clone(), &endpoints, None).map_err(failure)?;
            let Workload::Service(service) = first else {
                return Err(StepFailure::new(format!("{component} is not a service")));
            };
            match service.program.clone() {
                Program::Postgres => self.postgres(&run, &component, &service, &progress).await,
                Program::Redis => self.redis(&run, &component, &service, &progress).await,
                Program::Cargo { .. } | Program::Path(_) => {
                    // A free port can be taken between our probe and the service's bind: retry on that only.
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let port = pgserver::free_port().map_err(failure)?;
                        let workload = run
                            .workload(&component, placement.clone(), &endpoints, Some(port))
                            .map_err(failure)?;
                        let Workload::Service(service) = workload else { unreachable!("checked above") };
                        match self.program(&run, &component, &service, port, &progress).await {
                            Err(f)
                                if attempt < 3
                                    && f.diagnosis.as_deref().is_some_and(|d| d.contains("in use")) =>
                            {
                                progress.say(format!(
                                    "port {port} was taken before {component} bound it; trying another"
                                ));
                            }
                            result => return result,
                        }
                    }
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
        EndpointSpec::Http { ready_path } => format!("ready when GET {ready_path} answers 200"),
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
        let port = self
            .blocking
            .run("starting PostgreSQL", move || {
                let options = pgserver::Options { detach: true, ..Default::default() };
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
                pg.keep_running();
                Ok(port)
            })
            .await?;
        let ep = endpoint(&service.endpoint, loopback(port), loopback(port));
        let probe = probe_for(&service.endpoint, &ep)?;
        Ok(Started {
            endpoint: ep,
            probe,
            summary: format!("127.0.0.1:{port}, database {database} as {user}"),
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
        let port = self
            .blocking
            .run("starting Redis", move || {
                let options = redisserver::Options {
                    password: Some(password.expose().to_string()),
                    detach: true,
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
        let ep = endpoint(&service.endpoint, loopback(port), loopback(port));
        let probe = probe_for(&service.endpoint, &ep)?;
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
            write_file(&f.path, &f.contents, f.kind).map_err(failure)?;
        }
        let log_path = dir.join(format!("{component}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| failure(format!("creating {}: {e}", log_path.display())))?;
        let log_err = log.try_clone().map_err(failure)?;
        let config = dir.join(datastorage::CONFIG_FILE);
        let mut cmd = crate::build::command(&binary);
        // The config path is an argument too (not only CONFIG_PATH) so teardown can find the
        // process by the run directory in its command line.
        cmd.arg("--config")
            .arg(&config)
            .envs(service.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        let command = format!("{} --config {}", binary.display(), config.display());
        let child = cmd.spawn().map_err(|e| failure(format!("starting {command}: {e}")))?;
        let program = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        run.created(Resource::Process {
            component: component.to_string(),
            pid: child.id(),
            program,
            port: Some(port),
            log: Some(log_path.clone()),
        })?;
        let ep = endpoint(&service.endpoint, loopback(port), loopback(port));
        let ready = probe_for(&service.endpoint, &ep)?;
        let probe = wait::ProcessProbe::new(Arc::new(Mutex::new(child)), command, log_path).until(ready);
        Ok(Started { endpoint: ep, probe: Box::new(probe), summary: format!("http://127.0.0.1:{port}") })
    }
}

/// Writes a rendered file, a secret 0600 from its creation.
fn write_file(path: &Path, contents: &str, kind: FileKind) -> Result<(), InfraError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = match kind {
        FileKind::Config => 0o644,
        FileKind::Secret => 0o600,
    };
    let err = InfraError::io(format!("writing {}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(InfraError::io(format!("creating {}", dir.display())))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(InfraError::io(format!("writing {}", path.display())))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(InfraError::io(format!("writing {}", path.display())))?;
    f.write_all(contents.as_bytes()).map_err(err)
}

/// Stops a process the local backend started: SIGINT (PostgreSQL's fast shutdown, a clean stop
/// for Redis and services), SIGKILL after a deadline, and an error saying why if it still lives.
pub fn remove(resource: &Resource) -> Result<(), InfraError> {
    let Resource::Process { pid, program, .. } = resource else {
        return Err(InfraError::Invalid(format!("the local backend did not create {resource}")));
    };
    let target = Pid::from_raw(*pid as i32);
    if !pid_alive(*pid) || !ours(*pid, program) {
        return Ok(());
    }
    let _ = kill(target, Signal::SIGINT);
    if wait_gone(*pid, STOP_DEADLINE) {
        return Ok(());
    }
    match kill(target, Signal::SIGKILL) {
        Err(nix::errno::Errno::ESRCH) => return Ok(()),
        Err(e) => {
            return Err(InfraError::Backend {
                backend: "local",
                message: format!("cannot kill pid {pid}: {e}"),
            });
        }
        Ok(()) => {}
    }
    if wait_gone(*pid, KILL_DEADLINE) {
        return Ok(());
    }
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next().map(str::to_string)))
        .unwrap_or_else(|| "?".into());
    let why = if state == "D" { " (uninterruptible sleep: blocked in the kernel, e.g. on I/O)" } else { "" };
    Err(InfraError::Backend {
        backend: "local",
        message: format!("pid {pid} ({program}) is still alive after SIGKILL; state {state}{why}"),
    })
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

fn wait_gone(pid: u32, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if !pid_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    !pid_alive(pid)
}
