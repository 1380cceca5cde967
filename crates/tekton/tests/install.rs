//! The apply and wait loops against kube's mocked client, on tokio's paused clock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tekton::{Error, Event, Installer, Release, Source, Step, Timing, probe_task};
use tokio::time::Instant;
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// One request as the fake API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

impl Seen {
    fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn client() -> (Client, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// Answers every request with `answer(request)` and logs it; unknown requests should get 404.
fn serve(mut handle: Handle, mut answer: impl FnMut(&Seen) -> (u16, Value) + Send + 'static) -> Log {
    let log: Log = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let request = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (code, reply) = answer(&request);
            seen.lock().unwrap().push(request);
            let response =
                Response::builder().status(code).body(Body::from(serde_json::to_vec(&reply).unwrap()));
            send.send_response(response.unwrap());
        }
    });
    log
}

fn api_status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    });
    (code, status)
}

fn not_found(request: &Seen) -> (u16, Value) {
    api_status(404, "NotFound", &format!("{} not found", request.path))
}

const WEBHOOK_REFUSED: &str = "Internal error occurred: failed calling webhook \"webhook.pipeline.tekton.dev\": \
    failed to call webhook: Post \"https://tekton-pipelines-webhook.tekton-pipelines.svc:443/defaulting?timeout=10s\": \
    dial tcp 10.96.183.12:443: connect: connection refused";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn status_fixture(file: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join("k8s-status").join(file)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn release() -> Release {
    Release::load(&Source::File(fixtures().join("tekton/release-v1.x.yaml"))).unwrap()
}

fn crd(name: &str, established: bool) -> Value {
    let mut crd = status_fixture("crd-established.yaml");
    crd["metadata"]["name"] = json!(name);
    if !established {
        crd["status"]["conditions"][1] = json!({
            "type": "Established", "status": "False", "reason": "Installing",
            "message": "the initial names have been accepted"
        });
    }
    crd
}

/// A webhook configuration as the running Tekton webhook leaves it: with rules.
fn reconciled_webhook(name: &str) -> Value {
    json!({"metadata": {"name": name}, "webhooks": [{
        "name": name,
        "clientConfig": {"service": {"name": "tekton-pipelines-webhook", "namespace": "tekton-pipelines"}},
        "rules": [{"apiGroups": ["tekton.dev"], "apiVersions": ["*"], "operations": ["CREATE"], "resources": ["*/*"]}]
    }]})
}

/// The fake API server of an installed Tekton: deployments available, webhooks reconciled.
fn tekton_parts(request: &Seen) -> Option<(u16, Value)> {
    let deployments = "/apis/apps/v1/namespaces/tekton-pipelines/deployments/";
    let hooks = "/apis/admissionregistration.k8s.io/v1/";
    if request.method == "GET" && request.path.starts_with(deployments) {
        return Some((200, status_fixture("deployment-available.yaml")));
    }
    if request.method == "GET" && request.path.starts_with(hooks) {
        let name = request.path.rsplit('/').next().unwrap();
        return Some((200, reconciled_webhook(name)));
    }
    None
}

const DRY_RUN_PATH: &str = "/apis/tekton.dev/v1/namespaces/default/tasks";

fn recorder() -> (Arc<Mutex<Vec<Event>>>, impl FnMut(&Event) + Send + 'static) {
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = events.clone();
    (events, move |e: &Event| sink.lock().unwrap().push(e.clone()))
}

/// The path kube must use for an object, from plurals written out here rather than guessed.
fn expected_path(object: &kube::core::DynamicObject) -> String {
    let types = object.types.as_ref().unwrap();
    let plural = match types.kind.as_str() {
        "Namespace" => "namespaces",
        "CustomResourceDefinition" => "customresourcedefinitions",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "ServiceAccount" => "serviceaccounts",
        "Secret" => "secrets",
        "ConfigMap" => "configmaps",
        "Deployment" => "deployments",
        "Service" => "services",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        "ValidatingWebhookConfiguration" => "validatingwebhookconfigurations",
        "MutatingWebhookConfiguration" => "mutatingwebhookconfigurations",
        other => panic!("no plural written down for {other}"),
    };
    let root = if types.api_version.contains('/') { "/apis" } else { "/api" };
    let ns = object.metadata.namespace.as_ref().map(|ns| format!("/namespaces/{ns}")).unwrap_or_default();
    format!("{root}/{}{ns}/{plural}/{}", types.api_version, object.metadata.name.as_ref().unwrap())
}

#[tokio::test(start_paused = true)]
async fn install_server_side_applies_every_object_in_plan_order_then_waits() {
    let release = release();
    let (client, handle) = client();
    let log = serve(handle, |r| {
        if let Some(answer) = tekton_parts(r) {
            return answer;
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("PATCH", _) => (200, r.body.clone()),
            ("GET", path) if path.starts_with("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/") => {
                (200, crd(path.rsplit('/').next().unwrap(), true))
            }
            ("POST", DRY_RUN_PATH) => (201, r.body.clone()),
            _ => not_found(r),
        }
    });
    let (events, sink) = recorder();
    Installer::new(client).on_event(sink).install(&release).await.unwrap();

    let seen = log.lock().unwrap().clone();
    let patches: Vec<&Seen> = seen.iter().filter(|r| r.method == "PATCH").collect();
    let applies: Vec<_> = release
        .plan()
        .steps()
        .iter()
        .filter_map(|s| match s {
            Step::Apply(o) => Some(o.clone()),
            Step::WaitEstablished(_) => None,
        })
        .collect();
    assert_eq!(patches.len(), 76);
    for (patch, object) in patches.iter().zip(&applies) {
        assert_eq!(patch.path, expected_path(object));
        let query: Vec<&str> = patch.query.split('&').collect();
        assert!(query.contains(&"fieldManager=xtask") && query.contains(&"force=true"), "{}", patch.query);
        assert_eq!(patch.content_type, "application/apply-patch+yaml");
        // What is sent is the manifest's object with every port's protocol written out.
        assert_eq!(patch.body, serde_json::to_value(tekton::with_protocols(object)).unwrap());
    }

    // The 8 CRD reads sit between the last CRD apply and the first apply of anything else.
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    let crd_gets: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions/"))
        .collect();
    assert_eq!(crd_gets.len(), 8, "{lines:#?}");
    assert_eq!(
        lines[crd_gets[0] - 1],
        "PATCH /apis/apiextensions.k8s.io/v1/customresourcedefinitions/verificationpolicies.tekton.dev"
    );
    assert!(
        lines[crd_gets[7] + 1].starts_with("PATCH /apis/rbac.authorization.k8s.io/v1/clusterroles/"),
        "{lines:#?}"
    );
    // Readiness is checked only after the last apply, and ends with the dry-run create.
    let last_patch = lines.iter().rposition(|l| l.starts_with("PATCH")).unwrap();
    assert_eq!(lines[last_patch + 1..].last().unwrap(), &format!("POST {DRY_RUN_PATH}"));

    let events = events.lock().unwrap();
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Applied { .. })).count(), 76);
    assert_eq!(events.last(), Some(&Event::Ready { what: "tekton".into() }));
}

