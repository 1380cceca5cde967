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
            event("selection.completed", "success", &ok, "restart-pod-1", json!({})),
            event(
                "execution.started",
                "success",
                &ok,
                "restart-pod-1",
                json!({"pipelinerun_name": "restart-pod-1-run"}),
            ),
            event("workflow.completed", "success", &ok, "restart-pod-1", json!({"duration": "1m12s"})),
            event("workflow.started", "success", &failed, "scale-up-1", json!({})),
        ])
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["event_ids"].as_array().map(Vec::len), Some(4), "{body}");
    let (status, body) = ds
        .write_batch(&[event(
            "workflow.failed",
            "failure",
            &failed,
            "scale-up-1",
            json!({"failure_reason": "TaskFailed", "failed_task_name": "scale"}),
        )])
        .await;
    assert_eq!(status, 201, "{body}");

    let trail = ds.wait_for_events(&ok, 3, Duration::from_secs(60)).await;
    let types: Vec<&str> = trail.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "workflowexecution.selection.completed",
            "workflowexecution.execution.started",
            "workflowexecution.workflow.completed"
        ]
    );
    assert_eq!(trail[2]["event_data"]["duration"], "1m12s");
    assert_eq!(trail[2]["event_data"]["phase"], "Completed");
    assert!(trail.iter().all(|e| e["event_category"] == "workflowexecution"
        && e["event_data"]["execution_name"] == "restart-pod-1"
        && e["correlation_id"] == ok.as_str()));

    let trail = ds.wait_for_events(&failed, 2, Duration::from_secs(60)).await;
    let outcomes: Vec<(&str, &str)> = trail
        .iter()
        .map(|e| (e["event_action"].as_str().unwrap(), e["event_outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(outcomes, [("started", "success"), ("failed", "failure")]);
    assert_eq!(trail[1]["event_data"]["failure_reason"], "TaskFailed");

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
    assert_eq!(n, 5);
}

#[tokio::test]
async fn invalid_events_are_refused_naming_the_field() {
    let ds = DataStorage::from_env();
    let id = correlation_id("invalid");
    let mut bad = event("workflow.started", "success", &id, "wfe-invalid", json!({}));
    bad["event_data"].as_object_mut().unwrap().remove("container_image");
    bad.as_object_mut().unwrap().remove("version");
    let (status, body) =
        ds.write_batch(&[event("workflow.started", "success", &id, "wfe-invalid", json!({})), bad]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field_errors"]["events[1].version"], "missing", "{body}");
    assert_eq!(body["field_errors"]["events[1].event_data.container_image"], "missing", "{body}");
    assert!(ds.events(&id).await.is_empty(), "nothing of a refused batch is stored");
}

#[tokio::test]
async fn without_a_token_the_api_refuses_when_the_environment_authenticates() {
    let ds = DataStorage::from_env();
    let (status, body) = ds.get_without_token("/api/v1/audit/events?limit=1").await;
    if ds.authenticates() {
        assert_eq!(status, 401, "DataStorage authenticates every call: {body}");
        assert_eq!(body["detail"], "Missing Authorization header", "{body}");
    } else {
        // A backend without `kube-api` runs DataStorage without authentication (the plan says so).
        assert_eq!(status, 200, "{body}");
    }
}
