//! No audit event lost while PostgreSQL restarts mid-run.
//!
//! A test binary of its own: the restart is an outage for every test running beside it.
#![cfg(feature = "e2e")]
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use serde_json::json;
use workflowexecution_suite::{DataStorage, correlation_id, endpoint, event};

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
        // The execution name carries the batch, the event type which of its two events it is.
        let execution = format!("restart-{batch}");
        let events = [
            event("execution.started", "pending", &id, &execution, json!({})),
            event("workflow.completed", "success", &id, &execution, json!({})),
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
        ds.write_batch(&[event("workflow.completed", "success", &id, "final", json!({}))]).await;
    assert!(status == 201 || status == 202, "{status} {body}");
    sent += 1;

    let stored = ds.wait_for_events(&id, sent, Duration::from_secs(60)).await;
    assert!(queued > 0, "no batch met the outage, so this run proved nothing about the queue");
    assert_eq!(
        stored.len(),
        sent,
        "every event stored exactly once ({queued} batches were queued during the restart)"
    );
    let mut seen: Vec<(String, String)> = stored
        .iter()
        .filter(|e| e["event_data"]["execution_name"].as_str().is_some_and(|n| n.starts_with("restart-")))
        .map(|e| (e["event_data"]["execution_name"].to_string(), e["event_type"].to_string()))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), sent - 1, "no duplicates, no gaps");
}
