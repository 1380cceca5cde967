//! The DataStorage reference server: a small HTTP service that stores audit events in
//! PostgreSQL, parks them in a Redis-stream dead-letter queue while PostgreSQL is unavailable,
//! replays them once it is back, and reports healthy only when the schema it writes exists.
//!
//! It reads the configuration the real service reads (`CONFIG_PATH`, camelCase keys, secrets
//! files), and listens where the real service listens:
//! - health port (`server.healthPort`): `GET /healthz` (liveness) and `GET /readyz` (readiness;
//!   see [`ops`] for its one deliberate difference: it also waits for the schema);
//! - metrics port (`server.metricsPort`): `GET /metrics`;
//! - API port (`server.port`): the audit API of the service's OpenAPI spec (see [`http`]), and
//!   `/readyz` again; HTTPS when `server.tls.certDir` holds a pair ([`tls`]); every `/api/v1/*`
//!   call authenticated and authorized through the API server ([`auth`]) unless started with
//!   [`Auth::Off`]; operations of the spec it does not implement answer 501.
//!
//! Like the service, it refuses to start without an RSA signing pair in `server.signerCertDir`.

pub mod auth;
pub mod db;
pub mod dlq;
pub mod event;
pub mod http;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod query;
pub mod tls;

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
    /// The signing pair or the TLS pair is missing or wrong.
    #[error(transparent)]
    Keys(#[from] datastorage::certs::CertError),
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

/// The three listeners the service has: API, health and metrics.
pub struct Listeners {
    /// `server.port`: `/api/v1/...` and `/readyz`.
    pub api: TcpListener,
    /// `server.healthPort`: `/healthz` and `/readyz`.
    pub health: TcpListener,
    /// `server.metricsPort`: `/metrics`.
    pub metrics: TcpListener,
}

impl Listeners {
    /// Binds `server.host` at the configured API, health and metrics ports (empty host: every interface).
    pub async fn bind(config: &datastorage::Config) -> Result<Self, Error> {
        let s = &config.server;
        let host = if s.host.is_empty() { "0.0.0.0" } else { s.host.as_str() };
        let bind = |field: &'static str, port: u16| {
            let addr = format!("{host}:{port}");
            async move {
                TcpListener::bind(&addr).await.map_err(|source| Error::Io {
                    action: format!("binding {addr} (server.{field})"),
                    source,
                })
            }
        };
        Ok(Self {
            api: bind("port", s.port).await?,
            health: bind("healthPort", s.health_port).await?,
            metrics: bind("metricsPort", s.metrics_port).await?,
        })
    }

    /// Three listeners on free loopback ports (tests).
    pub async fn loopback() -> Result<Self, Error> {
        let bind = || async {
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| Error::Io { action: "binding 127.0.0.1:0".into(), source })
        };
        Ok(Self { api: bind().await?, health: bind().await?, metrics: bind().await? })
    }
}

/// How `/api/v1/*` calls are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// Bearer tokens reviewed by the API server, as the service does.
    Reviews(auth::Reviewer),
    /// Every call is let through (suites that run without a Kubernetes API).
    Off,
}

/// A running server; [`Running::shutdown`] stops it gracefully.
pub struct Running {
    addr: SocketAddr,
    https: bool,
    health_addr: SocketAddr,
    metrics_addr: SocketAddr,
    ops: Arc<ops::Ops>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    http: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The API listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<API address>`, or `https://` when the API port serves TLS.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `http://<health address>`: `/healthz`, `/readyz`.
    pub fn health_url(&self) -> String {
        format!("http://{}", self.health_addr)
    }

    /// `http://<metrics address>`: `/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://{}", self.metrics_addr)
    }

    /// Fails readiness, stops accepting requests, lets those in flight finish within `grace`,
    /// and stops the background tasks.
    pub async fn shutdown(self, grace: Duration) -> Result<(), Error> {
        self.ops.shut_down();
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

    /// Waits until the HTTP servers stop by themselves (they only do on an I/O error).
    pub async fn wait(&mut self) -> Result<(), Error> {
        match (&mut self.http).await {
            Ok(result) => result.map_err(|source| Error::Io { action: "serving HTTP".into(), source }),
            Err(_) => Ok(()),
        }
    }
}

