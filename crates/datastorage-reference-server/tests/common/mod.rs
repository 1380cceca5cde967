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

pub mod contract;

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
        Self::with_tls(tune, None)
    }

    /// As [`Env::new`], the API port serving TLS with `tls` when given.
    pub fn with_tls(tune: impl FnOnce(&mut Config), tls: Option<datastorage::certs::Pair>) -> Self {
        let pg = PgServer::start().expect("start postgres");
        let db_password = pgserver::random_password();
        pg.create_user_and_database(DB_USER, &db_password, DB_NAME).expect("create role and database");
        let redis_password = pgserver::random_password();
        let redis = RedisServer::start_with_password(&redis_password).expect("start redis");

        let [http, health, metrics] = procs::free_ports(3).unwrap()[..] else { unreachable!("three ports") };
        let mut config = Config::local(http, pg.port(), redis.port());
        config.server.health_port = health;
        config.server.metrics_port = metrics;
        config.logging.level = datastorage::LogLevel::Debug;
        tune(&mut config);
        let ds = DataStorage {
            config,
            credentials: Credentials {
                db_username: DB_USER.into(),
                db_password: db_password.clone(),
                redis_password,
            },
            signing: datastorage::certs::signing_pair().expect("a signing pair"),
            tls,
        };
        let dir = tempfile::tempdir().unwrap();
        ds.write_for_process(dir.path()).expect("render the config");
        let loaded = datastorage::load(&dir.path().join("config.yaml")).expect("load the rendered config");
        Self {
            pg,
            redis,
            dir,
            loaded,
            db_password,
            server: None,
            http: workflowexecution_suite::http_client(),
        }
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

    /// Starts the server on free loopback ports, without authentication.
    pub async fn serve(&mut self) {
        self.serve_with(datastorage_reference_server::Auth::Off).await;
    }

    /// Starts the server on free loopback ports, authenticating as `auth` says.
    pub async fn serve_with(&mut self, auth: datastorage_reference_server::Auth) {
        let listeners = datastorage_reference_server::Listeners::loopback().await.unwrap();
        self.server =
            Some(datastorage_reference_server::start_on(&self.loaded, listeners, auth).await.expect("start"));
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

    /// Sends a request to the audit API and checks the answer against the contract: the status
    /// is one the operation declares (or its `default`), the content type and the body match
    /// that response's schema. `route` is the spec's path, `path_and_query` what is sent.
    pub async fn call(
        &self,
        method: &str,
        route: &str,
        path_and_query: &str,
        body: Option<Body>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path_and_query));
        match body {
            Some(Body::Json(v)) => req = req.json(&v),
            Some(Body::Raw(text)) => req = req.header("content-type", "application/json").body(text),
            None => {}
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{method} {path_and_query}: {e}"));
        let status = r.status().as_u16();
        let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
        let text = r.text().await.unwrap();
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path_and_query} {status}: not JSON ({e}): {text}"));
        contract::check(method, route, status, content_type.as_deref(), &body);
        (status, body)
    }

    /// `POST /api/v1/audit/events`.
    pub async fn post_event(&self, event: &Value) -> (u16, Value) {
        self.call("POST", EVENTS, EVENTS, Some(Body::Json(event.clone()))).await
    }

    /// `POST /api/v1/audit/events/batch`.
    pub async fn post_batch(&self, events: &Value) -> (u16, Value) {
        self.call("POST", BATCH, BATCH, Some(Body::Json(events.clone()))).await
    }

    /// `GET /api/v1/audit/events?...` (values percent-encoded here).
    pub async fn query(&self, params: &[(&str, &str)]) -> (u16, Value) {
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        self.call("GET", EVENTS, &format!("{EVENTS}?{}", query.join("&")), None).await
    }

    /// Every event of a correlation id, newest first as the API orders them, read page by page.
    pub async fn events(&self, correlation_id: &str) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let offset = all.len().to_string();
            let (status, body) = self
                .query(&[("correlation_id", correlation_id), ("limit", "1000"), ("offset", &offset)])
                .await;
            assert_eq!(status, 200, "GET events: {body}");
            let page = body["data"].as_array().unwrap().clone();
            all.extend(page);
            if body["pagination"]["has_more"] != true {
                return all;
            }
        }
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

/// The single-event write and the query.
pub const EVENTS: &str = "/api/v1/audit/events";
/// The batch write.
pub const BATCH: &str = "/api/v1/audit/events/batch";

/// A request body: JSON, or raw text for bodies that are not.
pub enum Body {
    Json(Value),
    Raw(String),
}

/// Percent-encodes a query component (everything but RFC 3986's unreserved characters).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A WorkflowExecution audit event as the controller sends it (the suite's own builder): `kind`
/// is the part after `workflowexecution.` (e.g. `workflow.started`), for the execution
/// `wfe-<correlation_id>`.
pub fn event(correlation_id: &str, kind: &str, outcome: &str) -> Value {
    workflowexecution_suite::event(kind, outcome, correlation_id, &format!("wfe-{correlation_id}"), json!({}))
}
