//! The watcher-driven Kubernetes probes and the evidence collection, against kube's mocked client.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::ListParams;
use kube::client::Body;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tower_test::mock;
use wait::kube::{KubeProbe, collect_workload};
use wait::{Detail, Probe, Status, WaitError, wait_for};

const NS: &str = "kubernaut-system";

fn fixture<K: DeserializeOwned>(file: &str, key: &str) -> K {
    let text = match file {
        "deployments" => include_str!("fixtures/deployments.yaml"),
        _ => include_str!("fixtures/pods.yaml"),
    };
    // YAML through serde-saphyr (the workspace's one YAML stack), objects through serde_json.
    let all: BTreeMap<String, serde_json::Value> = serde_saphyr::from_str(text).unwrap();
    serde_json::from_value(all[key].clone()).unwrap()
}

fn deployment(key: &str) -> Value {
    serde_json::to_value(fixture::<Deployment>("deployments", key)).unwrap()
}

fn pod(key: &str) -> Value {
    serde_json::to_value(fixture::<Pod>("pods", key)).unwrap()
}

fn list(kind: &str, items: Vec<Value>) -> String {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "100"}, "items": items})
        .to_string()
}

fn modified(mut object: Value) -> String {
    // The watcher resumes from each event's resourceVersion; without one it would list again.
    object["metadata"]["resourceVersion"] = json!("101");
    format!("{}\n", json!({"type": "MODIFIED", "object": object}))
}

/// A fake API server: list answers by path, one gated answer per watched path, logs by pod/container.
#[derive(Default)]
struct FakeApi {
    lists: HashMap<String, String>,
    watches: HashMap<String, (oneshot::Receiver<()>, String)>,
    logs: HashMap<String, String>,
    requests: Vec<String>,
}

impl FakeApi {
    /// Answers requests until the client is dropped; returns every request line it saw.
    fn serve(self, mut handle: mock::Handle<Request<Body>, Response<Body>>) -> Arc<Mutex<FakeApi>> {
        let api = Arc::new(Mutex::new(self));
        let state = api.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let mut api = state.lock().unwrap();
                api.requests.push(format!("{path}?{query}"));
                let reply = |body: String| Response::builder().body(Body::from(body.into_bytes())).unwrap();
                if query.contains("watch=true") {
                    match api.watches.remove(&path) {
                        Some((gate, events)) => {
                            tokio::spawn(async move {
                                let _ = gate.await;
                                send.send_response(reply(events));
                            });
                        }
                        // Later watches stay open without events, as a quiet API server's do.
                        None => held.push(send),
                    }
                } else if let Some(pod) = path.strip_suffix("/log") {
                    let pod = pod.rsplit('/').next().unwrap();
                    let container = query.split('&').find_map(|kv| kv.strip_prefix("container=")).unwrap();
                    let previous = query.contains("previous=true");
                    let key = format!("{pod}/{container}/{previous}");
                    let text =
                        api.logs.get(&key).cloned().unwrap_or_else(|| panic!("unexpected log read {key}"));
                    send.send_response(reply(text));
                } else if let Some(body) = api.lists.get(&path) {
                    send.send_response(reply(body.clone()));
                } else {
                    panic!("unexpected request {path}?{query}");
                }
            }
        });
        api
    }
}

