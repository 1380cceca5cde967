//! Audit events: a request body checked against the contract's `AuditEventRequest` (every
//! error names its field: `event_outcome`, `events[1].event_data.phase`), and the stored
//! shape, which is also what the dead-letter queue holds and the query returns (`AuditEvent`).

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::openapi::Spec;

/// Most events one batch may carry unless the caller says otherwise (the real service's
/// `server.maxBatchSize` default).
pub const MAX_BATCH: usize = 500;

/// One audit event as stored: the request's fields plus the id the server assigns.
///
/// Optional fields are left out of the JSON when absent: the contract marks only some of them
/// `nullable`, so an absent one must not come back as `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Assigned on receipt; with the timestamp, the row's primary key (replays are idempotent).
    pub event_id: Uuid,
    /// The event schema version, e.g. `1.0`.
    pub version: String,
    /// E.g. `workflowexecution.workflow.started`.
    pub event_type: String,
    /// When the event happened, as the client says.
    pub event_timestamp: DateTime<Utc>,
    /// The business domain, one of the contract's categories, e.g. `workflowexecution`.
    pub event_category: String,
    /// E.g. `started`.
    pub event_action: String,
    /// `success`, `failure` or `pending`.
    pub event_outcome: String,
    /// Ties the events of one remediation together.
    pub correlation_id: String,
    /// The typed payload the contract's discriminator (`event_data.event_type`) selects.
    pub event_data: Map<String, Value>,
    /// Who acted, e.g. `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_type: Option<String>,
    /// Which one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// The client's source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_ip: Option<String>,
    /// E.g. `WorkflowExecution`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The resource's name or id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The event this one follows from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_event_id: Option<Uuid>,
    /// The parent's timestamp (its partition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_event_date: Option<DateTime<Utc>>,
    /// The resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The cluster's unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// E.g. `critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// How long the operation took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// E.g. `ERR_UPSTREAM_TIMEOUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The error's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// A retention override in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i32>,
    /// Whether the event carries sensitive data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_sensitive: Option<bool>,
}

/// One thing wrong with a request: where (`events[1].event_outcome`) and what (`missing`).
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

/// The compiled `AuditEventRequest` schema, built once (the spec is compiled into the binary,
/// so a failure here is a bug in this crate, caught by its tests).
static REQUEST: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let spec = Spec::bundled().expect("the bundled OpenAPI document parses");
    spec.component("AuditEventRequest").expect("AuditEventRequest compiles")
});

/// Compiles the request schema now rather than on the first request.
pub fn prepare() {
    LazyLock::force(&REQUEST);
}

/// The first integer literal in a JSON text outside what 64 bits hold (`i64::MIN..=u64::MAX`).
///
/// serde_json reads such a literal as the nearest `f64`, so `-9223372036854775809` would pass an
/// `int64` minimum after rounding and be stored as a different number; the raw text is the
/// only place the client's digits still exist.
fn oversized_integer(body: &[u8]) -> Option<String> {
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < body.len() && (body[i].is_ascii_digit() || b"-+.eE".contains(&body[i])) {
                i += 1;
            }
            let token = String::from_utf8_lossy(&body[start..i]);
            let integral = !token.contains(['.', 'e', 'E']);
            let fits = token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok();
            if integral && !fits && token.len() > 1 {
                return Some(token.into_owned());
            }
            continue;
        }
        i += 1;
    }
    None
}

fn check_integers(body: &[u8]) -> Result<(), FieldError> {
    match oversized_integer(body) {
        Some(n) => Err(err(
            "body",
            format!("the integer {n} is outside the 64-bit range and cannot be kept exactly"),
        )),
        None => Ok(()),
    }
}

/// Validates a single-event body (`POST /api/v1/audit/events`).
pub fn parse_event(body: &[u8]) -> Result<AuditEvent, Vec<FieldError>> {
    check_integers(body).map_err(|e| vec![e])?;
    let value: Value =
        serde_json::from_slice(body).map_err(|e| vec![err("body", format!("not valid JSON: {e}"))])?;
    if !value.is_object() {
        return Err(vec![err("body", "expected a JSON object (one audit event)")]);
    }
    event_from(&value, "")
}

