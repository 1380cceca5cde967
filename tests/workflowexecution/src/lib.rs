//! Helpers for the WorkflowExecution end-to-end suite: the environment's endpoints and a small
//! DataStorage client. The tests live in `tests/` and run under `cargo xtask e2e workflowexecution`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
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

/// A time after every one handed out before by this process, at PostgreSQL's microsecond
/// precision, so the events a test writes have a known order and come back exactly as sent.
pub fn stamp() -> String {
    static LAST: Mutex<Option<DateTime<Utc>>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let now = Utc::now().trunc_subsecs(6);
    let t = match *last {
        Some(l) if l >= now => l + chrono::Duration::microseconds(1),
        _ => now,
    };
    *last = Some(t);
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One audit event as WorkflowExecution sends it (DataStorage's `AuditEventRequest`): `kind` is
/// the event type after `workflowexecution.` (`workflow.started`, `workflow.completed`,
/// `workflow.failed`, `selection.completed`, `execution.started`), `execution` the
/// WorkflowExecution's name, `extra` more payload fields (e.g. `failure_reason`).
pub fn event(kind: &str, outcome: &str, correlation_id: &str, execution: &str, extra: Value) -> Value {
    let event_type = format!("workflowexecution.{kind}");
    let phase = match kind {
        "workflow.completed" => "Completed",
        "workflow.failed" => "Failed",
        "selection.completed" => "Pending",
        _ => "Running",
    };
    let mut data = json!({
        "event_type": event_type,
        "workflow_id": "kubectl-restart-deployment",
        "workflow_version": "v1.0.0",
        "target_resource": "payment/deployment/payment-api",
        "phase": phase,
        "container_image": "ghcr.io/kubernaut/kubectl-actions:v1.28",
        "execution_name": execution,
    });
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    json!({
        "version": "1.0",
        "event_type": event_type,
        "event_timestamp": stamp(),
        "event_category": "workflowexecution",
        "event_action": kind.rsplit('.').next().unwrap_or(kind),
        "event_outcome": outcome,
        "actor_type": "service",
        "actor_id": "workflowexecution-controller",
        "resource_type": "WorkflowExecution",
        "resource_id": execution,
        "correlation_id": correlation_id,
        "event_data": data,
    })
}

/// A DataStorage client: every call carries `Authorization: Bearer $DATASTORAGE_TOKEN` when the
/// environment authenticates (a suite with `kube-api`), as the monorepo's clients send their
/// ServiceAccount token.
pub struct DataStorage {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl DataStorage {
    /// A client for `$DATASTORAGE_URL`, with `$DATASTORAGE_TOKEN` when it is set, trusting the
    /// CA in `$DATASTORAGE_CA_FILE` (and only it) when DataStorage serves TLS.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self::new(
            &endpoint("DATASTORAGE_URL"),
            var("DATASTORAGE_CA_FILE").as_deref(),
            var("DATASTORAGE_TOKEN"),
        )
    }

    /// A client for DataStorage at `base`, trusting only the CA in `ca_file` when it serves
    /// TLS, calling with `token` when given.
    pub fn new(base: &str, ca_file: Option<&str>, token: Option<String>) -> Self {
        ring_by_default();
        let builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
        let builder = match ca_file {
            Some(path) => builder.tls_backend_preconfigured(trusting(path)),
            None => builder,
        };
        let http = builder.build().expect("http client");
        Self { base: base.to_string(), http, token }
    }

    /// Whether the environment gave a token (DataStorage authenticates every call).
    pub fn authenticates(&self) -> bool {
        self.token.is_some()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// `GET path` without a token: the status and the body.
    pub async fn get_without_token(&self, path: &str) -> (u16, Value) {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await.expect("GET without a token");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Posts a batch; returns the status code and body.
    pub async fn write_batch(&self, events: &[Value]) -> (u16, Value) {
        let resp = self
            .request(reqwest::Method::POST, "/api/v1/audit/events/batch")
            .json(events)
            .send()
            .await
            .expect("POST audit batch");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// One page of a correlation id's events, newest first, and how many there are in all.
    /// Reads need PostgreSQL, so a 503 (another test is restarting it) is retried for up to 30 s.
    pub async fn page(&self, correlation_id: &str, limit: usize, offset: usize) -> (Vec<Value>, usize) {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let resp = self
                .request(reqwest::Method::GET, "/api/v1/audit/events")
                .query(&[("correlation_id", correlation_id)])
                .query(&[("limit", limit), ("offset", offset)])
                .send()
                .await
                .expect("GET audit events");
            let status = resp.status().as_u16();
            if status == 200 {
                let body: Value = resp.json().await.expect("query response JSON");
                let data = body["data"].as_array().expect("data is an array").clone();
                let total = body["pagination"]["total"].as_u64().expect("pagination.total") as usize;
                return (data, total);
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

    /// Every event stored for a correlation id, oldest first (the API answers newest first,
    /// at most 1000 a page).
    pub async fn events(&self, correlation_id: &str) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let (page, total) = self.page(correlation_id, 1000, all.len()).await;
            let done = page.is_empty() || all.len() + page.len() >= total;
            all.extend(page);
            if done {
                all.reverse();
                return all;
            }
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
            // Only the total until it is reached: the events themselves may be many pages.
            let (_, total) = self.page(correlation_id, 1, 0).await;
            if total >= count || started.elapsed() > deadline {
                return self.events(correlation_id).await;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// A client for plain HTTP (a DataStorage without TLS, its health port), as the tests of this
/// workspace make them: reqwest's TLS, unused here, is built on ring like every TLS of the
/// workspace, so the process's default provider must be ring before any client is built.
pub fn http_client() -> reqwest::Client {
    ring_by_default();
    reqwest::Client::new()
}

/// Makes ring the process's default TLS provider, unless one is set already.
fn ring_by_default() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A TLS client configuration that trusts the CA certificates in `path` and nothing else, as a
/// client in the monorepo's end-to-end runs trusts `inter-service-ca`.
fn trusting(path: &str) -> rustls::ClientConfig {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).unwrap_or_else(|e| panic!("DATASTORAGE_CA_FILE {path}: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.unwrap_or_else(|e| panic!("DATASTORAGE_CA_FILE {path}: not a PEM certificate: {e}"));
        roots.add(cert).unwrap_or_else(|e| panic!("DATASTORAGE_CA_FILE {path}: {e}"));
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3 with ring")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
