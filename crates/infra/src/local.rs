//! The local backend: PostgreSQL, Redis and DataStorage as processes on free loopback ports,
//! data, logs and rendered config under the run directory, per-run passwords.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::runner::{BoxFuture, Progress, StepFailure, StepRunner};
use crate::state::{ComponentState, RunState};
use crate::suite::{Migrations, Suite};

/// The most blocking operations (server start-ups) that can be in flight at once.
const MAX_BLOCKING: u32 = 16;

/// The service's database name and user, as DataStorage's configuration names them.
const DB_NAME: &str = "action_history";
const DB_USER: &str = "slm_user";

/// Carries out a suite's steps on this machine.
pub struct Local {
    root: PathBuf,
    suite: Suite,
    state: Mutex<RunState>,
    db_password: String,
    redis_password: String,
    datastorage_binary: Mutex<Option<PathBuf>>,
    /// Permits held by blocking start-ups; teardown takes them all to know none is still running.
    blocking: Arc<Semaphore>,
}

impl Local {
    /// A backend for `suite` whose run lives in `state.dir`; `root` is the workspace root.
    pub fn new(root: &Path, suite: Suite, state: RunState) -> Self {
        Self {
            root: root.to_path_buf(),
            suite,
            state: Mutex::new(state),
            db_password: pgserver::random_password(),
            redis_password: pgserver::random_password(),
            datastorage_binary: Mutex::new(None),
            blocking: Arc::new(Semaphore::new(MAX_BLOCKING as usize)),
        }
    }

    /// A copy of the run state as it stands.
    pub fn state(&self) -> RunState {
        self.state.lock().expect("state lock").clone()
    }

    /// Waits until no server start-up is still running in the background (after an abort).
    pub async fn settle(&self) {
        let _all = self.blocking.acquire_many(MAX_BLOCKING).await;
    }

    fn record(
        &self,
        name: &str,
        component: ComponentState,
        env: &[(&str, String)],
    ) -> Result<(), StepFailure> {
        let mut state = self.state.lock().expect("state lock");
        state.components.insert(name.to_string(), component);
        for (k, v) in env {
            state.env.insert(k.to_string(), v.clone());
        }
        state.save().map_err(|e| StepFailure::new(format!("saving the run state: {e}")))
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.state.lock().expect("state lock").dir.join(name)
    }

    fn port_of(&self, name: &str) -> Option<u16> {
        self.state.lock().expect("state lock").components.get(name).and_then(|c| c.port)
    }

    fn database_url(&self) -> Result<String, StepFailure> {
        let port = self.port_of("postgres").ok_or_else(|| StepFailure::new("postgres is not running"))?;
        Ok(format!("postgres://{DB_USER}:{}@127.0.0.1:{port}/{DB_NAME}", self.db_password))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, StepFailure> {
        let permit =
            self.blocking.clone().acquire_owned().await.map_err(|_| StepFailure::new("shutting down"))?;
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await;
        match joined {
            Ok(r) => r.map_err(StepFailure::new),
            Err(e) => Err(StepFailure::new(format!("{what}: {e}"))),
        }
    }

    async fn postgres(self: Arc<Self>, progress: Progress) -> Result<String, StepFailure> {
        let dir = self.dir("postgres");
        let (db_password, detach) = (self.db_password.clone(), true);
        progress.say("initdb and start");
        let (pid, port, superuser, log) = self
            .blocking("starting PostgreSQL", move || {
                let options = pgserver::Options { detach, ..Default::default() };
                let pg = pgserver::PgServer::start_in(&dir, options).map_err(|e| e.to_string())?;
                pg.create_user_and_database(DB_USER, &db_password, DB_NAME).map_err(|e| e.to_string())?;
                let (port, superuser, log) = (pg.port(), pg.password().to_string(), pg.log_path());
                let pid = pg.keep_running();
                Ok((pid, port, superuser, log))
            })
            .await?;
        self.state.lock().expect("state lock").postgres_superuser_password = Some(superuser);
        self.record("postgres", ComponentState { pid, port: Some(port), log: Some(log) }, &[])?;
        let url = self.database_url()?;
        let mut probe = wait::PostgresProbe::from_url(&url).map_err(|e| StepFailure::new(e.to_string()))?;
        wait_ready(&mut probe, &self.suite, &progress).await?;
        self.record_env("DATABASE_URL", url)?;
        Ok(format!("127.0.0.1:{port}, database {DB_NAME} as {DB_USER}"))
    }

    fn record_env(&self, key: &str, value: String) -> Result<(), StepFailure> {
        let mut state = self.state.lock().expect("state lock");
        state.env.insert(key.to_string(), value);
        state.save().map_err(|e| StepFailure::new(format!("saving the run state: {e}")))
    }

    async fn redis(self: Arc<Self>, progress: Progress) -> Result<String, StepFailure> {
        let dir = self.dir("redis");
        let password = self.redis_password.clone();
        progress.say("start");
        let (pid, port, url, log) = self
            .blocking("starting Redis", move || {
                let options =
                    redisserver::Options { password: Some(password), detach: true, ..Default::default() };
                let r = redisserver::RedisServer::start_in(&dir, options).map_err(|e| e.to_string())?;
                let (port, url, log) = (r.port(), r.url(), r.log_path());
                Ok((r.keep_running(), port, url, log))
            })
            .await?;
        self.record(
            "redis",
            ComponentState { pid, port: Some(port), log: Some(log) },
            &[("REDIS_URL", url)],
        )?;
        Ok(format!("127.0.0.1:{port}"))
    }

    async fn migrations(self: Arc<Self>, progress: Progress) -> Result<String, StepFailure> {
        let dir = self.root.join("migrations");
        let set = migrations::MigrationSet::load(&dir).map_err(|e| StepFailure::new(e.to_string()))?;
        let selection = match &self.suite.migrations {
            Migrations::All => migrations::Selection::All,
            Migrations::Tables(t) => migrations::Selection::Tables(t.clone()),
        };
        let client =
            migrations::connect(&self.database_url()?).await.map_err(|e| StepFailure::new(e.to_string()))?;
        let report = migrations::up(&client, &set, &selection, &migrations::Options::default(), &mut |e| {
            if let migrations::Event::Started { name, .. } = e {
                progress.say(format!("applying {name}"));
            }
        })
        .await
        .map_err(|e| StepFailure {
            message: e.to_string().lines().next().unwrap_or("").to_string(),
            diagnosis: Some(e.to_string()),
            diagnosis_json: None,
        })?;
        Ok(format!("{} applied", report.done.len()))
    }

    async fn build(self: Arc<Self>, progress: Progress) -> Result<String, StepFailure> {
        progress.say("cargo build -p datastorage-reference-server");
        let log = self.state.lock().expect("state lock").dir.join("build.log");
        let binary = crate::build::cargo_build_bin(&self.root, "datastorage-reference-server", &log).await?;
        *self.datastorage_binary.lock().expect("binary lock") = Some(binary.clone());
        Ok(binary.display().to_string())
    }

    async fn datastorage(self: Arc<Self>, progress: Progress) -> Result<String, StepFailure> {
        // A free port can be taken between our probe and the service's bind: retry on that only.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = pgserver::free_port().map_err(|e| StepFailure::new(e.to_string()))?;
            match self.clone().start_datastorage(port, &progress).await {
                Err(f) if attempt < 3 && f.diagnosis.as_deref().is_some_and(|d| d.contains("in use")) => {
                    progress
                        .say(format!("port {port} was taken before DataStorage bound it; trying another"));
                }
                result => return result,
            }
        }
    }

