//! Helpers for the WorkflowExecution end-to-end suite: the environment's endpoints and a small
//! DataStorage client. The tests live in `tests/` and run under `cargo xtask e2e workflowexecution`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// An endpoint variable the environment must provide, with a message saying how to get one.
pub fn endpoint(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this suite with `cargo xtask e2e workflowexecution`, or `eval \"$(cargo xtask infra up workflowexecution --keep)\"` first")
    })
}

/// A correlation id unique to this test run.
pub fn correlation_id(label: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("wfe-{label}-{nanos:x}-{}", std::process::id())
}

/// One workflow audit event as WorkflowExecution sends it.
pub fn event(action: &str, outcome: &str, correlation_id: &str, data: Value) -> Value {
    json!({
        "event_category": "workflow",
        "event_action": action,
        "event_outcome": outcome,
        "resource_type": "WorkflowExecution",
        "correlation_id": correlation_id,
        "event_data": data,
    })
}

/// A DataStorage client.
pub struct DataStorage {
    base: String,
    http: reqwest::Client,
}

impl DataStorage {
    /// A client for `$DATASTORAGE_URL`.
    pub fn from_env() -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client");
        Self { base: endpoint("DATASTORAGE_URL"), http }
    }

    /// Posts a batch; returns the status code and body.
    pub async fn write_batch(&self, events: &[Value]) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/v1/audit/events/batch", self.base))
            .json(events)
            .send()
            .await
            .expect("POST audit batch");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The events stored for a correlation id, oldest first. Reads need PostgreSQL, so a 503
    /// (another test is restarting it) is retried for up to 30 s.
    pub async fn events(&self, correlation_id: &str) -> Vec<Value> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let resp = self
                .http
                .get(format!("{}/api/v1/audit/events", self.base))
                .query(&[("correlation_id", correlation_id)])
                .send()
                .await
                .expect("GET audit events");
            let status = resp.status().as_u16();
            if status == 200 {
                return resp.json::<Vec<Value>>().await.expect("events JSON");
            }
            let body = resp.text().await.unwrap_or_default();
            assert!(
                status == 503 && started.elapsed() < Duration::from_secs(30),
                "reading events for {correlation_id}: {status} {body}"
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Polls until `count` events are stored for the correlation id or `deadline` passes.
    pub async fn wait_for_events(
        &self,
        correlation_id: &str,
        count: usize,
        deadline: Duration,
    ) -> Vec<Value> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let events = self.events(correlation_id).await;
            if events.len() >= count || started.elapsed() > deadline {
                return events;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}