/// Validates a batch body (`POST /api/v1/audit/events/batch`) of at most `max` events;
/// returns every problem found, each named `events[i].field`.
pub fn parse_batch(body: &[u8], max: usize) -> Result<Vec<AuditEvent>, BatchError> {
    check_integers(body).map_err(|e| BatchError::Invalid(vec![e]))?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BatchError::Invalid(vec![err("body", format!("not valid JSON: {e}"))]))?;
    let Value::Array(items) = value else {
        return Err(BatchError::Invalid(vec![err("body", "expected a JSON array of audit events")]));
    };
    if items.is_empty() {
        return Err(BatchError::Invalid(vec![err("events", "batch cannot be empty")]));
    }
    if items.len() > max {
        return Err(BatchError::TooLarge { count: items.len(), max });
    }
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match event_from(item, &format!("events[{i}]")) {
            Ok(e) => events.push(e),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() { Ok(events) } else { Err(BatchError::Invalid(errors)) }
}

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fields (or the body) break the contract.
    Invalid(Vec<FieldError>),
    /// More events than the server takes in one batch.
    TooLarge {
        /// Events sent.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// `prefix.field`, or `field` at the top level.
fn join(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if field.starts_with('[') => format!("{prefix}{field}"),
        (false, false) => format!("{prefix}.{field}"),
    }
}

/// A JSON pointer into the request as a field path: `/event_data/items/0` -> `event_data.items[0]`.
fn field_path<'a>(segments: impl Iterator<Item = LocationSegment<'a>>) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            LocationSegment::Index(i) => out.push_str(&format!("[{i}]")),
            LocationSegment::Property(p) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&p);
            }
        }
    }
    out
}

/// What a schema violation means, in words a client can act on.
fn reason(e: &jsonschema::ValidationError<'_>) -> String {
    match e.kind() {
        ValidationErrorKind::Required { .. } => "missing".into(),
        ValidationErrorKind::Enum { options } => match options.as_array() {
            Some(values) if values.len() <= 20 => {
                let names: Vec<String> =
                    values.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect();
                format!("must be one of {}", names.join(", "))
            }
            Some(values) => format!("not one of the {} values the contract allows", values.len()),
            None => "not an allowed value".into(),
        },
        ValidationErrorKind::MinLength { limit: 1 } => "must not be empty".into(),
        ValidationErrorKind::MinLength { limit } => format!("shorter than {limit} characters"),
        ValidationErrorKind::MaxLength { limit } => format!("longer than {limit} characters"),
        ValidationErrorKind::Format { format } => format!("not a valid {format}"),
        _ => e.masked_with("the value").to_string(),
    }
}