    async fn start_datastorage(
        self: Arc<Self>,
        port: u16,
        progress: &Progress,
    ) -> Result<String, StepFailure> {
        let dir = self.dir("datastorage");
        let (pg, redis) = (self.port_of("postgres"), self.port_of("redis"));
        let (Some(pg), Some(redis)) = (pg, redis) else {
            return Err(StepFailure::new("postgres or redis is not running"));
        };
        let ds = datastorage::DataStorage {
            config: datastorage::Config::local(port, pg, redis),
            credentials: datastorage::Credentials {
                db_username: DB_USER.into(),
                db_password: self.db_password.clone(),
                redis_password: self.redis_password.clone(),
            },
        };
        let env = ds.write_for_process(&dir).map_err(|e| StepFailure::new(e.to_string()))?;
        let binary = self
            .datastorage_binary
            .lock()
            .expect("binary lock")
            .clone()
            .ok_or_else(|| StepFailure::new("not built"))?;
        let log_path = dir.join("datastorage.log");
        let config = dir.join(datastorage::CONFIG_FILE);
        let log = std::fs::File::create(&log_path)
            .map_err(|e| StepFailure::new(format!("creating {}: {e}", log_path.display())))?;
        let log_err = log.try_clone().map_err(|e| StepFailure::new(e.to_string()))?;
        let mut cmd = crate::build::command(&binary);
        // The config path is an argument (not only CONFIG_PATH) so teardown can find the process by it.
        cmd.arg("--config")
            .arg(&config)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        let command = format!("{} --config {}", binary.display(), config.display());
        let child = cmd.spawn().map_err(|e| StepFailure::new(format!("starting {command}: {e}")))?;
        let pid = child.id();
        let url = format!("http://127.0.0.1:{port}");
        self.record(
            "datastorage",
            ComponentState { pid: Some(pid), port: Some(port), log: Some(log_path.clone()) },
            &[("DATASTORAGE_URL", url.clone())],
        )?;
        let http = wait::HttpProbe::get(&format!("{url}/health"))
            .map_err(|e| StepFailure::new(e.to_string()))?
            .status(200);
        let mut probe = wait::ProcessProbe::new(Arc::new(Mutex::new(child)), command, log_path).until(http);
        wait_ready(&mut probe, &self.suite, progress).await?;
        Ok(url)
    }
}

/// Waits for a probe under the suite's ready timeout, relaying progress; a failure carries the diagnosis.
async fn wait_ready(
    probe: &mut dyn wait::Probe,
    suite: &Suite,
    progress: &Progress,
) -> Result<(), StepFailure> {
    let p = progress.clone();
    let result = wait::Waiter::new(suite.ready_timeout)
        .progress_every(std::time::Duration::from_secs(2))
        .on_progress(move |pr| p.say(pr.to_string()))
        .wait_for(probe)
        .await;
    result.map(drop).map_err(|e| StepFailure {
        message: e.to_string(),
        diagnosis: Some(e.diagnosis().to_string()),
        diagnosis_json: serde_json::from_str(&e.diagnosis().to_json()).ok(),
    })
}

impl StepRunner for Local {
    fn run_step(self: Arc<Self>, id: String, progress: Progress) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            match id.as_str() {
                "postgres" => self.postgres(progress).await,
                "redis" => self.redis(progress).await,
                "migrations" => self.migrations(progress).await,
                crate::plan::BUILD_DATASTORAGE => self.build(progress).await,
                "datastorage" => self.datastorage(progress).await,
                other => Err(StepFailure::new(format!("the local backend has no step `{other}`"))),
            }
        })
    }
}