fn client() -> (Client, mock::Handle<Request<Body>, Response<Body>>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// Checks until the status's reason contains `needle`, bounded so a broken watch fails the test.
async fn until_reason(probe: &mut KubeProbe, needle: &str) {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if probe.check().await.reason().is_some_and(|r| r.contains(needle)) {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(found.is_ok(), "never saw `{needle}`; last status: {}", probe.check().await);
}

#[tokio::test]
async fn a_deployment_rollout_is_followed_through_the_watch() {
    let (client, handle) = client();
    let (go, gate) = oneshot::channel();
    let mut api = FakeApi::default();
    let deployments = format!("/apis/apps/v1/namespaces/{NS}/deployments");
    let pods = format!("/api/v1/namespaces/{NS}/pods");
    api.lists
        .insert(deployments.clone(), list("DeploymentList", vec![deployment("new_generation_not_observed")]));
    api.lists.insert(pods.clone(), list("PodList", vec![pod("ready"), pod("ready"), pod("ready")]));
    api.watches.insert(deployments.clone(), (gate, modified(deployment("rolled_out"))));
    let api = api.serve(handle);

    let mut probe = KubeProbe::deployment(client, NS, "datastorage");
    assert_eq!(probe.name(), "deployment kubernaut-system/datastorage");
    until_reason(&mut probe, "waiting for the controller to observe generation 3").await;
    go.send(()).unwrap();
    wait_for(&mut probe, Duration::from_secs(10)).await.expect("rolled out after the watch event");

    let requests = api.lock().unwrap().requests.clone();
    assert!(
        requests.iter().any(|r| r.starts_with(&format!("{deployments}?"))
            && r.contains("fieldSelector=metadata.name%3Ddatastorage")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("{pods}?")) && r.contains("labelSelector=app%3Ddatastorage")),
        "{requests:?}"
    );
    assert!(requests.iter().any(|r| r.contains("watch=true")), "the probe watches: {requests:?}");
}

#[tokio::test]
async fn a_crashlooping_pod_fails_the_deployment_wait_with_a_diagnosis() {
    let (client, handle) = client();
    let (go, gate) = oneshot::channel();
    let mut api = FakeApi::default();
    let pods = format!("/api/v1/namespaces/{NS}/pods");
    api.lists.insert(
        format!("/apis/apps/v1/namespaces/{NS}/deployments"),
        list("DeploymentList", vec![deployment("first_rollout")]),
    );
    api.lists.insert(pods.clone(), list("PodList", vec![pod("ready"), pod("ready"), pod("crashloop_early")]));
    let mut crashed = pod("crashloop");
    crashed["metadata"]["name"] = json!("datastorage-7bb9c5d8f4-q8w4z");
    api.watches.insert(pods.clone(), (gate, modified(crashed)));
    api.lists.insert(format!("/api/v1/namespaces/{NS}/events"), list("EventList", vec![]));
    for name in ["datastorage-7bb9c5d8f4-x2x7q", "datastorage-7bb9c5d8f4-q8w4z"] {
        api.logs.insert(format!("{name}/datastorage/false"), format!("{name} says hello\n"));
    }
    api.logs
        .insert("datastorage-7bb9c5d8f4-q8w4z/datastorage/true".into(), "panic: no DATABASE_URL\n".into());
    let _api = api.serve(handle);

    let mut probe = KubeProbe::deployment(client, NS, "datastorage");
    until_reason(&mut probe, "2/3 pods ready; datastorage-7bb9c5d8f4-q8w4z: CrashLoopBackOff, 2 restarts")
        .await;
    go.send(()).unwrap();
    let err = wait_for(&mut probe, Duration::from_secs(10)).await.unwrap_err();
    let WaitError::Failed { reason, .. } = &err else { panic!("{err:?}") };
    assert!(reason.contains("q8w4z: container datastorage: CrashLoopBackOff, 4 restarts"), "{reason}");
    let Detail::Kubernetes(report) = &err.diagnosis().probes[0].details[0] else { panic!("{err:?}") };
    let crashed = report.pods.iter().find(|p| p.name.ends_with("q8w4z")).unwrap();
    assert_eq!(crashed.containers[0].previous_log_tail.as_deref(), Some("panic: no DATABASE_URL\n"));
}

#[tokio::test]
async fn evidence_is_collected_with_events_newest_last_and_previous_logs() {
    let (client, handle) = client();
    let mut api = FakeApi::default();
    api.lists.insert(format!("/api/v1/namespaces/{NS}/pods"), list("PodList", vec![pod("crashloop")]));
    let event = |reason: &str, message: &str, at: &str, count: i32| {
        json!({
            "metadata": {"name": format!("datastorage.{reason}"), "namespace": NS},
            "involvedObject": {"kind": "Pod", "name": "datastorage-7bb9c5d8f4-q8w4z", "namespace": NS},
            "type": if reason == "BackOff" { "Warning" } else { "Normal" },
            "reason": reason, "message": message, "count": count,
            "firstTimestamp": at, "lastTimestamp": at,
            "source": {"component": "kubelet", "host": "kind-worker"}
        })
    };
    // The API server returns events in no useful order.
    api.lists.insert(
        format!("/api/v1/namespaces/{NS}/events"),
        list(
            "EventList",
            vec![
                event("BackOff", "Back-off restarting failed container datastorage in pod datastorage-7bb9c5d8f4-q8w4z_kubernaut-system(0d9c)", "2025-05-01T12:08:45Z", 7),
                event("Scheduled", "Successfully assigned kubernaut-system/datastorage-7bb9c5d8f4-q8w4z to kind-worker", "2025-05-01T12:05:00Z", 1),
                event("Pulled", "Container image \"localhost/kubernaut-datastorage:e2e\" already present on machine", "2025-05-01T12:05:01Z", 5),
            ],
        ),
    );
    api.logs.insert("datastorage-7bb9c5d8f4-q8w4z/datastorage/false".into(), "".into());
    api.logs.insert(
        "datastorage-7bb9c5d8f4-q8w4z/datastorage/true".into(),
        "connecting to postgres\nFATAL: password authentication failed\n".into(),
    );
    let api = api.serve(handle);

    let params = ListParams::default().labels("app=datastorage");
    let report = collect_workload(&client, NS, &params, 30).await.unwrap();
    assert_eq!(report.selector, "app=datastorage");
    let pod = &report.pods[0];
    assert_eq!((pod.name.as_str(), pod.phase.as_str()), ("datastorage-7bb9c5d8f4-q8w4z", "Running"));
    assert!(pod.conditions.contains(
        &"Ready=False ContainersNotReady: containers with unready status: [datastorage]".to_string()
    ));
    let reasons: Vec<&str> = pod.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["Scheduled", "Pulled", "BackOff"], "newest last");
    let c = &pod.containers[0];
    assert_eq!(c.restart_count, 4);
    assert!(c.state.starts_with("waiting: CrashLoopBackOff: back-off 1m20s"), "{}", c.state);
    assert_eq!(c.last_state.as_deref(), Some("terminated: Error, exit code 1"));
    assert_eq!(
        c.previous_log_tail.as_deref(),
        Some("connecting to postgres\nFATAL: password authentication failed\n")
    );

    let text = report.to_string();
    assert!(text.contains("previous instance's log:\n    | connecting to postgres\n    | FATAL: password authentication failed"), "{text}");
    assert!(text.contains("event 2025-05-01T12:08:45Z Warning BackOff (x7): Back-off restarting"), "{text}");
    let requests = api.lock().unwrap().requests.clone();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/log?") && r.contains("tailLines=30") && r.contains("previous=true")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.contains(
            "fieldSelector=involvedObject.kind%3DPod%2CinvolvedObject.name%3Ddatastorage-7bb9c5d8f4-q8w4z"
        )),
        "{requests:?}"
    );
}

#[tokio::test]
async fn a_missing_object_is_waited_for_and_named() {
    let (client, handle) = client();
    let mut api = FakeApi::default();
    api.lists.insert(format!("/apis/batch/v1/namespaces/{NS}/jobs"), list("JobList", vec![]));
    let _api = api.serve(handle);
    let mut probe = KubeProbe::job(client, NS, "datastorage-migrate");
    until_reason(&mut probe, "job kubernaut-system/datastorage-migrate does not exist yet").await;
    assert!(matches!(probe.check().await, Status::NotYet(_)));
}