/// Validates one event against the contract and builds the stored shape.
fn event_from(value: &Value, prefix: &str) -> Result<AuditEvent, Vec<FieldError>> {
    let mut errors: Vec<FieldError> = Vec::new();
    for e in REQUEST.iter_errors(value) {
        let mut field = field_path(e.instance_path().segments());
        if let ValidationErrorKind::Required { property } = e.kind() {
            let name = property.as_str().map_or_else(|| property.to_string(), str::to_string);
            field = if field.is_empty() { name } else { format!("{field}.{name}") };
        }
        let error = err(join(prefix, &field), reason(&e));
        if !errors.contains(&error) {
            errors.push(error);
        }
    }
    // PostgreSQL's text and jsonb cannot hold U+0000; the contract does not forbid it, the
    // storage does, so it is the client's error, named like any other.
    find_nul(value, prefix.to_string(), &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let Value::Object(obj) = value else {
        return Err(vec![err(prefix, "expected a JSON object")]);
    };
    build(obj, prefix)
}

fn find_nul(value: &Value, at: String, errors: &mut Vec<FieldError>) {
    const REASON: &str = "contains a NUL character (U+0000), which cannot be stored";
    match value {
        Value::String(s) if s.contains('\0') => errors.push(err(at, REASON)),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_nul(v, format!("{at}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let here = join(&at, k);
                if k.contains('\0') {
                    errors.push(err(here.clone(), format!("its name {REASON}")));
                }
                find_nul(v, here, errors);
            }
        }
        _ => {}
    }
}

/// Builds the stored event from a body the schema accepted; what the schema cannot say
/// (integer ranges of the columns, timestamps PostgreSQL and RFC 3339 can both represent)
/// is checked here.
fn build(obj: &Map<String, Value>, prefix: &str) -> Result<AuditEvent, Vec<FieldError>> {
    let mut errors = Vec::new();
    let text = |name: &str| obj.get(name).and_then(Value::as_str).map(str::to_string);
    let mut time = |name: &str| -> Option<DateTime<Utc>> {
        let raw = obj.get(name).and_then(Value::as_str)?;
        match DateTime::parse_from_rfc3339(raw) {
            // Years outside 1..=9999 (possible after applying an offset) have no RFC 3339 form
            // to answer with.
            // PostgreSQL keeps microseconds: truncated here, so the answer to the write is
            // what is stored.
            Ok(t) if (1..=9999).contains(&t.with_timezone(&Utc).year()) => {
                Some(t.with_timezone(&Utc).trunc_subsecs(6))
            }
            Ok(_) => {
                errors.push(err(join(prefix, name), "outside the years 0001 to 9999 in UTC"));
                None
            }
            Err(e) => {
                errors.push(err(join(prefix, name), format!("not an RFC 3339 date-time: {e}")));
                None
            }
        }
    };
    let event_timestamp = time("event_timestamp");
    let parent_event_date = time("parent_event_date");
    let mut integer = |name: &str, max: i64| -> Option<i64> {
        let v = obj.get(name).filter(|v| !v.is_null())?;
        match v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64))
        {
            Some(n) if n.unsigned_abs() <= max.unsigned_abs() => Some(n),
            _ => {
                errors.push(err(join(prefix, name), format!("out of range (at most {max} in magnitude)")));
                None
            }
        }
    };
    let duration_ms = integer("duration_ms", i64::MAX);
    let retention_days = integer("retention_days", i64::from(i32::MAX)).map(|n| n as i32);
    let parent_event_id = match text("parent_event_id") {
        None => None,
        Some(raw) => match Uuid::parse_str(&raw) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push(err(join(prefix, "parent_event_id"), "not a valid uuid"));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(AuditEvent {
        event_id: Uuid::new_v4(),
        version: text("version").unwrap_or_default(),
        event_type: text("event_type").unwrap_or_default(),
        event_timestamp: event_timestamp.unwrap_or_default(),
        event_category: text("event_category").unwrap_or_default(),
        event_action: text("event_action").unwrap_or_default(),
        event_outcome: text("event_outcome").unwrap_or_default(),
        correlation_id: text("correlation_id").unwrap_or_default(),
        event_data: obj.get("event_data").and_then(Value::as_object).cloned().unwrap_or_default(),
        actor_type: text("actor_type"),
        actor_id: text("actor_id"),
        actor_ip: text("actor_ip"),
        resource_type: text("resource_type"),
        resource_id: text("resource_id"),
        parent_event_id,
        parent_event_date,
        namespace: text("namespace"),
        cluster_id: text("cluster_id"),
        severity: text("severity"),
        duration_ms,
        error_code: text("error_code"),
        error_message: text("error_message"),
        retention_days,
        is_sensitive: obj.get("is_sensitive").and_then(Value::as_bool),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn good() -> Value {
        json!({
            "version": "1.0",
            "event_type": "workflowexecution.workflow.started",
            "event_timestamp": "2025-12-13T02:00:00Z",
            "event_category": "workflowexecution",
            "event_action": "started",
            "event_outcome": "success",
            "correlation_id": "rr-1",
            "event_data": {
                "event_type": "workflowexecution.workflow.started",
                "workflow_id": "restart-pod",
                "workflow_version": "v1.0.0",
                "target_resource": "payment/deployment/api",
                "phase": "Running",
                "container_image": "ghcr.io/kubernaut/kubectl-actions:v1.28",
                "execution_name": "wfe-1",
            },
        })
    }

    fn batch_errors(body: &Value) -> Vec<String> {
        match parse_batch(body.to_string().as_bytes(), MAX_BATCH).unwrap_err() {
            BatchError::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_valid_event_keeps_every_field() {
        let mut body = good();
        body["namespace"] = json!(null);
        body["duration_ms"] = json!(1200);
        body["resource_type"] = json!("WorkflowExecution");
        let e = parse_event(body.to_string().as_bytes()).unwrap();
        assert_eq!(e.event_type, "workflowexecution.workflow.started");
        assert_eq!(e.version, "1.0");
        assert_eq!(e.event_timestamp.to_rfc3339(), "2025-12-13T02:00:00+00:00");
        assert_eq!(e.event_data["phase"], "Running");
        assert_eq!(
            (e.namespace, e.duration_ms, e.resource_type.as_deref()),
            (None, Some(1200), Some("WorkflowExecution"))
        );
    }

    #[test]
    fn every_bad_field_is_named_with_its_index() {
        let mut bad = good();
        let obj = bad.as_object_mut().unwrap();
        obj.remove("event_outcome");
        obj.insert("event_category".into(), json!("workflows"));
        obj.insert("version".into(), json!(""));
        obj.insert("event_timestamp".into(), json!("yesterday"));
        obj["event_data"].as_object_mut().unwrap().remove("phase");
        let errors = batch_errors(&json!([good(), bad]));
        for expected in [
            "events[1].event_outcome: missing",
            "events[1].version: must not be empty",
            "events[1].event_timestamp: not a valid date-time",
            "events[1].event_data.phase: missing",
        ] {
            assert!(errors.contains(&expected.to_string()), "{expected} not in {errors:#?}");
        }
        assert!(
            errors.iter().any(|e| e.starts_with("events[1].event_category: must be one of gateway, ")),
            "{errors:#?}"
        );
        assert!(errors.iter().all(|e| e.starts_with("events[1].")), "{errors:#?}");
    }

    #[test]
    fn the_discriminator_in_event_data_selects_its_payload_schema() {
        let mut body = good();
        body["event_data"]["event_type"] = json!("gateway.signal.received");
        let errors = parse_event(body.to_string().as_bytes()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"event_data.signal_type"), "{errors:?}");
        body["event_data"]["event_type"] = json!("nobody.knows.this");
        let errors = parse_event(body.to_string().as_bytes()).unwrap_err();
        assert!(errors.iter().any(|e| e.field == "event_data.event_type"), "{errors:?}");
    }

    #[test]
    fn what_postgres_cannot_store_is_the_clients_error() {
        let mut body = good();
        body["correlation_id"] = json!("a\u{0}b");
        body["event_data"]["note\u{0}"] = json!(["x", "y\u{0}"]);
        body["duration_ms"] = json!(1e30);
        let errors: Vec<String> =
            parse_event(body.to_string().as_bytes()).unwrap_err().iter().map(ToString::to_string).collect();
        assert!(errors.iter().any(|e| e.starts_with("correlation_id: contains a NUL")), "{errors:?}");
        assert!(
            errors.iter().any(|e| e.starts_with("event_data.note\u{0}[1]: contains a NUL")),
            "{errors:?}"
        );
        let mut body = good();
        body["retention_days"] = json!(3_000_000_000_i64);
        body["event_timestamp"] = json!("0001-01-01T00:00:00+01:00");
        let errors: Vec<String> =
            parse_event(body.to_string().as_bytes()).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "event_timestamp: outside the years 0001 to 9999 in UTC",
                "retention_days: out of range (at most 2147483647 in magnitude)"
            ]
        );
    }

    #[test]
    fn integers_beyond_64_bits_are_refused_not_rounded() {
        let mut body = good().to_string();
        body.insert_str(
            1,
            r#""duration_ms": -9223372036854775809, "note": "12345678901234567890123 in a string","#,
        );
        let errors: Vec<String> =
            parse_event(body.as_bytes()).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            ["body: the integer -9223372036854775809 is outside the 64-bit range and cannot be kept exactly"]
        );
        let fine = good().to_string().replacen('{', r#"{"a": 18446744073709551615, "b": -9223372036854775808, "c": 1e30, "d": "\"99999999999999999999\"", "#, 1);
        assert!(oversized_integer(fine.as_bytes()).is_none(), "{fine}");
    }

    #[test]
    fn the_body_itself_is_checked() {
        let errors = |body: &str| match parse_batch(body.as_bytes(), 2) {
            Err(BatchError::Invalid(e)) => e.iter().map(ToString::to_string).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(errors("[]"), ["events: batch cannot be empty"]);
        assert_eq!(errors("{}"), ["body: expected a JSON array of audit events"]);
        assert!(errors("[{").len() == 1 && errors("[{")[0].starts_with("body: not valid JSON"));
        assert_eq!(errors("[1]"), ["events[0]: the value is not of type \"object\""]);
        let three = json!([good(), good(), good()]).to_string();
        assert_eq!(parse_batch(three.as_bytes(), 2), Err(BatchError::TooLarge { count: 3, max: 2 }));
        assert_eq!(
            parse_event(b"[]").unwrap_err()[0].to_string(),
            "body: expected a JSON object (one audit event)"
        );
    }
}