#[tokio::test(start_paused = true)]
async fn a_refused_apply_stops_the_install_naming_the_object() {
    let (client, handle) = client();
    let log = serve(handle, |r| match r.method.as_str() {
        "PATCH" if r.path.ends_with("/namespaces/tekton-pipelines-resolvers") => {
            api_status(403, "Forbidden", "namespaces is forbidden")
        }
        "PATCH" => (200, r.body.clone()),
        _ => not_found(r),
    });
    let error = Installer::new(client).install(&release()).await.unwrap_err();
    assert!(
        matches!(&error, Error::Apply { object, .. } if object == "Namespace/tekton-pipelines-resolvers"),
        "{error}"
    );
    assert_eq!(log.lock().unwrap().len(), 2, "nothing may be sent after the refused apply");
}

fn crd_timing() -> Timing {
    Timing { crd_timeout: Duration::from_secs(30), poll: Duration::from_secs(1), ..Timing::default() }
}

#[tokio::test(start_paused = true)]
async fn a_crd_never_established_fails_naming_it_and_its_last_condition() {
    let (client, handle) = client();
    let log = serve(handle, |r| match r.path.rsplit('/').next().unwrap() {
        "pipelines.tekton.dev" => (200, crd("pipelines.tekton.dev", true)),
        "tasks.tekton.dev" => (200, crd("tasks.tekton.dev", false)),
        _ => not_found(r),
    });
    let (events, sink) = recorder();
    let started = Instant::now();
    let error = Installer::new(client)
        .timing(crd_timing())
        .on_event(sink)
        .wait_established(&["tasks.tekton.dev".into(), "pipelines.tekton.dev".into()])
        .await
        .unwrap_err();
    let message = error.to_string();
    let Error::CrdNotEstablished { crd, last, waited } = error else { panic!("{message}") };
    assert_eq!(crd, "tasks.tekton.dev");
    assert_eq!(last, "Established=False (Installing): the initial names have been accepted");
    assert!(waited >= Duration::from_secs(30) && started.elapsed() < Duration::from_secs(32), "{waited:?}");
    assert!(message.contains("tasks.tekton.dev") && message.contains("Established=False (Installing)"));

    let lines: Vec<String> = log.lock().unwrap().iter().map(Seen::line).collect();
    let gets = |name: &str| lines.iter().filter(|l| l.ends_with(name)).count();
    assert!(gets("/tasks.tekton.dev") >= 30, "polled once a second: {}", gets("/tasks.tekton.dev"));
    assert_eq!(gets("/pipelines.tekton.dev"), 1, "an Established CRD is not read again");
    let waits = events.lock().unwrap().iter().filter(|e| matches!(e, Event::Waiting { .. })).count();
    assert_eq!(waits, 1, "an unchanged reason is reported once");
}

