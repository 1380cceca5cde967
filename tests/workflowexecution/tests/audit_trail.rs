//! A workflow's audit trail written through DataStorage and read back, and no event lost while
//! PostgreSQL restarts mid-run.
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
    // 201 written, or 202 queued while another test restarts PostgreSQL: stored either way.
    assert!(status == 201 || status == 202, "{status} {body}");
    let (status, body) = ds
        .write_batch(&[event(
            "workflow.failed",
            "failure",
            &failed,
            json!({"reason": "TaskFailed", "task": "scale"}),
        )])
        .await;
    assert!(status == 201 || status == 202, "{status} {body}");

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

#[tokio::test]
async fn no_event_is_lost_while_postgres_restarts() {
    let ds = DataStorage::from_env();
    let id = correlation_id("restart");
    let xtask = endpoint("XTASK_BIN");
    let run = endpoint("XTASK_RUN");
    let restart = tokio::task::spawn_blocking(move || {
        std::process::Command::new(xtask)
            .args(["infra", "restart", "postgres", "--run", &run])
            .output()
            .unwrap()
    });
    // Keep writing for as long as the restart takes, and a little after: some batches must meet
    // the outage (DataStorage queues them) and some the restarted server.
    // Writes are paced like a busy controller's, so the dead-letter queue (1000 batches) is not
    // the thing under test.
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    let (mut sent, mut queued, mut after) = (0, 0, 0);
    for batch in 0..20_000 {
        pace.tick().await;
        let events = [
            event("workflow.step.started", "pending", &id, json!({"batch": batch, "i": 0})),
            event("workflow.step.completed", "success", &id, json!({"batch": batch, "i": 1})),
        ];
        let (status, body) = ds.write_batch(&events).await;
        assert!(status == 201 || status == 202, "batch {batch}: {status} {body}");
        queued += usize::from(status == 202);
        sent += events.len();
        if restart.is_finished() {
            after += 1;
            if after == 10 {
                break;
            }
        }
    }
    let out = restart.await.unwrap();
    assert!(out.status.success(), "restart failed: {}", String::from_utf8_lossy(&out.stderr));
    // Batches after the restart land directly; those during it were queued and are replayed.
    let (status, body) =
        ds.write_batch(&[event("workflow.completed", "success", &id, json!({"final": true}))]).await;
    assert!(status == 201 || status == 202, "{status} {body}");
    sent += 1;

    let stored = ds.wait_for_events(&id, sent, Duration::from_secs(60)).await;
    assert!(queued > 0, "no batch met the outage, so this run proved nothing about the queue");
    assert_eq!(
        stored.len(),
        sent,
        "every event stored exactly once ({queued} batches were queued during the restart)"
    );
    let mut seen: Vec<(i64, i64)> = stored
        .iter()
        .filter(|e| e["event_data"]["batch"].is_i64())
        .map(|e| (e["event_data"]["batch"].as_i64().unwrap(), e["event_data"]["i"].as_i64().unwrap()))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), sent - 1, "no duplicates, no gaps");
}
