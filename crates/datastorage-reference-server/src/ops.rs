//! The operational endpoints, where the real service has them: `/readyz` and `/healthz` on the
//! health port (`/readyz` also on the API port), `/metrics` on the metrics port.
//!
//! Readiness answers what the service's `handleReadiness` answers (200 `{"status":"ready"}`; 503
//! `{"status":"not_ready","reason":"shutting_down|database_unreachable|redis_unreachable"}`),
//! plus one deliberate difference: it is also 503, reason `schema_incomplete`, until every table,
//! column and function this server uses exists, naming what is missing. The real service reports
//! ready on an empty database and fails on the first write; a test environment should not start
//! its tests against that.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::db::SchemaState;
use crate::http::AppState;

/// What the operational endpoints look at: the shared state, the shutdown flag and the counters.
pub struct Ops {
    /// PostgreSQL and Redis.
    pub state: Arc<AppState>,
    /// Set first thing on shutdown, so readiness fails before the listeners close.
    pub shutting_down: AtomicBool,
    /// Requests answered, by route and status code.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl Ops {
    /// Operational state over `state`, not shutting down, no requests counted.
    pub fn new(state: Arc<AppState>) -> Arc<Self> {
        Arc::new(Self { state, shutting_down: AtomicBool::new(false), requests: Mutex::default() })
    }

    /// Marks the server as shutting down: readiness answers 503 from now on.
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }
}

/// The health port's routes: `/healthz` and `/readyz`.
pub fn health_router(ops: Arc<Ops>) -> Router {
    Router::new().route("/healthz", get(liveness)).route("/readyz", get(readiness)).with_state(ops)
}

/// `/readyz` for the API port, as the service also serves it there.
pub fn api_routes(ops: Arc<Ops>) -> Router {
    Router::new().route("/readyz", get(readiness)).with_state(ops)
}

/// The metrics port's route: `/metrics`, in Prometheus' text format.
pub fn metrics_router(ops: Arc<Ops>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(ops)
}

/// Counts every API answer by route and status, for `/metrics`.
pub async fn count(State(ops): State<Arc<Ops>>, req: Request, next: Next) -> Response {
    let route = route_of(req.uri().path());
    let response = next.run(req).await;
    let mut requests = ops.requests.lock().unwrap_or_else(|p| p.into_inner());
    *requests.entry((route, response.status().as_u16())).or_default() += 1;
    response
}

/// The route a path belongs to: a fixed set, so a client cannot grow the metric's label values.
fn route_of(path: &str) -> &'static str {
    match path {
        "/api/v1/audit/events" => "/api/v1/audit/events",
        "/api/v1/audit/events/batch" => "/api/v1/audit/events/batch",
        "/readyz" => "/readyz",
        _ => "other",
    }
}

async fn liveness() -> Response {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (StatusCode::OK, Json(json!({"status": "healthy", "timestamp": now}))).into_response()
}

async fn readiness(State(ops): State<Arc<Ops>>) -> Response {
    let not_ready = |reason: &str, detail: Option<String>, missing: Vec<String>| {
        let mut body = json!({"status": "not_ready", "reason": reason});
        if let Some(detail) = detail {
            body["detail"] = json!(detail);
        }
        if !missing.is_empty() {
            body["missing"] = json!(missing);
        }
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    };
    if ops.shutting_down.load(Ordering::SeqCst) {
        return not_ready("shutting_down", None, vec![]);
    }
    // The database error text goes to the log only, as in the service: a probe's body is not the place.
    match ops.state.db.schema_state().await {
        Err(e) => {
            tracing::debug!(error = %e, "readiness: database unreachable");
            return not_ready("database_unreachable", None, vec![]);
        }
        Ok(SchemaState::Missing(missing)) => {
            return not_ready("schema_incomplete", Some(missing.join("; ")), missing);
        }
        Ok(SchemaState::Complete) => {}
    }
    if let Err(e) = ops.state.dlq.ping().await {
        tracing::debug!(error = %e, "readiness: redis unreachable");
        return not_ready("redis_unreachable", None, vec![]);
    }
    (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
}

async fn metrics(State(ops): State<Arc<Ops>>) -> Response {
    let mut out = String::new();
    out.push_str("# HELP datastorage_http_requests_total API requests answered, by route and status code.\n");
    out.push_str("# TYPE datastorage_http_requests_total counter\n");
    let requests = ops.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for ((route, code), n) in requests {
        out.push_str(&format!("datastorage_http_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}\n"));
    }
    out.push_str("# HELP datastorage_dlq_depth Audit batches waiting in the dead-letter queue (-1: Redis unreachable).\n");
    out.push_str("# TYPE datastorage_dlq_depth gauge\n");
    let depth = ops.state.dlq.waiting().await.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    out.push_str(&format!("datastorage_dlq_depth {depth}\n"));
    out.push_str("# HELP datastorage_shutting_down 1 once a graceful shutdown began.\n");
    out.push_str("# TYPE datastorage_shutting_down gauge\n");
    out.push_str(&format!(
        "datastorage_shutting_down {}\n",
        u8::from(ops.shutting_down.load(Ordering::SeqCst))
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
