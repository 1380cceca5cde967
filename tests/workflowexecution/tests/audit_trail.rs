//! A workflow's audit trail written through DataStorage and read back.
//!
//! PostgreSQL's restart lives in `restart.rs`: its own test binary, because cargo runs test
//! binaries one after another, so the outage cannot reach these tests.
#![cfg(feature = "e2e")]
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use serde_json::json;
use workflowexecution_suite::{DataStorage, correlation_id, endpoint, event};

#[tokio::test]
async fn workflow_audit_trail_is_written_and_read_back() {
    let ds = DataStorage::from_env();
    let ok = correlation_id("ok");
    let failed = correlation_id("failed");
    let (status, body) = ds
        .write_batch(&[
            event("workflow.started", "success", &ok, json!({"workflow": "restart-pod", "step": 0})),
            event(
                "workflow.completed",
                "success",
                &ok,
                json!({"workflow": "restart-pod", "duration_ms": 1200}),
            ),
            event("workflow.started", "success", &failed, json!({"workflow": "scale-up"})),
        ])
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = ds
        .write_batch(&[event(
            "workflow.failed",
            "failure",
            &failed,
            json!({"reason": "TaskFailed", "task": "scale"}),
        )])
        .await;
    assert_eq!(status, 201, "{body}");

    let trail = ds.wait_for_events(&ok, 2, Duration::from_secs(60)).await;
    let actions: Vec<&str> = trail.iter().map(|e| e["event_action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["workflow.started", "workflow.completed"]);
    assert_eq!(trail[1]["event_data"]["duration_ms"], 1200);
    assert!(
        trail.iter().all(|e| e["resource_type"] == "WorkflowExecution" && e["correlation_id"] == ok.as_str())
    );

    let trail = ds.wait_for_events(&failed, 2, Duration::from_secs(60)).await;
    let actions: Vec<(&str, &str)> = trail
        .iter()
        .map(|e| (e["event_action"].as_str().unwrap(), e["event_outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("workflow.started", "success"), ("workflow.failed", "failure")]);
    assert_eq!(trail[1]["event_data"]["reason"], "TaskFailed");

    // The rows are really in PostgreSQL, not only in a cache.
    let (client, conn) =
        tokio_postgres::connect(&endpoint("DATABASE_URL"), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_events WHERE correlation_id = ANY($1)",
            &[&vec![ok.clone(), failed.clone()]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 4);
}

#[tokio::test]
async fn invalid_events_are_refused_naming_the_field() {
    let ds = DataStorage::from_env();
    let id = correlation_id("invalid");
    let mut bad = event("workflow.started", "success", &id, json!({}));
    bad.as_object_mut().unwrap().remove("resource_type");
    let (status, body) = ds.write_batch(&[event("workflow.started", "success", &id, json!({})), bad]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("events[1].resource_type"), "{body}");
    assert!(ds.events(&id).await.is_empty(), "nothing of a refused batch is stored");
}
