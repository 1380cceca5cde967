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

    blocking(|| env.pg.stop()).unwrap();
    let (status, body) = env.health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, serde_json::json!({"status": "not_ready", "reason": "database_unreachable"}));

    let mut sent = 1;
    for i in 0..5 {
        let batch = json!([
            event("outage", &format!("workflow.step{i}.started"), "pending"),
            event("outage", &format!("workflow.step{i}.completed"), "success"),
        ]);
        let (status, body) = env.post_batch(&batch).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["status"], "queued");
        assert_eq!(body["count"], 2);
        sent += 2;
    }
    assert_eq!(env.dlq_len().await, 5, "every batch waits in the stream");

    blocking(|| env.pg.restart()).unwrap();
    let events = eventually(REPLAY_LIMIT, "every queued event in the table", || async {
        let events = env.events("outage").await;
        if events.len() >= sent { Ok(events) } else { Err(format!("{} of {sent}", events.len())) }
    })
    .await;
    assert_eq!(events.len(), sent, "no event lost, none doubled");
    assert_eq!(events[0]["event_action"], "workflow.started");
    assert_eq!(
        events[1]["event_action"], "workflow.step0.started",
        "replayed events keep their time of receipt"
    );
    assert_eq!(events[sent - 1]["event_action"], "workflow.step4.completed");

    eventually(REPLAY_LIMIT, "the dead-letter queue drained", || async {
        match env.dlq_len().await {
            0 => Ok(()),
            n => Err(format!("{n} waiting")),
        }
    })
    .await;
    let pending = env.sql("SELECT count(*) FROM audit_events WHERE correlation_id = 'outage'");
    assert_eq!(pending, sent.to_string());

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

    for action in ["a", "b"] {
        let (status, body) = env.post_batch(&json!([event("full", action, "success")])).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = env.post_batch(&json!([event("full", "c", "success")])).await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("database unavailable"), "{error}");
    assert!(error.ends_with("dead-letter queue full (2 batches waiting)"), "{error}");
    assert_eq!(env.dlq_len().await, 2);

    blocking(|| env.pg.restart()).unwrap();
    let events = eventually(REPLAY_LIMIT, "both queued batches in the table", || async {
        let events = env.events("full").await;
        if events.len() >= 2 { Ok(events) } else { Err(format!("{events:?}")) }
    })
    .await;
    let actions: Vec<_> = events.iter().map(|e| e["event_action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["a", "b"], "the oldest batches were kept, not trimmed");
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
    assert!(body["error"].as_str().unwrap().contains("dead-letter queue unavailable"), "{body}");

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
