//! The authenticated API against a real kube-apiserver (envtest: etcd + kube-apiserver from
//! KUBEBUILDER_ASSETS). DataStorage reviews tokens with its own identity (`data-storage-sa`,
//! bound to `data-storage-auth-middleware`); a client bound to `data-storage-client` gets in,
//! one without the binding gets 403, and every failure is the service's RFC 7807 document.
//! CI runs it under `.ci/with-cluster` (KUBEBUILDER_ASSETS, XTASK_REQUIRE_CLUSTER=1); without
//! assets it skips, loudly, unless XTASK_REQUIRE_CLUSTER=1 makes that a failure.

mod common;

use common::{Env, blocking, event};
use datastorage::rbac;
use datastorage_reference_server::Auth;
use datastorage_reference_server::auth::Reviewer;
use envtest::{Assets, ControlPlane, Options, identity};
use kube::api::Api;
use serde_json::{Value, json};

/// The namespace DataStorage runs in (`POD_NAMESPACE`).
const NAMESPACE: &str = "default";

fn assets() -> Option<Assets> {
    Assets::for_tests()
}

async fn apply<K>(client: &kube::Client, object: &K)
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    identity::apply(&Api::all(client.clone()), object).await.unwrap_or_else(|e| panic!("{e}"));
}

async fn apply_namespaced<K>(client: &kube::Client, object: &K)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api = Api::namespaced(client.clone(), object.meta().namespace.as_deref().unwrap());
    identity::apply(&api, object).await.unwrap_or_else(|e| panic!("{e}"));
}

/// A control plane with DataStorage's identity and two clients: `tester` (bound) and
/// `stranger` (not), with their tokens, and DataStorage's own reviewer.
struct Cluster {
    plane: ControlPlane,
    reviewer: Reviewer,
    tester: String,
    stranger: String,
    _dir: tempfile::TempDir,
}

async fn cluster(assets: &Assets) -> Cluster {
    let plane = ControlPlane::start(assets, Options::default()).await.expect("the control plane starts");
    let admin = plane.client().await.unwrap();
    let id = rbac::identity(NAMESPACE);
    apply_namespaced(&admin, &id.service_account).await;
    apply(&admin, &id.auth_role).await;
    apply(&admin, &id.auth_binding).await;
    apply(&admin, &id.client_role).await;
    let (sa, binding) = rbac::client(NAMESPACE, "tester");
    apply_namespaced(&admin, &sa).await;
    apply_namespaced(&admin, &binding).await;
    identity::service_account(&admin, NAMESPACE, "stranger").await.unwrap();

    // DataStorage calls the API server as itself, as it would in a pod.
    let dir = tempfile::tempdir().unwrap();
    let token = identity::token(&admin, NAMESPACE, rbac::SERVICE_ACCOUNT, 3600).await.unwrap();
    let token_file = dir.path().join("token");
    procs::write_file(&token_file, token.as_bytes(), 0o600).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let text = envtest::kubeconfig::render(
        "envtest",
        &plane.url(),
        &plane.ca(),
        rbac::SERVICE_ACCOUNT,
        &envtest::kubeconfig::Auth::TokenFile(token_file),
    );
    std::fs::write(&kubeconfig, text).unwrap();
    let client = envtest::kubeconfig::client(&kubeconfig).await.unwrap();
    let reviewer = Reviewer::new(client, NAMESPACE);
    Cluster {
        tester: identity::token(&admin, NAMESPACE, "tester", 600).await.unwrap(),
        stranger: identity::token(&admin, NAMESPACE, "stranger", 600).await.unwrap(),
        plane,
        reviewer,
        _dir: dir,
    }
}