#[tokio::test(start_paused = true)]
async fn a_crd_that_becomes_established_later_ends_the_wait() {
    let (client, handle) = client();
    let mut reads = 0;
    serve(handle, move |_| {
        reads += 1;
        (200, crd("tasks.tekton.dev", reads >= 3))
    });
    let (events, sink) = recorder();
    Installer::new(client)
        .timing(crd_timing())
        .on_event(sink)
        .wait_established(&["tasks.tekton.dev".into()])
        .await
        .unwrap();
    let events = events.lock().unwrap();
    assert!(
        matches!(&events[0], Event::Waiting { what, .. } if what == "CRD tasks.tekton.dev"),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&Event::Ready { what: "CRD tasks.tekton.dev".into() }));
}

fn ready_timing() -> Timing {
    Timing { ready_timeout: Duration::from_secs(60), poll: Duration::from_secs(1), ..Timing::default() }
}

#[tokio::test(start_paused = true)]
async fn the_webhook_refusing_connections_is_waited_out_until_the_dry_run_succeeds() {
    let (client, handle) = client();
    let mut dry_runs = 0;
    let log = serve(handle, move |r| {
        if let Some(answer) = tekton_parts(r) {
            return answer;
        }
        if r.method == "POST" && r.path == DRY_RUN_PATH {
            dry_runs += 1;
            return if dry_runs == 1 {
                api_status(500, "InternalError", WEBHOOK_REFUSED)
            } else {
                (201, r.body.clone())
            };
        }
        not_found(r)
    });
    let (events, sink) = recorder();
    Installer::new(client).timing(ready_timing()).on_event(sink).wait_ready().await.unwrap();

    let events = events.lock().unwrap();
    let waiting: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::Waiting { .. })).collect();
    let [Event::Waiting { what, reason }] = waiting[..] else { panic!("{events:?}") };
    assert_eq!(what, "admission webhook");
    assert!(reason.contains(WEBHOOK_REFUSED), "{reason}");
    assert_eq!(events.last(), Some(&Event::Ready { what: "tekton".into() }));

    let posts: Vec<Seen> = log.lock().unwrap().iter().filter(|r| r.method == "POST").cloned().collect();
    assert_eq!(posts.len(), 2);
    for post in posts {
        let query: Vec<&str> = post.query.split('&').collect();
        assert!(query.contains(&"dryRun=All") && query.contains(&"fieldManager=xtask"), "{}", post.query);
        assert_eq!(post.body, serde_json::to_value(probe_task("default")).unwrap());
    }
}

