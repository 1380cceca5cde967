//! RFC 7807 problem details, the contract's `RFC7807Problem`: every error this server answers
//! on the audit API is one, sent as `application/problem+json`.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::event::FieldError;

/// The problem types this server uses (the contract's `https://kubernaut.ai/problems/{type}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request broke the contract (400).
    Validation,
    /// The batch holds more events than `server.maxBatchSize` (400).
    BatchSizeExceeded,
    /// The body is larger than the server reads (413).
    PayloadTooLarge,
    /// No such endpoint (404).
    NotFound,
    /// The endpoint exists, the method does not (405).
    MethodNotAllowed,
    /// The contract has the operation; this server does not implement it (501).
    NotImplemented,
    /// Neither PostgreSQL nor the dead-letter queue could take the write, or a read needs
    /// PostgreSQL while it is down (503): the client may retry.
    ServiceUnavailable,
    /// The database refused for a reason retrying will not fix (500); details only in the log.
    DatabaseError,
}

impl Kind {
    fn parts(self) -> (&'static str, &'static str, StatusCode) {
        match self {
            Kind::Validation => ("validation-error", "Validation Error", StatusCode::BAD_REQUEST),
            Kind::BatchSizeExceeded => {
                ("batch-size-exceeded", "Batch Size Exceeded", StatusCode::BAD_REQUEST)
            }
            Kind::PayloadTooLarge => {
                ("payload-too-large", "Payload Too Large", StatusCode::PAYLOAD_TOO_LARGE)
            }
            Kind::NotFound => ("not-found", "Not Found", StatusCode::NOT_FOUND),
            Kind::MethodNotAllowed => {
                ("method-not-allowed", "Method Not Allowed", StatusCode::METHOD_NOT_ALLOWED)
            }
            Kind::ServiceUnavailable => {
                ("service-unavailable", "Service Unavailable", StatusCode::SERVICE_UNAVAILABLE)
            }
            Kind::NotImplemented => ("not-implemented", "Not Implemented", StatusCode::NOT_IMPLEMENTED),
            Kind::DatabaseError => ("database-error", "Database Error", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

/// One problem: `type`, `title`, `status`, `detail`, `instance` and, for validation errors,
/// `field_errors` (field path to what is wrong with it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// `https://kubernaut.ai/problems/<kind>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The kind's fixed title.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request path, as the real service sets it.
    pub instance: String,
    /// Every bad field, e.g. `events[1].event_outcome` to `missing`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub field_errors: BTreeMap<String, String>,
}

impl Problem {
    /// A problem of `kind` about the request to `instance`.
    pub fn new(kind: Kind, instance: &str, detail: impl Into<String>) -> Self {
        let (slug, title, status) = kind.parts();
        Self {
            type_: format!("https://kubernaut.ai/problems/{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            instance: instance.into(),
            field_errors: BTreeMap::new(),
        }
    }

    /// A 400 naming every bad field; `detail` is the first one, and how many more there are.
    pub fn invalid(instance: &str, errors: &[FieldError]) -> Self {
        let detail = match errors {
            [] => "invalid request".to_string(),
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
        };
        let mut problem = Self::new(Kind::Validation, instance, detail);
        for e in errors {
            // The first complaint about a field is the one kept: it is usually the root cause.
            problem.field_errors.entry(e.field.clone()).or_insert_with(|| e.reason.clone());
        }
        problem
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("a problem serialises to JSON");
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validation_problem_names_every_field_and_leads_with_the_first() {
        let errors = [
            FieldError { field: "events[1].event_outcome".into(), reason: "missing".into() },
            FieldError { field: "events[2].version".into(), reason: "must not be empty".into() },
        ];
        let p = Problem::invalid("/api/v1/audit/events/batch", &errors);
        let body = serde_json::to_value(&p).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "https://kubernaut.ai/problems/validation-error",
                "title": "Validation Error",
                "status": 400,
                "detail": "events[1].event_outcome: missing (and 1 more)",
                "instance": "/api/v1/audit/events/batch",
                "field_errors": {"events[1].event_outcome": "missing", "events[2].version": "must not be empty"},
            })
        );
        let r = p.into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json");
    }
}
