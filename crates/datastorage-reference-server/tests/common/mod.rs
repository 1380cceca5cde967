//! The test environment: a throwaway PostgreSQL and Redis, DataStorage's config rendered by
//! `crates/datastorage`, the schema applied with `crates/migrations`, and the server on loopback.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datastorage::{Config, Credentials, DataStorage, Loaded};
use datastorage_reference_server::Running;
use pgserver::PgServer;
use redisserver::RedisServer;
use serde_json::{Value, json};

/// The service's database and role, as in the seed config.
pub const DB_NAME: &str = "action_history";
pub const DB_USER: &str = "slm_user";

/// The workspace's `migrations/` directory.
pub fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}

/// Runs blocking fixture work (starting, stopping servers) without stalling the runtime.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Polls `check` until it returns `Some`, failing with `what` and the last observation after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if start.elapsed() > limit => panic!("{what}: not within {limit:?}; last: {last}"),
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// PostgreSQL, Redis, a rendered config and, once [`Env::serve`] ran, the server.
pub struct Env {
    pub pg: PgServer,
    pub redis: RedisServer,
    pub dir: tempfile::TempDir,
    pub loaded: Loaded,
    pub db_password: String,
    pub server: Option<Running>,
    pub http: reqwest::Client,
}

impl Env {
    /// Starts PostgreSQL (with the service's role and database) and Redis, and renders the config.
    pub fn new(tune: impl FnOnce(&mut Config)) -> Self {
        let pg = PgServer::start().expect("start postgres");
        let db_password = pgserver::random_password();
        pg.create_user_and_database(DB_USER, &db_password, DB_NAME).expect("create role and database");
        let redis_password = pgserver::random_password();
        let redis = RedisServer::start_with_password(&redis_password).expect("start redis");

        let mut config = Config::local(pgserver::free_port().unwrap(), pg.port(), redis.port());
        config.server.health_port = pgserver::free_port().unwrap();
        config.server.metrics_port = pgserver::free_port().unwrap();
        config.logging.level = datastorage::LogLevel::Debug;
        tune(&mut config);
        let ds = DataStorage {
            config,
            credentials: Credentials {
                db_username: DB_USER.into(),
                db_password: db_password.clone(),
                redis_password,
            },
        };
        let dir = tempfile::tempdir().unwrap();
        ds.write_for_process(dir.path()).expect("render the config");
        let loaded = datastorage::load(&dir.path().join("config.yaml")).expect("load the rendered config");
        Self { pg, redis, dir, loaded, db_password, server: None, http: reqwest::Client::new() }
    }

    /// The service role's connection URL.
    pub fn database_url(&self) -> String {
        format!("postgres://{DB_USER}:{}@127.0.0.1:{}/{DB_NAME}", self.db_password, self.pg.port())
    }

    /// Applies every migration in `dir` as the service's role.
    pub async fn migrate_dir(&self, dir: &Path) {
        migrations::apply_all(&self.database_url(), dir).await.unwrap_or_else(|e| panic!("migrations: {e}"));
    }

    /// Applies the workspace's schema.
    pub async fn migrate(&self) {
        self.migrate_dir(&migrations_dir()).await;
    }

    /// Starts the server on free loopback ports.
    pub async fn serve(&mut self) {
        let listeners = datastorage_reference_server::Listeners::loopback().await.unwrap();
        self.server =
            Some(datastorage_reference_server::start_on(&self.loaded, listeners).await.expect("start"));
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.as_ref().expect("serving").url())
    }

    /// SQL as the superuser, output trimmed.
    pub fn sql(&self, sql: &str) -> String {
        blocking(|| self.pg.psql(DB_NAME, sql)).unwrap_or_else(|e| panic!("{e}")).trim().to_string()
    }

    /// `GET /readyz` on the health port.
    pub async fn health(&self) -> (u16, Value) {
        let url = format!("{}/readyz", self.server.as_ref().expect("serving").health_url());
        let r = self.http.get(url).send().await.expect("GET /readyz");
        (r.status().as_u16(), r.json().await.expect("JSON body"))
    }

    pub async fn post_batch(&self, events: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/api/v1/audit/events/batch"))
            .json(events)
            .send()
            .await
            .expect("POST batch");
        (r.status().as_u16(), r.json().await.expect("JSON body"))
    }

    pub async fn events(&self, correlation_id: &str) -> Vec<Value> {
        let r = self
            .http
            .get(self.url("/api/v1/audit/events"))
            .query(&[("correlation_id", correlation_id)])
            .send()
            .await
            .expect("GET events");
        assert_eq!(r.status().as_u16(), 200, "GET events");
        r.json().await.expect("JSON array")
    }

    /// Batches waiting in the dead-letter queue, read straight from Redis.
    pub async fn dlq_len(&self) -> u64 {
        let client = redis::Client::open(self.redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("XLEN")
            .arg(datastorage_reference_server::dlq::STREAM)
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

/// A workflow's audit event.
pub fn event(correlation_id: &str, action: &str, outcome: &str) -> Value {
    json!({
        "event_category": "workflow",
        "event_action": action,
        "event_outcome": outcome,
        "resource_type": "WorkflowExecution",
        "correlation_id": correlation_id,
    })
}