/// Binds the configured ports and starts serving.
pub async fn start(loaded: &Loaded, auth: Auth) -> Result<Running, Error> {
    check_keys(&loaded.config)?;
    let listeners = Listeners::bind(&loaded.config).await?;
    start_on(loaded, listeners, auth).await
}

/// Checks the signing pair (required) and the TLS pair (when there is one) as the service does
/// before it serves; `Ok(true)` when the API port serves TLS.
pub fn check_keys(config: &datastorage::Config) -> Result<bool, Error> {
    datastorage::certs::check_signing(&config.server.signer_cert_dir)?;
    let dir = &config.server.tls.cert_dir;
    Ok(!dir.as_os_str().is_empty() && datastorage::certs::check_tls(dir)?)
}

/// Starts serving on already bound listeners (tests bind port 0).
pub async fn start_on(loaded: &Loaded, listeners: Listeners, auth: Auth) -> Result<Running, Error> {
    let https = check_keys(&loaded.config)?;
    let tls = if https { Some(tls::server_config(&loaded.config.server.tls.cert_dir)?) } else { None };
    let local = |l: &TcpListener| {
        l.local_addr().map_err(|source| Error::Io { action: "reading the bound address".into(), source })
    };
    let (addr, health_addr, metrics_addr) =
        (local(&listeners.api)?, local(&listeners.health)?, local(&listeners.metrics)?);
    let config = &loaded.config;
    let db = Db::new(&config.database, &loaded.credentials)?;
    let dlq = Dlq::new(&config.redis, &loaded.credentials)?;
    let state = Arc::new(AppState { db, dlq });
    let ops = ops::Ops::new(state.clone());
    let (stop, stopped) = watch::channel(false);

    let tasks =
        vec![tokio::spawn(replay_loop(state.clone())), tokio::spawn(partition_loop(state.db.clone()))];
    let timeout = config.server.read_timeout.get() + config.server.write_timeout.get();
    let mut api = http::router(state, timeout, config.server.max_batch_size as usize);
    if let Auth::Reviews(reviewer) = auth {
        // Before anything else on /api/v1, as the service authenticates before validating.
        api = api.layer(axum::middleware::from_fn_with_state(Arc::new(reviewer), auth::middleware));
    }
    let api = api
        .merge(ops::api_routes(ops.clone()))
        .layer(axum::middleware::from_fn_with_state(ops.clone(), ops::count));
    let graceful = |stopped: watch::Receiver<bool>| async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    };
    let serve = |listener: TcpListener, app: axum::Router| {
        let stopped = stopped.clone();
        async move { axum::serve(listener, app).with_graceful_shutdown(graceful(stopped)).await }
    };
    type Serving = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>;
    let a: Serving = match tls {
        Some(config) => {
            let listener = tls::TlsListener::new(listeners.api, config)
                .map_err(|source| Error::Io { action: "listening for TLS".into(), source })?;
            let stopped = stopped.clone();
            Box::pin(
                async move { axum::serve(listener, api).with_graceful_shutdown(graceful(stopped)).await },
            )
        }
        None => Box::pin(serve(listeners.api, api)),
    };
    let (h, m) = (
        serve(listeners.health, ops::health_router(ops.clone())),
        serve(listeners.metrics, ops::metrics_router(ops.clone())),
    );
    // One task for the three: the first listener to fail stops the server, as in the service.
    let http = tokio::spawn(async move {
        tokio::try_join!(a, h, m)?;
        Ok(())
    });
    tracing::info!(%addr, %health_addr, %metrics_addr, https, stream = dlq::STREAM, "datastorage reference server listening");
    drop(stopped);
    Ok(Running { addr, https, health_addr, metrics_addr, ops, stop, tasks, http })
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