#[tokio::test(start_paused = true)]
async fn a_webhook_that_never_answers_times_out_with_its_reason() {
    let (client, handle) = client();
    serve(handle, |r| match tekton_parts(r) {
        Some(answer) => answer,
        None if r.method == "POST" => api_status(500, "InternalError", WEBHOOK_REFUSED),
        None => not_found(r),
    });
    let error = Installer::new(client).timing(ready_timing()).wait_ready().await.unwrap_err();
    let Error::NotReady { waited, pending } = &error else { panic!("{error}") };
    assert!(*waited >= Duration::from_secs(60), "{waited:?}");
    assert!(
        pending.starts_with(
            "admission webhook: 500 InternalError: Internal error occurred: failed calling webhook"
        ),
        "{pending}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_dry_run_is_not_trusted_before_the_webhook_has_added_its_rules() {
    let (client, handle) = client();
    let log = serve(handle, |r| {
        if r.path.starts_with("/apis/admissionregistration.k8s.io/") {
            // As released: the webhook has not reconciled its configuration yet.
            return (
                200,
                json!({"metadata": {"name": "webhook.pipeline.tekton.dev"},
                                "webhooks": [{"name": "webhook.pipeline.tekton.dev"}]}),
            );
        }
        tekton_parts(r)
            .unwrap_or_else(|| if r.method == "POST" { (201, r.body.clone()) } else { not_found(r) })
    });
    let error = Installer::new(client).timing(ready_timing()).wait_ready().await.unwrap_err();
    let Error::NotReady { pending, .. } = &error else { panic!("{error}") };
    assert!(pending.contains("no rules yet"), "{pending}");
    assert!(
        log.lock().unwrap().iter().all(|r| r.method != "POST"),
        "a dry-run that skips the webhook proves nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_webhook_deployment_past_its_progress_deadline_fails_at_once() {
    let (client, handle) = client();
    let log = serve(handle, |r| match r.path.rsplit('/').next().unwrap() {
        "tekton-pipelines-controller" => (200, status_fixture("deployment-available.yaml")),
        "tekton-pipelines-webhook" => (200, status_fixture("deployment-progress-deadline-exceeded.yaml")),
        _ => not_found(r),
    });
    let started = Instant::now();
    let error = Installer::new(client).timing(ready_timing()).wait_ready().await.unwrap_err();
    let Error::Failed { what, reason } = &error else { panic!("{error}") };
    assert_eq!(what, "deployment tekton-pipelines/tekton-pipelines-webhook");
    assert!(reason.contains("ProgressDeadlineExceeded"), "{reason}");
    assert_eq!(started.elapsed(), Duration::ZERO, "a terminal state must not wait for the deadline");
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_silent_api_server_does_not_hang_the_wait() {
    let (client, mut handle) = client();
    // Keep every request unanswered, as a hung API server would.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, send)) = handle.next_request().await {
            held.push(send);
        }
    });
    let started = Instant::now();
    let timing = Timing { request_timeout: Duration::from_secs(5), ..crd_timing() };
    let error = Installer::new(client)
        .timing(timing)
        .wait_established(&["tasks.tekton.dev".into()])
        .await
        .unwrap_err();
    let Error::CrdNotEstablished { last, .. } = &error else { panic!("{error}") };
    assert_eq!(last, "no answer from the API server");
    assert!(started.elapsed() <= Duration::from_secs(36), "{:?}", started.elapsed());
}