/// A request to the API with an `Authorization` header as given (none for `None`).
async fn send(
    env: &Env,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> (u16, String, Value) {
    let mut req = env.http.request(method.parse().unwrap(), env.url(path));
    if let Some(value) = authorization {
        req = req.header("Authorization", value);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type =
        r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = r.text().await.unwrap();
    (status, content_type, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn problem(status: u16, title: &str, detail: &str) -> Value {
    json!({"type": "about:blank", "title": title, "status": status, "detail": detail})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_bound_clients_token_gets_in_and_every_refusal_is_a_problem_document() {
    let Some(assets) = assets() else { return };
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    let mut c = cluster(&assets).await;
    env.serve_with(Auth::Reviews(c.reviewer.clone())).await;
    let events = "/api/v1/audit/events";
    let one = event("auth-1", "workflow.started", "success");

    let refusals = [
        (None, 401, "Unauthorized", "Missing Authorization header"),
        (Some("Basic dXNlcjpwdw==".to_string()), 401, "Unauthorized", "Invalid Authorization header format"),
        (Some(format!("bearer {}", c.tester)), 401, "Unauthorized", "Invalid Authorization header format"),
        // HTTP trims the value: `Bearer ` arrives as `Bearer`, as at the service.
        (Some("Bearer ".to_string()), 401, "Unauthorized", "Invalid Authorization header format"),
        (
            Some("Bearer not-a-token-anyone-issued".to_string()),
            401,
            "Unauthorized",
            "Invalid or expired token",
        ),
        (Some(format!("Bearer {}", c.stranger)), 403, "Forbidden", "Insufficient permissions"),
    ];
    for (header, status, title, detail) in refusals {
        let (got, content_type, body) =
            send(&env, "POST", events, header.as_deref(), Some(one.clone())).await;
        assert_eq!((got, &body), (status, &problem(status, title, detail)), "{header:?}");
        assert_eq!(content_type, "application/problem+json", "{header:?}");
    }

    let bearer = format!("Bearer {}", c.tester);
    let (status, _, body) = send(&env, "POST", events, Some(&bearer), Some(one)).await;
    assert_eq!(status, 201, "the bound client writes: {body}");
    let (status, _, body) =
        send(&env, "GET", "/api/v1/audit/events?correlation_id=auth-1", Some(&bearer), None).await;
    assert_eq!((status, body["pagination"]["total"].as_i64()), (200, Some(1)), "{body}");
    // A client cannot pass itself off as someone else.
    let (status, _, _) = env
        .http
        .get(env.url("/api/v1/audit/events"))
        .header("Authorization", format!("Bearer {}", c.stranger))
        .header("Impersonate-User", "system:serviceaccount:default:tester")
        .header("X-Auth-Request-User", "system:serviceaccount:default:tester")
        .send()
        .await
        .map(|r| (r.status().as_u16(), (), ()))
        .unwrap();
    assert_eq!(status, 403, "impersonation headers are dropped, not honoured");

    // Readiness on the API port stays open, as probes send no token.
    let (status, _, body) = send(&env, "GET", "/readyz", None, None).await;
    assert_eq!(status, 200, "{body}");

    // An operation of the contract the reference server does not implement: authenticated
    // first, then 501 naming it.
    let (status, _, _) = send(&env, "GET", "/api/v1/audit/legal-hold", None, None).await;
    assert_eq!(status, 401);
    let (status, content_type, body) =
        send(&env, "GET", "/api/v1/audit/legal-hold", Some(&bearer), None).await;
    assert_eq!(status, 501, "{body}");
    assert_eq!(content_type, "application/problem+json");
    assert!(body["detail"].as_str().unwrap().contains("listLegalHolds"), "{body}");

    // The review API gone: 500, the cause in the log only.
    c.plane.stop().unwrap();
    let (status, _, body) =
        send(&env, "POST", events, Some(&bearer), Some(event("auth-2", "workflow.started", "success"))).await;
    assert_eq!(body, problem(500, "Internal Server Error", "Authentication service unavailable"));
    assert_eq!(status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_allowed_to_read_but_not_write_is_refused_the_write() {
    let Some(assets) = assets() else { return };
    let mut env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    let c = cluster(&assets).await;
    let admin = c.plane.client().await.unwrap();
    // A role with `get` alone on the Service: reads pass, writes need `create` too.
    let mut role = rbac::identity(NAMESPACE).client_role;
    role.metadata.name = Some("data-storage-reader".into());
    role.rules.as_mut().unwrap()[0].verbs = vec!["get".into()];
    apply(&admin, &role).await;
    let (sa, mut binding) = rbac::client(NAMESPACE, "reader");
    binding.role_ref.name = "data-storage-reader".into();
    apply_namespaced(&admin, &sa).await;
    apply_namespaced(&admin, &binding).await;
    let token = identity::token(&admin, NAMESPACE, "reader", 600).await.unwrap();
    env.serve_with(Auth::Reviews(c.reviewer.clone())).await;
    let bearer = format!("Bearer {token}");
    let (status, _, body) = send(&env, "GET", "/api/v1/audit/events", Some(&bearer), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = send(
        &env,
        "POST",
        "/api/v1/audit/events",
        Some(&bearer),
        Some(event("r-1", "workflow.started", "success")),
    )
    .await;
    assert_eq!(body, problem(403, "Forbidden", "Insufficient permissions"));
    assert_eq!(status, 403);
}
