//! The Gateway end-to-end suite (seed 004): Gateway writes audit events through DataStorage and
//! needs nothing else of its schema. The tests live in `tests/` and run under
//! `cargo xtask e2e gateway`; the environment helpers are the WorkflowExecution suite's.

pub use workflowexecution_suite::{DataStorage, correlation_id, endpoint, stamp};

use serde_json::{Value, json};

/// One audit event as Gateway sends it (DataStorage's `AuditEventRequest` with the contract's
/// `GatewayAuditPayload`): `kind` is the event type after `gateway.` (`signal.received`,
/// `signal.deduplicated`, `crd.created`, `crd.failed`).
pub fn event(kind: &str, outcome: &str, correlation_id: &str, signal: &str) -> Value {
    let event_type = format!("gateway.{kind}");
    json!({
        "version": "1.0",
        "event_type": event_type,
        "event_timestamp": stamp(),
        "event_category": "gateway",
        "event_action": kind.rsplit('.').next().unwrap_or(kind),
        "event_outcome": outcome,
        "actor_type": "service",
        "actor_id": "gateway-service",
        "resource_type": "Signal",
        "resource_id": signal,
        "correlation_id": correlation_id,
        "event_data": {
            "event_type": event_type,
            "signal_type": "alert",
            "signal_name": "PodOOMKilled",
            "namespace": "payment",
            "fingerprint": signal,
            "resource_kind": "Deployment",
            "resource_name": "payment-api",
        },
    })
}
