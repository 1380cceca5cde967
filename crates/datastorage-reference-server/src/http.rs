//! The HTTP API: the audit API of the real DataStorage service's contract
//! (`fixtures/datastorage/data-storage-v1.yaml`):
//! - `POST /api/v1/audit/events`: one `AuditEventRequest`; 201 `AuditEventResponse`
//!   (`event_id`, `event_timestamp`, `message`), or 202 `AsyncAcceptanceResponse` when
//!   PostgreSQL cannot take it and it waits in the Redis dead-letter queue.
//! - `POST /api/v1/audit/events/batch`: an array of them, at most `max_batch`; 201
//!   `BatchAuditEventResponse` (`event_ids`, `message`), or 202 as above plus `count`.
//! - `GET /api/v1/audit/events`: the contract's filters, `limit` (1 to 1000, default 50) and
//!   `offset`; 200 `{data, pagination: {limit, offset, total, has_more}}`, newest first.
//!
//! Every error on the audit API is an RFC 7807 `application/problem+json` body ([`Problem`]):
//! 400 naming each bad field in `field_errors` (`events[1].event_outcome`), 413 for a body over
//! the size limit, 503 when neither PostgreSQL nor the queue can take a write (or a read needs
//! PostgreSQL while it is down), 500 with a generic detail when the database refuses for any
//! other reason. PostgreSQL's and Redis's own messages go to the log only.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde_json::json;

use crate::db::{Db, DbError};
use crate::dlq::Dlq;
use crate::event::{AuditEvent, BatchError, FieldError, parse_batch, parse_event};
use crate::problem::{Kind, Problem};

/// The single-event write and the query.
const EVENTS: &str = "/api/v1/audit/events";
/// The batch write.
const BATCH: &str = "/api/v1/audit/events/batch";

/// What every handler shares.
pub struct AppState {
    /// PostgreSQL.
    pub db: Db,
    /// The dead-letter queue.
    pub dlq: Dlq,
}

/// The routes, with a deadline per request; a batch may carry at most `max_batch` events
/// (the configuration's `server.maxBatchSize`, [`crate::event::MAX_BATCH`] by default).
pub fn router(state: Arc<AppState>, request_timeout: Duration, max_batch: usize) -> Router {
    crate::event::prepare();
    Router::new()
        .route(BATCH, post(move |state, body| write_batch(state, body, max_batch)))
        .route(EVENTS, post(write_event).get(query_events))
        .fallback(
            |req: Request| async move { unserved(req.method().as_str(), req.uri().path()).into_response() },
        )
        .method_not_allowed_fallback(|req: Request| async move {
            let detail = format!("{} is not served here", req.method());
            Problem::new(Kind::MethodNotAllowed, req.uri().path(), detail).into_response()
        })
        .layer(middleware::from_fn(move |req: Request, next: Next| deadline(req, next, request_timeout)))
        .with_state(state)
}

/// The contract's operations, read once.
fn operations() -> &'static [crate::openapi::Operation] {
    static OPERATIONS: std::sync::OnceLock<Vec<crate::openapi::Operation>> = std::sync::OnceLock::new();
    OPERATIONS.get_or_init(|| crate::openapi::Spec::bundled().map(|s| s.operations()).unwrap_or_default())
}

/// The answer for a request no route serves: 501 naming the operation when the contract has
/// it, 405 when the contract has the path with other methods, else 404.
pub fn unserved(method: &str, path: &str) -> Problem {
    let matching: Vec<_> = operations().iter().filter(|o| o.matches(path)).collect();
    if let Some(op) = matching.iter().find(|o| o.method == method) {
        let detail = format!(
            "{} ({method} {}) is in DataStorage's contract but not implemented by the reference server",
            op.operation_id, op.path
        );
        return Problem::new(Kind::NotImplemented, path, detail);
    }
    if !matching.is_empty() {
        let allowed: Vec<_> = matching.iter().map(|o| o.method.as_str()).collect();
        return Problem::new(
            Kind::MethodNotAllowed,
            path,
            format!("{method} is not served here; the contract has {}", allowed.join(", ")),
        );
    }
    Problem::new(Kind::NotFound, path, "no such endpoint")
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

async fn deadline(req: Request, next: Next, limit: Duration) -> Response {
    let path = req.uri().path().to_string();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            Kind::ServiceUnavailable,
            &path,
            format!("request took longer than server.write_timeout ({limit:?})"),
        )
        .into_response(),
    }
}

/// The body, or the problem a client gets when it cannot be read (too large, cut off).
fn body_or_problem(body: Result<Bytes, BytesRejection>, instance: &str) -> Result<Bytes, Box<Problem>> {
    body.map_err(|rejection| {
        let kind = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Kind::PayloadTooLarge
        } else {
            Kind::Validation
        };
        Box::new(Problem::new(kind, instance, rejection.body_text()))
    })
}

