//! The HTTP API: the batch write and the query by correlation id. Every answer,
//! errors included, is a JSON object (or, for the query, a JSON array).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::db::{Db, DbError};
use crate::dlq::Dlq;
use crate::event::parse_batch;

/// What every handler shares.
pub struct AppState {
    /// PostgreSQL.
    pub db: Db,
    /// The dead-letter queue.
    pub dlq: Dlq,
}

/// The routes, with a deadline per request.
pub fn router(state: Arc<AppState>, request_timeout: Duration) -> Router {
    Router::new()
        .route("/api/v1/audit/events/batch", post(write_batch))
        .route("/api/v1/audit/events", get(query_events))
        .fallback(|| async { reply(StatusCode::NOT_FOUND, json!({"error": "no such endpoint"})) })
        .layer(middleware::from_fn(move |req: Request, next: Next| deadline(req, next, request_timeout)))
        .with_state(state)
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

async fn deadline(req: Request, next: Next, limit: Duration) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": format!("request took longer than server.write_timeout ({limit:?})")}),
        ),
    }
}

async fn write_batch(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let events = match parse_batch(&body, chrono::Utc::now()) {
        Ok(events) => events,
        Err(errors) => {
            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return reply(
                StatusCode::BAD_REQUEST,
                json!({
                    "status": "invalid",
                    "error": all[0],
                    "field": errors[0].field,
                    "reason": errors[0].reason,
                    "errors": all,
                }),
            );
        }
    };
    let count = events.len();
    let db_error = match state.db.insert(&events).await {
        Ok(_) => {
            tracing::debug!(count, "audit batch written");
            return reply(StatusCode::CREATED, json!({"status": "created", "count": count}));
        }
        Err(e) => e,
    };
    if !db_error.queueable() {
        tracing::error!(count, error = %db_error, "audit batch rejected by the database");
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"status": "failed", "error": db_error.to_string()}),
        );
    }
    match state.dlq.enqueue(&events).await {
        Ok(id) => {
            tracing::warn!(count, error = %db_error, dlq_id = %id, "audit batch queued in the dead-letter queue");
            reply(
                StatusCode::ACCEPTED,
                json!({
                    "status": "queued",
                    "count": count,
                    "reason": db_error.to_string(),
                    "dlq_stream": state.dlq.stream(),
                    "dlq_id": id,
                }),
            )
        }
        Err(dlq_error) => {
            tracing::error!(count, error = %db_error, %dlq_error, "audit batch neither written nor queued");
            // Full or unreachable alike: the client still holds the batch and may retry.
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "failed", "error": format!("{db_error}; {dlq_error}")}),
            )
        }
    }
}

async fn query_events(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(correlation_id) = params.get("correlation_id").filter(|c| !c.is_empty()) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"status": "invalid", "error": "correlation_id: missing"}),
        );
    };
    match state.db.by_correlation_id(correlation_id).await {
        Ok(events) => (StatusCode::OK, Json(events)).into_response(),
        Err(e) => {
            let status = match e {
                DbError::Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            reply(status, json!({"status": "failed", "error": e.to_string()}))
        }
    }
}
