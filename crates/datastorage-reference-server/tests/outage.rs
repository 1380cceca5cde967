//! PostgreSQL stopped under the server: batches go to the Redis dead-letter queue and are
//! replayed, none lost and none doubled, once it is back; a full queue refuses, never trims.

mod common;

use std::time::Duration;

use common::{Env, blocking, event, eventually};
use serde_json::json;

const REPLAY_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_survive_a_postgres_outage_through_the_dead_letter_queue() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    env.serve().await;

    let (status, _) = env.post_batch(&json!([event("outage", "workflow.started", "success")])).await;
    assert_eq!(status, 201);
    // What tells each event apart, oldest first: its execution name and its type.
    let key = |e: &serde_json::Value| {
        format!(
            "{} {}",
            e["event_data"]["execution_name"].as_str().unwrap(),
            e["event_type"].as_str().unwrap()
        )
    };
    let mut sent = vec!["wfe-outage workflowexecution.workflow.started".to_string()];

    blocking(|| env.pg.stop()).unwrap();
    let (status, body) = env.health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, serde_json::json!({"status": "not_ready", "reason": "database_unreachable"}));

    for i in 0..5 {
        let mut started = event("outage", "execution.started", "pending");
        started["event_data"]["execution_name"] = json!(format!("step{i}"));
        let mut completed = event("outage", "workflow.completed", "success");
        completed["event_data"]["execution_name"] = json!(format!("step{i}"));
        sent.push(key(&started));
        sent.push(key(&completed));
        let (status, body) = env.post_batch(&json!([started, completed])).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["status"], "accepted");
        assert_eq!(body["count"], 2);
    }
    let failed = event("outage", "workflow.failed", "failure");
    let (status, body) = env.post_event(&failed).await;
    assert_eq!(status, 202, "{body}");
    sent.push(key(&failed));
    assert_eq!(env.dlq_len().await, 6, "every write waits in the stream");

    blocking(|| env.pg.restart()).unwrap();
    let events = eventually(REPLAY_LIMIT, "every queued event in the table", || async {
        let events = env.events("outage").await;
        if events.len() >= sent.len() {
            Ok(events)
        } else {
            Err(format!("{} of {}", events.len(), sent.len()))
        }
    })
    .await;
    let stored: Vec<String> = events.iter().rev().map(key).collect();
    assert_eq!(stored, sent, "no event lost, none doubled, each at the time its client gave");

    eventually(REPLAY_LIMIT, "the dead-letter queue drained", || async {
        match env.dlq_len().await {
            0 => Ok(()),
            n => Err(format!("{n} waiting")),
        }
    })
    .await;
    let pending = env.sql("SELECT count(*) FROM audit_events WHERE correlation_id = 'outage'");
    assert_eq!(pending, sent.len().to_string());

    // The server reconnected: writes go straight to the table again.
    let (status, body) = env.post_batch(&json!([event("outage", "workflow.completed", "success")])).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = env.health().await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_dead_letter_queue_refuses_rather_than_trims() {
    let mut env = blocking(|| Env::new(|c| c.redis.dlq_max_len = 2));
    env.migrate().await;
    env.serve().await;
    blocking(|| env.pg.stop()).unwrap();

    for kind in ["workflow.started", "execution.started"] {
        let (status, body) = env.post_batch(&json!([event("full", kind, "success")])).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = env.post_batch(&json!([event("full", "workflow.completed", "success")])).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "https://kubernaut.ai/problems/service-unavailable");
    assert_eq!(body["detail"], "the database is unavailable; dead-letter queue full (2 batches waiting)");
    assert_eq!(env.dlq_len().await, 2);

    blocking(|| env.pg.restart()).unwrap();
    let events = eventually(REPLAY_LIMIT, "both queued batches in the table", || async {
        let events = env.events("full").await;
        if events.len() >= 2 { Ok(events) } else { Err(format!("{events:?}")) }
    })
    .await;
    let types: Vec<_> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["workflowexecution.execution.started", "workflowexecution.workflow.started"],
        "the oldest batches were kept, not trimmed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_makes_health_fail_but_writes_still_land_and_it_reconnects() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    env.serve().await;
    assert_eq!(env.health().await.0, 200);

    blocking(|| env.redis.stop()).unwrap();
    let (status, body) = env.health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, serde_json::json!({"status": "not_ready", "reason": "redis_unreachable"}));
    let (status, body) = env.post_batch(&json!([event("redis-down", "workflow.started", "success")])).await;
    assert_eq!(status, 201, "PostgreSQL still takes writes: {body}");

    // Both down: the batch can be neither written nor queued, and the client is told so.
    blocking(|| env.pg.stop()).unwrap();
    let (status, body) = env.post_batch(&json!([event("redis-down", "workflow.failed", "failure")])).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["detail"], "the database is unavailable; the dead-letter queue is unavailable", "{body}");

    blocking(|| env.pg.restart()).unwrap();
    blocking(|| env.redis.restart()).unwrap();
    eventually(REPLAY_LIMIT, "healthy again after both restarts", || async {
        match env.health().await {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        }
    })
    .await;
    assert_eq!(env.events("redis-down").await.len(), 1);
}