/// How a write ended when it did not fail.
enum Stored {
    /// In PostgreSQL.
    Written,
    /// In the dead-letter queue, to be replayed.
    Queued,
}

/// Writes the events to PostgreSQL, or parks them in the dead-letter queue while PostgreSQL
/// cannot take them; the problem says why neither worked.
async fn store(state: &AppState, events: &[AuditEvent], instance: &str) -> Result<Stored, Box<Problem>> {
    let count = events.len();
    let db_error = match state.db.insert(events).await {
        Ok(_) => {
            tracing::debug!(count, "audit events written");
            return Ok(Stored::Written);
        }
        Err(e) => e,
    };
    if !db_error.queueable() {
        tracing::error!(count, error = %db_error, "audit events rejected by the database");
        return Err(Box::new(Problem::new(
            Kind::DatabaseError,
            instance,
            "the audit events could not be stored; the server log has the cause",
        )));
    }
    match state.dlq.enqueue(events).await {
        Ok(id) => {
            tracing::warn!(count, error = %db_error, dlq_id = %id, "audit events queued in the dead-letter queue");
            Ok(Stored::Queued)
        }
        Err(dlq_error) => {
            tracing::error!(count, error = %db_error, %dlq_error, "audit events neither written nor queued");
            // Full or unreachable alike: the client still holds the events and may retry.
            Err(Box::new(Problem::new(
                Kind::ServiceUnavailable,
                instance,
                format!("{}; {}", db_error.summary(), dlq_error.summary()),
            )))
        }
    }
}

fn timestamp(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

async fn write_event(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body_or_problem(body, EVENTS) {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    let event = match parse_event(&body) {
        Ok(event) => event,
        Err(errors) => return Problem::invalid(EVENTS, &errors).into_response(),
    };
    match store(&state, std::slice::from_ref(&event), EVENTS).await {
        Ok(Stored::Written) => reply(
            StatusCode::CREATED,
            json!({
                "event_id": event.event_id,
                "event_timestamp": timestamp(&event.event_timestamp),
                "message": "audit event created",
            }),
        ),
        Ok(Stored::Queued) => reply(
            StatusCode::ACCEPTED,
            json!({"status": "accepted", "message": "audit event queued for async processing"}),
        ),
        Err(problem) => problem.into_response(),
    }
}

async fn write_batch(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
    max_batch: usize,
) -> Response {
    let body = match body_or_problem(body, BATCH) {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    let events = match parse_batch(&body, max_batch) {
        Ok(events) => events,
        Err(BatchError::Invalid(errors)) => return Problem::invalid(BATCH, &errors).into_response(),
        Err(BatchError::TooLarge { count, max }) => {
            let detail = format!("batch size {count} exceeds maximum allowed batch size of {max}");
            let mut problem = Problem::new(Kind::BatchSizeExceeded, BATCH, detail);
            problem.field_errors.insert("events".into(), format!("{count} events, at most {max}"));
            return problem.into_response();
        }
    };
    let count = events.len();
    match store(&state, &events, BATCH).await {
        Ok(Stored::Written) => {
            let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
            reply(
                StatusCode::CREATED,
                json!({"event_ids": ids, "message": format!("{count} audit events created")}),
            )
        }
        Ok(Stored::Queued) => reply(
            StatusCode::ACCEPTED,
            json!({
                "status": "accepted",
                "message": format!("{count} audit events queued for async processing"),
                "count": count,
            }),
        ),
        Err(problem) => problem.into_response(),
    }
}

async fn query_events(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let pairs = match query {
        Ok(Query(pairs)) => pairs,
        Err(rejection) => {
            let error = FieldError { field: "query".into(), reason: rejection.body_text() };
            return Problem::invalid(EVENTS, &[error]).into_response();
        }
    };
    let filters = match crate::query::parse(&pairs, chrono::Utc::now()) {
        Ok(filters) => filters,
        Err(errors) => return Problem::invalid(EVENTS, &errors).into_response(),
    };
    match state.db.query(&filters).await {
        Ok((events, total)) => {
            let has_more = filters.offset.saturating_add(events.len() as i64) < total;
            reply(
                StatusCode::OK,
                json!({
                    "data": events,
                    "pagination": {"limit": filters.limit, "offset": filters.offset, "total": total, "has_more": has_more},
                }),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "audit query failed");
            let kind = match e {
                DbError::Other(_) => Kind::DatabaseError,
                DbError::Unavailable(_) | DbError::Schema(_) => Kind::ServiceUnavailable,
            };
            Problem::new(kind, EVENTS, e.summary()).into_response()
        }
    }
}
