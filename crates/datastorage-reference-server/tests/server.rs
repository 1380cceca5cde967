//! The reference server against real PostgreSQL and Redis, over real HTTP; every audit API
//! answer is checked against the real service's contract on the way (`common::contract`).

mod common;

use std::time::Duration;

use common::{BATCH, Body, EVENTS, Env, blocking, event, eventually};
use serde_json::{Value, json};

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

    // Only the first migration: the table exists, the columns later ones add do not (seed 000).
    let first = tempfile::tempdir().unwrap();
    let name = "001_create_audit_events.sql";
    std::fs::copy(common::migrations_dir().join(name), first.path().join(name)).unwrap();
    env.migrate_dir(first.path()).await;
    let (status, body) = env.health().await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"].as_str().unwrap().starts_with("column audit_events.event_version missing"),
        "{body}"
    );
    let missing = body["missing"].as_array().unwrap();
    for column in ["event_type", "actor_ip", "severity", "is_sensitive"] {
        assert!(
            missing.contains(&json!(format!("column audit_events.{column} missing"))),
            "{column}: {body}"
        );
    }

    // Writes meanwhile are not lost: the schema error parks them in the dead-letter queue.
    let (status, body) = env.post_batch(&json!([event("early", "workflow.started", "success")])).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    let (status, body) = env.post_event(&event("early", "workflow.completed", "success")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"status": "accepted", "message": "audit event queued for async processing"}));

    env.migrate().await;
    let (status, body) = env.health().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "ready"}), "the service's own body");

    let replayed = eventually(Duration::from_secs(30), "queued events replayed", || async {
        let events = env.events("early").await;
        if events.len() == 2 { Ok(events) } else { Err(format!("{events:?}")) }
    })
    .await;
    let types: Vec<_> = replayed.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["workflowexecution.workflow.completed", "workflowexecution.workflow.started"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_written_and_read_back_newest_first_with_every_field() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    env.serve().await;

    let started = event("wf-1", "workflow.started", "success");
    let execution = event("wf-1", "execution.started", "success");
    let mut failed = event("wf-1", "workflow.failed", "failure");
    failed["event_data"]["failure_reason"] = json!("TaskFailed");
    failed["event_data"]["parameters"] = json!({"replicas": "3"});
    let optional = json!({
        "actor_type": "service", "actor_id": "workflowexecution-controller", "actor_ip": "10.0.0.7",
        "resource_type": "WorkflowExecution", "resource_id": "wfe-abc", "namespace": "kubernaut-system",
        "cluster_id": "cluster-1", "severity": "critical", "duration_ms": 1200, "error_code": "ERR_TASK",
        "error_message": "task scale failed", "retention_days": 30, "is_sensitive": false,
        "parent_event_id": "8c0b1a9e-4d7e-4f43-9d6e-0f1d1c2b3a4e", "parent_event_date": "2025-12-13T02:00:00Z",
    });
    for (k, v) in optional.as_object().unwrap() {
        failed[k] = v.clone();
    }
    let batch = json!([started, execution, failed, event("wf-other", "workflow.started", "success"),]);
    let (status, body) = env.post_batch(&batch).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["message"], "4 audit events created");
    let ids: Vec<&str> = body["event_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4);

    let events = env.events("wf-1").await;
    let types: Vec<_> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "workflowexecution.workflow.failed",
            "workflowexecution.execution.started",
            "workflowexecution.workflow.started"
        ],
        "newest first"
    );
    let stored_ids: Vec<_> = events.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(stored_ids, [ids[2], ids[1], ids[0]], "the ids the write answered are the stored ones");
    let last = &events[0];
    let mut expected = batch[2].clone();
    expected["event_id"] = json!(ids[2]);
    assert_eq!(last, &expected, "every field comes back as sent");
    assert!(events[2].get("namespace").is_none(), "an absent field stays absent: {}", events[2]);

    let (status, body) = env.query(&[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["pagination"], json!({"limit": 50, "offset": 0, "total": 4, "has_more": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_event_is_written_and_answered_with_its_id() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    env.serve().await;

    let mut e = event("one", "selection.completed", "success");
    e["event_timestamp"] = json!("2025-12-13T02:00:00.5+01:00");
    let (status, body) = env.post_event(&e).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["event_timestamp"], "2025-12-13T01:00:00.500Z");
    assert_eq!(body["message"], "audit event created");
    let stored = env.events("one").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["event_id"], body["event_id"]);
    assert_eq!(stored[0]["event_timestamp"], "2025-12-13T01:00:00.500Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_writes_are_refused_as_problems_naming_the_field_and_nothing_is_written() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    env.serve().await;

    let mut bad = event("wf-bad", "workflow.completed", "success");
    bad.as_object_mut().unwrap().remove("event_outcome");
    bad["event_data"].as_object_mut().unwrap().remove("phase");
    let (status, body) = env.post_batch(&json!([event("wf-bad", "workflow.started", "success"), bad])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "https://kubernaut.ai/problems/validation-error");
    assert_eq!(body["instance"], BATCH);
    assert_eq!(body["detail"], "events[1].event_outcome: missing (and 1 more)");
    assert_eq!(
        body["field_errors"],
        json!({"events[1].event_outcome": "missing", "events[1].event_data.phase": "missing"})
    );
    assert!(env.events("wf-bad").await.is_empty(), "a refused batch writes nothing");

    // The single write names fields without an index.
    let mut e = event("wf-bad", "workflow.started", "ok");
    e["version"] = json!("");
    e["correlation_id"] = json!("x".repeat(256));
    let (status, body) = env.post_event(&e).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["instance"], EVENTS);
    assert_eq!(body["field_errors"]["version"], "must not be empty");
    assert_eq!(body["field_errors"]["event_outcome"], "must be one of success, failure, pending");
    assert_eq!(body["field_errors"]["correlation_id"], "longer than 255 characters");

    let mut data = event("wf-bad", "workflow.started", "success");
    data["event_data"] = json!("not an object");
    let (status, body) = env.post_event(&data).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["field_errors"]["event_data"].as_str().unwrap().contains("object"), "{body}");

    let (status, body) = env.call("POST", BATCH, BATCH, Some(Body::Raw("{not json".into()))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().starts_with("body: not valid JSON"), "{body}");

    let too_many: Vec<Value> = (0..501).map(|_| event("wf-bad", "workflow.started", "success")).collect();
    let (status, body) = env.post_batch(&json!(too_many)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "https://kubernaut.ai/problems/batch-size-exceeded");
    assert_eq!(body["detail"], "batch size 501 exceeds maximum allowed batch size of 500");

    // PostgreSQL cannot store U+0000: the client hears which field, not the database's error.
    let mut nul = event("wf-bad", "workflow.started", "success");
    nul["event_data"]["workflow_id"] = json!("a\u{0}b");
    let (status, body) = env.post_event(&nul).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["field_errors"]["event_data.workflow_id"].as_str().unwrap().contains("NUL"), "{body}");
    assert!(env.events("wf-bad").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_filters_pages_and_refuses_bad_parameters() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    env.serve().await;

    let mut batch = Vec::new();
    for i in 0..5 {
        let mut e = event("page", "workflow.started", if i % 2 == 0 { "success" } else { "failure" });
        e["severity"] = json!(if i == 4 { "critical" } else { "info" });
        e["event_data"]["execution_name"] = json!(format!("exec-{i}"));
        batch.push(e);
    }
    batch.push(event("other", "workflow.completed", "success"));
    assert_eq!(env.post_batch(&json!(batch)).await.0, 201);

    let names = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_data"]["execution_name"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = env.query(&[("correlation_id", "page"), ("limit", "2"), ("offset", "1")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["exec-3", "exec-2"]);
    assert_eq!(body["pagination"], json!({"limit": 2, "offset": 1, "total": 5, "has_more": true}));
    let (_, body) = env.query(&[("correlation_id", "page"), ("limit", "2"), ("offset", "4")]).await;
    assert_eq!(body["pagination"]["has_more"], false);
    let (_, body) = env.query(&[("correlation_id", "page"), ("offset", "100")]).await;
    assert_eq!((body["data"].as_array().unwrap().len(), &body["pagination"]["total"]), (0, &json!(5)));

    let (_, body) = env.query(&[("correlation_id", "page"), ("event_outcome", "failure")]).await;
    assert_eq!(names(&body), ["exec-3", "exec-1"]);
    let (_, body) = env.query(&[("severity", "critical")]).await;
    assert_eq!(names(&body), ["exec-4"]);
    let (_, body) = env
        .query(&[
            ("event_type", "workflowexecution.workflow.completed"),
            ("event_category", "workflowexecution"),
        ])
        .await;
    assert_eq!(body["data"][0]["correlation_id"], "other");
    let (_, body) = env.query(&[("detail_key", "execution_name"), ("detail_value", "exec-2")]).await;
    assert_eq!(names(&body), ["exec-2"]);
    let (_, body) = env.query(&[("correlation_id", "page"), ("since", "1h")]).await;
    assert_eq!(body["pagination"]["total"], 5);
    let (_, body) = env.query(&[("correlation_id", "page"), ("until", "2000-01-01T00:00:00Z")]).await;
    assert_eq!(body["pagination"]["total"], 0);

    for (params, field, reason) in [
        (vec![("limit", "0")], "limit", "must be at least 1"),
        (vec![("limit", "1001")], "limit", "must be at most 1000"),
        (vec![("offset", "-1")], "offset", "must be at least 0"),
        (vec![("event_outcome", "ok")], "event_outcome", "must be one of success, failure, pending"),
        (vec![("correlation_id", "a\u{0}b")], "correlation_id", "contains a NUL character (U+0000)"),
        (
            vec![("detail_key", "a;drop")],
            "detail_value",
            "missing: detail_key must be paired with detail_value",
        ),
    ] {
        let (status, body) = env.query(&params).await;
        assert_eq!(status, 400, "{params:?}: {body}");
        assert_eq!(body["field_errors"][field], reason, "{params:?}: {body}");
    }
    // Bytes that are not UTF-8 are decoded lossily (U+FFFD), as form decoding does: no error.
    let (status, body) = env.call("GET", EVENTS, &format!("{EVENTS}?correlation_id=%FF"), None).await;
    assert_eq!((status, &body["pagination"]["total"]), (200, &json!(0)), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_errors_stay_in_the_log() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    env.serve().await;

    // A refusal retrying cannot fix (a constraint here): 500, a generic detail, nothing queued.
    env.sql("ALTER TABLE audit_events ADD CONSTRAINT secret_rule CHECK (correlation_id <> 'refused')");
    let (status, body) = env.post_event(&event("refused", "workflow.started", "success")).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["type"], "https://kubernaut.ai/problems/database-error");
    assert!(!body.to_string().contains("secret_rule"), "PostgreSQL's message leaked: {body}");
    assert_eq!(env.dlq_len().await, 0);

    env.sql("REVOKE SELECT ON audit_events FROM slm_user");
    let (status, body) = env.query(&[("correlation_id", "anything")]).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["detail"], "the database refused the operation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_problems_too() {
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    env.serve().await;
    let r = env.http.get(env.url("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = env.http.delete(env.url(EVENTS)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let allow = r.headers().get("allow").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(allow.contains("GET") && allow.contains("POST"), "Allow: {allow}");
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
