//! Audit events: the batch request's validation (every error names `events[i].field`) and the
//! stored shape, which is also what the dead-letter queue holds and the query endpoint returns.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Most events one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// The `event_outcome` values accepted.
pub const OUTCOMES: [&str; 3] = ["success", "failure", "pending"];

/// The event schema version this server writes.
pub const EVENT_VERSION: &str = "1.0";

const REQUIRED: [&str; 5] =
    ["event_category", "event_action", "event_outcome", "resource_type", "correlation_id"];
const OPTIONAL_TEXT: [&str; 4] = ["resource_id", "namespace", "actor_type", "actor_id"];
const OPTIONAL_OTHER: [&str; 2] = ["event_data", "event_timestamp"];

/// One audit event as stored: the client's fields plus the id and timestamp the server assigns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Assigned on receipt; with the timestamp, the row's primary key (replays are idempotent).
    pub event_id: Uuid,
    /// The client's `event_timestamp`, or the time of receipt.
    pub event_timestamp: DateTime<Utc>,
    /// E.g. `workflow`.
    pub event_category: String,
    /// E.g. `workflow.started`.
    pub event_action: String,
    /// One of [`OUTCOMES`].
    pub event_outcome: String,
    /// E.g. `WorkflowExecution`.
    pub resource_type: String,
    /// Ties the events of one remediation together.
    pub correlation_id: String,
    /// Free-form details (a JSON object, `{}` when not given).
    pub event_data: Map<String, Value>,
    /// The resource's name or id.
    pub resource_id: Option<String>,
    /// The resource's namespace.
    pub namespace: Option<String>,
    /// Who acted, e.g. `controller`.
    pub actor_type: Option<String>,
    /// Which one of them.
    pub actor_id: Option<String>,
    /// The event schema version.
    pub event_version: String,
}

/// One thing wrong with a batch: where (`events[1].event_outcome`) and what (`missing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path in the request.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), reason: reason.into() }
}

/// Validates a batch request body received at `received`; returns every problem found.
///
/// Events without their own timestamp get `received` plus their index in microseconds, so the
/// events of one batch keep their order when read back oldest first.
pub fn parse_batch(body: &[u8], received: DateTime<Utc>) -> Result<Vec<AuditEvent>, Vec<FieldError>> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| vec![err("body", format!("not valid JSON: {e}"))])?;
    let Value::Array(items) = value else {
        return Err(vec![err("body", "expected a JSON array of events")]);
    };
    if items.is_empty() {
        return Err(vec![err("events", "empty batch")]);
    }
    if items.len() > MAX_BATCH {
        return Err(vec![err("events", format!("{} events, at most {MAX_BATCH} per batch", items.len()))]);
    }
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let default_time = received + Duration::microseconds(i as i64);
        match parse_event(i, item, default_time) {
            Ok(e) => events.push(e),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() { Ok(events) } else { Err(errors) }
}

fn parse_event(i: usize, item: Value, default_time: DateTime<Utc>) -> Result<AuditEvent, Vec<FieldError>> {
    let at = |field: &str| format!("events[{i}].{field}");
    let Value::Object(mut obj) = item else {
        return Err(vec![err(format!("events[{i}]"), "expected a JSON object")]);
    };
    let mut errors = Vec::new();
    let mut known: Vec<&str> = REQUIRED.to_vec();
    known.extend(OPTIONAL_TEXT);
    known.extend(OPTIONAL_OTHER);
    let mut unknown: Vec<&String> = obj.keys().filter(|k| !known.contains(&k.as_str())).collect();
    unknown.sort();
    errors.extend(unknown.into_iter().map(|k| err(at(k), "unknown field")));

    let mut required = |name: &str| -> String {
        match obj.remove(name) {
            None | Some(Value::Null) => errors.push(err(at(name), "missing")),
            Some(Value::String(s)) if s.trim().is_empty() => errors.push(err(at(name), "empty")),
            Some(Value::String(s)) => return s,
            Some(_) => errors.push(err(at(name), "expected a string")),
        }
        String::new()
    };
    let event_category = required("event_category");
    let event_action = required("event_action");
    let event_outcome = required("event_outcome");
    let resource_type = required("resource_type");
    let correlation_id = required("correlation_id");
    if !event_outcome.is_empty() && !OUTCOMES.contains(&event_outcome.as_str()) {
        errors.push(err(
            at("event_outcome"),
            format!("`{event_outcome}` is not one of {}", OUTCOMES.join(", ")),
        ));
    }

    let mut optional = |name: &str| -> Option<String> {
        match obj.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                errors.push(err(at(name), "expected a string"));
                None
            }
        }
    };
    let resource_id = optional("resource_id");
    let namespace = optional("namespace");
    let actor_type = optional("actor_type");
    let actor_id = optional("actor_id");
    let timestamp = optional("event_timestamp");

    let event_data = match obj.remove("event_data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            errors.push(err(at("event_data"), "expected a JSON object"));
            Map::new()
        }
    };
    let event_timestamp = match timestamp {
        None => default_time,
        Some(text) => match DateTime::parse_from_rfc3339(&text) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => {
                errors.push(err(at("event_timestamp"), format!("`{text}` is not an RFC 3339 time")));
                default_time
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(AuditEvent {
        event_id: Uuid::new_v4(),
        event_timestamp,
        event_category,
        event_action,
        event_outcome,
        resource_type,
        correlation_id,
        event_data,
        resource_id,
        namespace,
        actor_type,
        actor_id,
        event_version: EVENT_VERSION.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(body: &str) -> Vec<String> {
        parse_batch(body.as_bytes(), Utc::now()).unwrap_err().iter().map(ToString::to_string).collect()
    }

    const GOOD: &str = r#"{"event_category":"workflow","event_action":"workflow.started","event_outcome":"success","resource_type":"WorkflowExecution","correlation_id":"c-1"}"#;

    #[test]
    fn a_valid_batch_keeps_its_order_and_defaults() {
        let t = Utc::now();
        let body = format!(r#"[{GOOD}, {GOOD}]"#);
        let events = parse_batch(body.as_bytes(), t).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event_timestamp, t);
        assert!(events[1].event_timestamp > events[0].event_timestamp);
        assert_ne!(events[0].event_id, events[1].event_id);
        assert!(events[0].event_data.is_empty());
        assert_eq!(events[0].event_version, "1.0");
    }

    #[test]
    fn every_bad_field_is_named_with_its_index() {
        let body = format!(
            r#"[{GOOD}, {{"event_category":"workflow","event_action":"","resource_type":7,"correlation_id":"c","event_data":[1],"colour":"red","event_timestamp":"yesterday"}}]"#
        );
        assert_eq!(
            errors(&body),
            [
                "events[1].colour: unknown field",
                "events[1].event_action: empty",
                "events[1].event_outcome: missing",
                "events[1].resource_type: expected a string",
                "events[1].event_data: expected a JSON object",
                "events[1].event_timestamp: `yesterday` is not an RFC 3339 time",
            ]
        );
    }

    #[test]
    fn the_body_itself_is_checked() {
        assert_eq!(errors("[]"), ["events: empty batch"]);
        assert_eq!(errors(GOOD), ["body: expected a JSON array of events"]);
        let json = errors("[{");
        assert!(json.len() == 1 && json[0].starts_with("body: not valid JSON"), "{json:?}");
        assert_eq!(errors("[1]"), ["events[0]: expected a JSON object"]);
        let outcome = GOOD.replace("success", "ok");
        assert_eq!(
            errors(&format!("[{outcome}]")),
            ["events[0].event_outcome: `ok` is not one of success, failure, pending"]
        );
    }
}
