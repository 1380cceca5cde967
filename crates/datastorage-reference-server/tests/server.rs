//! The reference server against real PostgreSQL and Redis, over real HTTP.

mod common;

use std::time::Duration;

use common::{Env, blocking, event, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_what_is_missing_until_the_schema_is_complete() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.serve().await;

    let (status, body) = env.health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["reason"], "schema_incomplete");
    assert_eq!(
        body["detail"],
        "table audit_events missing; function ensure_audit_events_partitions(integer, integer) missing"
    );

    // Only the first migration: the table exists, the columns a later one adds do not (seed 000).
    let first = tempfile::tempdir().unwrap();
    let name = "001_create_audit_events.sql";
    std::fs::copy(common::migrations_dir().join(name), first.path().join(name)).unwrap();
    env.migrate_dir(first.path()).await;
    let (status, body) = env.health().await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"].as_str().unwrap().starts_with("column audit_events.resource_id missing"),
        "{body}"
    );
    assert!(
        body["missing"].as_array().unwrap().contains(&json!("column audit_events.event_version missing"))
    );

    // Writes meanwhile are not lost: the schema error parks them in the dead-letter queue.
    let (status, body) = env.post_batch(&json!([event("early", "workflow.started", "success")])).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");

    env.migrate().await;
    let (status, body) = env.health().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "ready"}), "the service's own body");

    let replayed = eventually(Duration::from_secs(30), "queued batch replayed", || async {
        let events = env.events("early").await;
        if events.len() == 1 { Ok(events) } else { Err(format!("{events:?}")) }
    })
    .await;
    assert_eq!(replayed[0]["event_action"], "workflow.started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_written_and_read_back_oldest_first() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    env.serve().await;

    let mut failed = event("wf-1", "workflow.failed", "failure");
    failed["event_data"] = json!({"reason": "TaskFailed", "step": 3, "retry": {"allowed": false}});
    failed["resource_id"] = json!("wfe-abc");
    failed["namespace"] = json!("kubernaut-system");
    let batch = json!([
        event("wf-1", "workflow.started", "success"),
        event("wf-1", "workflow.step.completed", "success"),
        failed,
        event("wf-other", "workflow.started", "success"),
    ]);
    let (status, body) = env.post_batch(&batch).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, json!({"status": "created", "count": 4}));

    let events = env.events("wf-1").await;
    let actions: Vec<_> = events.iter().map(|e| e["event_action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["workflow.started", "workflow.step.completed", "workflow.failed"]);
    let last = &events[2];
    assert_eq!(last["event_outcome"], "failure");
    assert_eq!(last["resource_type"], "WorkflowExecution");
    assert_eq!(last["event_data"], json!({"reason": "TaskFailed", "step": 3, "retry": {"allowed": false}}));
    assert_eq!(last["resource_id"], "wfe-abc");
    assert_eq!(last["namespace"], "kubernaut-system");
    assert_eq!(events[0]["event_data"], json!({}));
    assert!(events[0]["event_id"].as_str().unwrap().len() == 36);

    assert!(env.events("nobody").await.is_empty());
    let r = env.http.get(env.url("/api/v1/audit/events")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "correlation_id: missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_batch_is_refused_naming_the_field_and_nothing_is_written() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    env.serve().await;

    let mut bad = event("wf-bad", "workflow.completed", "success");
    bad.as_object_mut().unwrap().remove("event_outcome");
    let (status, body) = env.post_batch(&json!([event("wf-bad", "workflow.started", "success"), bad])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "events[1].event_outcome: missing");
    assert_eq!(body["field"], "events[1].event_outcome");
    assert!(env.events("wf-bad").await.is_empty(), "a refused batch writes nothing");

    let mut data = event("wf-bad", "workflow.started", "success");
    data["event_data"] = json!("not an object");
    let (status, body) = env.post_batch(&json!([data])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "events[0].event_data: expected a JSON object");

    let r = env.http.post(env.url("/api/v1/audit/events/batch")).body("{not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_creates_the_current_months_partition() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    let current = "audit_events_y' || to_char(now() AT TIME ZONE 'UTC', 'YYYY\"m\"MM') || '";
    let exists = format!("SELECT to_regclass('{current}') IS NOT NULL");
    env.sql(&format!("DO $$ BEGIN EXECUTE format('DROP TABLE %I', '{current}'); END $$"));
    assert_eq!(env.sql(&exists), "f");

    env.serve().await;
    eventually(Duration::from_secs(30), "the current month's partition", || async {
        match env.sql(&exists).as_str() {
            "t" => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    let (status, body) = env.post_batch(&json!([event("wf-now", "workflow.started", "success")])).await;
    assert_eq!(status, 201, "{body}");
    let partition = env.sql("SELECT tableoid::regclass FROM audit_events WHERE correlation_id = 'wf-now'");
    assert!(partition.starts_with("audit_events_y"), "{partition}");
}
