//! The DataStorage reference server: a small HTTP service that stores audit events in
//! PostgreSQL, parks them in a Redis-stream dead-letter queue while PostgreSQL is unavailable,
//! replays them once it is back, and reports healthy only when the schema it writes exists.
//!
//! It reads the configuration that `crates/datastorage` renders (`CONFIG_PATH`). Endpoints:
//! - `GET /health`: 200 `{"status":"healthy",...}` when PostgreSQL answers, every table, column
//!   and function in [`db::REQUIRED_SCHEMA`] exists and Redis answers; otherwise 503
//!   `{"status":"unhealthy","reason":"column audit_events.correlation_id missing",...}`.
//! - The audit API of the real service's contract (`POST /api/v1/audit/events`, its `/batch`,
//!   `GET /api/v1/audit/events`): see [`http`].

pub mod db;
pub mod dlq;
pub mod event;
pub mod http;
pub mod openapi;
pub mod problem;
pub mod query;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use datastorage::Loaded;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::Db;
use crate::dlq::Dlq;
use crate::http::AppState;

/// How often the dead-letter queue is checked for batches to replay.
pub const REPLAY_INTERVAL: Duration = Duration::from_millis(250);

/// How often partition maintenance runs once it has succeeded (retried every few seconds until then).
const PARTITION_INTERVAL: Duration = Duration::from_secs(3600);
const PARTITION_RETRY: Duration = Duration::from_secs(2);

/// What can stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration asks for something this server cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The listener could not be bound or served.
    #[error("{action}: {source}")]
    Io {
        /// What was being attempted.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A running server; [`Running::shutdown`] stops it gracefully.
pub struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    http: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, lets those in flight finish within `grace`, and stops the
    /// background tasks.
    pub async fn shutdown(self, grace: Duration) -> Result<(), Error> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.abort();
        }
        let abort = self.http.abort_handle();
        match tokio::time::timeout(grace, self.http).await {
            Ok(Ok(result)) => result.map_err(|source| Error::Io { action: "serving HTTP".into(), source }),
            Ok(Err(_)) => Ok(()),
            Err(_) => {
                tracing::warn!(?grace, "requests still running after the shutdown timeout; stopping anyway");
                abort.abort();
                Ok(())
            }
        }
    }

    /// Waits until the HTTP server stops by itself (it only does on an I/O error).
    pub async fn wait(&mut self) -> Result<(), Error> {
        match (&mut self.http).await {
            Ok(result) => result.map_err(|source| Error::Io { action: "serving HTTP".into(), source }),
            Err(_) => Ok(()),
        }
    }
}

/// Binds `server.host:server.port` from the configuration and starts serving.
pub async fn start(loaded: &Loaded) -> Result<Running, Error> {
    let s = &loaded.config.server;
    let addr = format!("{}:{}", s.host, s.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| Error::Io { action: format!("binding {addr}"), source })?;
    start_on(loaded, listener).await
}

/// Starts serving on an already bound listener (tests bind port 0).
pub async fn start_on(loaded: &Loaded, listener: TcpListener) -> Result<Running, Error> {
    let addr = listener
        .local_addr()
        .map_err(|source| Error::Io { action: "reading the bound address".into(), source })?;
    let config = &loaded.config;
    let db = Db::new(&config.database, &loaded.credentials)?;
    let dlq = Dlq::new(&config.redis, &loaded.credentials)?;
    let state = Arc::new(AppState { db, dlq });
    let (stop, stopped) = watch::channel(false);

    let tasks =
        vec![tokio::spawn(replay_loop(state.clone())), tokio::spawn(partition_loop(state.db.clone()))];
    let timeout = config.server.read_timeout.get() + config.server.write_timeout.get();
    let app = http::router(state, timeout, event::MAX_BATCH);
    let mut stopped_http = stopped.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped_http.wait_for(|s| *s).await;
            })
            .await
    });
    tracing::info!(%addr, stream = %config.redis.dlq_stream_name, "datastorage reference server listening");
    drop(stopped);
    Ok(Running { addr, stop, tasks, http })
}

/// Replays the dead-letter queue whenever it holds batches and PostgreSQL takes them.
async fn replay_loop(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(REPLAY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error = String::new();
    loop {
        tick.tick().await;
        match state.dlq.replay(&state.db).await {
            Ok(done) => {
                if done.batches > 0 {
                    tracing::info!(
                        batches = done.batches,
                        events = done.events,
                        "replayed the dead-letter queue"
                    );
                }
                last_error.clear();
            }
            // Logged once per distinct cause, not every tick.
            Err(e) => {
                let text = e.to_string();
                if text != last_error {
                    tracing::warn!(error = %text, "dead-letter replay waiting");
                    last_error = text;
                }
            }
        }
    }
}

/// Keeps monthly audit partitions ahead of the calendar: at start-up (retried until the schema
/// is there), then hourly.
async fn partition_loop(db: Db) {
    loop {
        let pause = match db.ensure_partitions().await {
            Ok(created) => {
                tracing::info!(created, "audit_events partitions ensured");
                PARTITION_INTERVAL
            }
            Err(e) => {
                tracing::debug!(error = %e, "audit_events partitions not ensured yet");
                PARTITION_RETRY
            }
        };
        tokio::time::sleep(pause).await;
    }
}
