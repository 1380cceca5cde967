//! The kind and cluster backends' pure parts on the real files: the suite's kind config, the
//! controller's manifests as they will be applied, the plan's DAG and expected critical path,
//! and server-side apply of the typed objects against kube's mocked client.

use std::path::Path;

use infra::backend::kube::{KubeOptions, apply_object, controller_objects, kind_config, namespace_name};
use infra::kubernetes::service_objects;
use infra::session::{self, UpOptions};
use infra::{Registry, Runs};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn suite(name: &str) -> infra::Suite {
    infra::suite::load(&infra::suite::path(root(), name), &Registry::builtin()).unwrap()
}

#[test]
fn the_suites_kind_config_pins_the_node_image_kind_pins() {
    let path = kind_config(root(), "workflowexecution");
    let config = kind::parse_cluster_config(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(config.images(), [kind::NODE_IMAGE], "{}: one node, the pinned image", path.display());
    assert!(kind::NODE_IMAGE.contains("@sha256:"), "pinned by digest");
    assert!(config.host_ports().is_empty(), "no fixed host ports: services are port-forwarded");
}

#[test]
fn namespaces_are_dns_labels() {
    assert_eq!(
        namespace_name("workflowexecution-20261123-101500-a1b2"),
        "xtask-workflowexecution-20261123-101500-a1b2"
    );
    let long = namespace_name(&format!("{}_X", "a".repeat(80)));
    assert!(long.len() <= 63 && long.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{long}");
}

#[test]
fn controller_manifests_land_in_the_run_namespace_with_the_built_image() {
    let spec = suite("workflowexecution").controller.unwrap();
    let objects =
        controller_objects(root(), &spec, "xtask-run", "localhost/xtask/controller-standin:abc").unwrap();
    let refs: Vec<String> = objects.iter().map(tekton::object_ref).collect();
    assert_eq!(
        refs,
        [
            "CustomResourceDefinition/workflowexecutions.kubernaut.ai",
            "ServiceAccount/xtask-run/workflowexecution-controller",
            "Deployment/xtask-run/workflowexecution-controller",
        ]
    );
    let deployment = &objects[2];
    let container = &deployment.data["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "manager");
    assert_eq!(container["image"], "localhost/xtask/controller-standin:abc");
    assert_eq!(container["imagePullPolicy"], "IfNotPresent", "a loaded image is never pulled");
    // Ordered like a release: the CRD, its wait, then the rest.
    let (api, rest) = tekton::Plan::unpinned(&objects).split_api();
    assert_eq!(
        api.lines(),
        ["CustomResourceDefinition/workflowexecutions.kubernaut.ai", "wait for 1 CRDs Established"]
    );
    assert_eq!(rest.steps().len(), 2);
}

#[test]
fn a_controller_spec_that_misses_its_deployment_or_container_names_it() {
    let mut spec = suite("workflowexecution").controller.unwrap();
    spec.container = "main".into();
    let e = controller_objects(root(), &spec, "ns", "i").unwrap_err().to_string();
    assert_eq!(e, "controller.container: Deployment/workflowexecution-controller has no container `main`");
    spec.deployment = "other".into();
    let e = controller_objects(root(), &spec, "ns", "i").unwrap_err().to_string();
    assert!(e.starts_with("controller.deployment: no Deployment `other` in manifests/controller/"), "{e}");
    spec.manifests = vec!["manifests/controller/missing.yaml".into()];
    let e = controller_objects(root(), &spec, "ns", "i").unwrap_err().to_string();
    assert!(e.contains("missing.yaml") && e.starts_with("controller.manifests: "), "{e}");
}

fn dry_run(backend: &str, reuse: bool) -> session::DryRun {
    let runs = Runs::new(&std::env::temp_dir().join("xtask-kube-backend-test"));
    let options = UpOptions {
        backend: backend.into(),
        kube: KubeOptions { reuse, ..Default::default() },
        ..Default::default()
    };
    session::dry_run(root(), &runs, suite("workflowexecution"), &Registry::builtin(), &options).unwrap()
}

#[test]
fn the_kind_plan_puts_tekton_and_the_image_builds_off_the_critical_path() {
    let dry = dry_run("kind", false);
    let needs = |id: &str| dry.plan.step(id).unwrap().needs.clone();
    assert_eq!(needs("setup"), Vec::<String>::new());
    assert_eq!(needs("build-datastorage"), Vec::<String>::new(), "builds start at once, beside the cluster");
    assert_eq!(needs("load-datastorage"), ["setup", "build-datastorage"]);
    assert_eq!(needs("postgres"), ["setup"]);
    assert_eq!(needs("migrations"), ["postgres"]);
    assert_eq!(
        needs("datastorage"),
        ["setup", "load-datastorage", "postgres", "redis", "migrations", "kube-api"]
    );
    assert_eq!(
        needs("kube-api"),
        ["setup"],
        "the cluster is the API: its identities go on once the namespace is there"
    );
    assert_eq!(needs("tekton-api"), ["setup"]);
    assert_eq!(needs("tekton"), ["tekton-api"]);
    // The controller needs Tekton's API (its CRDs), not its webhook: that stays off the path.
    assert_eq!(needs("controller-api"), ["setup", "load-controller", "datastorage", "tekton-api"]);
    assert_eq!(needs("controller"), ["controller-api"]);
    assert_eq!(
        dry.critical_path,
        ["setup", "postgres", "migrations", "datastorage", "controller-api", "controller", "suite"]
    );
    let warm = dry_run("kind", true);
    assert_eq!(warm.critical_path, dry.critical_path);
    assert!(
        warm.critical_path_secs < 30 && dry.critical_path_secs < 180,
        "{} s warm, {} s cold",
        warm.critical_path_secs,
        dry.critical_path_secs
    );
}

#[test]
fn local_and_podman_plans_skip_what_needs_a_cluster() {
    // kube-api runs everywhere: envtest's processes locally, their images on podman.
    for (backend, skips) in [("local", &["tekton", "controller"][..]), ("podman", &["tekton", "controller"])]
    {
        let dry = dry_run(backend, false);
        let skipped: Vec<&str> = dry.plan.skipped.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(skipped, skips, "{backend}");
        assert!(dry.plan.steps.iter().all(|s| !s.id.contains("tekton") && !s.id.contains("controller")));
        assert!(dry.critical_path.is_empty(), "{backend} publishes no estimates");
    }
}

#[tokio::test]
async fn objects_are_server_side_applied_as_xtask_with_force() {
    use http::{Request, Response};
    use kube::client::Body;
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let seen = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let body: serde_json::Value =
                serde_json::from_slice(&body.collect_bytes().await.unwrap()).unwrap();
            let content_type = parts.headers[http::header::CONTENT_TYPE].to_str().unwrap().to_string();
            seen.push((parts.method.to_string(), parts.uri.to_string(), content_type, body.clone()));
            send.send_response(
                Response::builder().body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap(),
            );
        }
        seen
    });
    let plan = infra::Plan::new(
        &infra::run::Run::new(
            root(),
            suite("workflowexecution"),
            Registry::builtin(),
            Default::default(),
            infra::RunState { id: "we-1".into(), ..Default::default() },
        ),
        &*infra::backend::for_name("kind").unwrap(),
    )
    .unwrap();
    let objects =
        service_objects("xtask-we-1", "we-1", "postgres", &plan.services["postgres"], "postgres:16").unwrap();
    for o in &objects {
        apply_object(&client, o).await.unwrap();
    }
    drop(client);
    let seen = seen.await.unwrap();
    let lines: Vec<String> = seen.iter().map(|(m, uri, _, _)| format!("{m} {uri}")).collect();
    assert_eq!(
        lines,
        [
            "PATCH /api/v1/namespaces/xtask-we-1/secrets/postgres-secrets?&force=true&fieldManager=xtask",
            "PATCH /apis/apps/v1/namespaces/xtask-we-1/deployments/postgres?&force=true&fieldManager=xtask",
            "PATCH /api/v1/namespaces/xtask-we-1/services/postgres?&force=true&fieldManager=xtask",
        ]
    );
    assert!(seen.iter().all(|(_, _, ct, _)| ct == "application/apply-patch+yaml"));
    assert_eq!(seen[1].3["kind"], "Deployment", "typed objects carry apiVersion and kind");
    assert_eq!(seen[1].3["apiVersion"], "apps/v1");
}

/// `--dry-run --render DIR` on kind: one file per object, in apply order, the Tekton release
/// included when it is on the machine, secret values redacted, and every file accepted by
/// Kubernetes' own schema (v1.33, strict), checked with `kubernetes-validate`.
#[test]
fn render_writes_every_object_kubernetes_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Runs::new(dir.path());
    let release = root().join("fixtures/tekton/release-v1.x.yaml");
    let options = UpOptions {
        backend: "kind".into(),
        kube: KubeOptions { tekton_release: Some(release), ..Default::default() },
        ..Default::default()
    };
    let out = dir.path().join("render");
    let rendered =
        session::render(root(), &runs, suite("workflowexecution"), &Registry::builtin(), &options, &out)
            .unwrap();
    assert!(rendered.skipped.is_empty(), "{:?}", rendered.skipped);
    let names: Vec<String> =
        rendered.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names.len(),
        25 + 76,
        "the run's 25 objects (8 of them identities, 3 its signing and TLS pairs and CA) and the release's 76"
    );
    assert_eq!(names[0], "01-namespace-xtask-workflowexecution-dry-run.yaml");
    assert!(
        names.iter().any(|n| n.ends_with("-deployment-tekton-pipelines-tekton-pipelines-webhook.yaml")),
        "{names:?}"
    );
    for path in &rendered.files {
        let text = std::fs::read_to_string(path).unwrap();
        if text.contains("kind: Secret") && text.contains("xtask") {
            assert!(!text.contains("\ndata:"), "{}: secret data must be redacted:\n{text}", path.display());
            assert!(text.contains("<redacted>"), "{}", path.display());
        }
    }
    #[allow(clippy::disallowed_methods)]
    let check = std::process::Command::new("kubernetes-validate")
        .args(["-k", "1.33.0", "--strict", "--quiet"])
        .args(&rendered.files)
        .output()
        .unwrap_or_else(|e| panic!("kubernetes-validate: {e}; install it with .ci/install-deps"));
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn render_is_refused_on_backends_without_kubernetes() {
    let dir = tempfile::tempdir().unwrap();
    let options = UpOptions { backend: "podman".into(), ..Default::default() };
    let e = session::render(
        root(),
        &Runs::new(dir.path()),
        suite("workflowexecution"),
        &Registry::builtin(),
        &options,
        dir.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--render writes Kubernetes objects: use it with --backend kind or cluster"), "{e}");
}

fn pod(name: &str, phase: &str, ready: bool, restarts: i32, data: bool) -> k8s_openapi::api::core::v1::Pod {
    let volumes =
        if data { serde_json::json!([{"name": "data", "emptyDir": {}}]) } else { serde_json::json!([]) };
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "creationTimestamp": "2026-11-23T10:00:00Z"},
        "spec": {"containers": [{"name": "postgres", "image": "postgres:16"}], "volumes": volumes},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{"name": "postgres", "image": "postgres:16", "imageID": "", "ready": ready,
                                   "restartCount": restarts, "state": {"running": {}}}]
        }
    }))
    .unwrap()
}

fn fixture_pod(name: &str) -> k8s_openapi::api::core::v1::Pod {
    let path = root().join("fixtures/k8s-status").join(name);
    serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn a_service_with_data_restarts_in_its_pod_and_one_without_is_replaced() {
    use infra::backend::kube::{Restart, restart_plan};
    let terminating = {
        let mut p = pod("postgres-old", "Running", true, 0, true);
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-11-23T10:01:00Z".parse().unwrap(),
        ));
        p
    };
    let pods = [terminating, pod("postgres-a", "Running", true, 2, true)];
    assert_eq!(
        restart_plan(&pods, "postgres").unwrap(),
        Restart::InPlace { pod: "postgres-a".into(), container: "postgres".into(), restarts: 2 }
    );
    assert_eq!(
        restart_plan(&[pod("ds-a", "Running", true, 0, false)], "datastorage").unwrap(),
        Restart::Replace { pod: "ds-a".into() }
    );
    let err = restart_plan(&[pod("postgres-b", "Pending", false, 0, true)], "postgres").unwrap_err();
    assert!(err.starts_with("no running pod of postgres (pods: postgres-b"), "{err}");
    assert_eq!(restart_plan(&[], "redis").unwrap_err(), "no running pod of redis");
}

#[test]
fn a_restart_is_over_when_the_restarted_container_is_ready_and_fails_fast_on_a_crash_loop() {
    use infra::backend::kube::{Restart, restart_status};
    use wait::Status;
    let now = "2026-11-23T10:05:00Z".parse().unwrap();
    let in_place = Restart::InPlace { pod: "postgres-a".into(), container: "postgres".into(), restarts: 0 };
    // Still the old container (the exec's signal not yet acted on): not over, whatever Ready says.
    let before = restart_status(&[pod("postgres-a", "Running", true, 0, true)], &in_place, now);
    assert!(
        matches!(before, Status::NotYet(ref r) if r.contains("waiting for postgres to stop")),
        "{before:?}"
    );
    let starting = restart_status(&[pod("postgres-a", "Running", false, 1, true)], &in_place, now);
    assert!(matches!(starting, Status::NotYet(_)), "{starting:?}");
    assert_eq!(restart_status(&[pod("postgres-a", "Running", true, 1, true)], &in_place, now), Status::Ready);
    let gone = restart_status(&[pod("postgres-z", "Running", true, 0, true)], &in_place, now);
    assert!(matches!(gone, Status::Failed(ref r) if r.contains("pod postgres-a disappeared")), "{gone:?}");
    // The real CrashLoopBackOff status: the restarted container will not come back.
    let looping = fixture_pod("pod-crashloopbackoff.yaml");
    let how = Restart::InPlace { pod: "my-pod".into(), container: "main".into(), restarts: 0 };
    let failed = restart_status(&[looping], &how, now);
    assert!(
        matches!(failed, Status::Failed(ref r) if r.contains("my-pod: container main: CrashLoopBackOff")),
        "{failed:?}"
    );

    let replace = Restart::Replace { pod: "ds-a".into() };
    let waiting = restart_status(&[pod("ds-a", "Running", true, 0, false)], &replace, now);
    assert!(matches!(waiting, Status::NotYet(ref r) if r.contains("to replace ds-a")), "{waiting:?}");
    let new = [pod("ds-a", "Running", true, 0, false), pod("ds-b", "Running", true, 0, false)];
    assert_eq!(restart_status(&new, &replace, now), Status::Ready);
    let image = fixture_pod("pod-imagepullbackoff.yaml");
    let failed = restart_status(&[pod("ds-a", "Running", true, 0, false), image], &replace, now);
    assert!(matches!(failed, Status::Failed(ref r) if r.contains("ImagePullBackOff")), "{failed:?}");
}

/// A stateless service is restarted by deleting its pod: the requests, in order, against the
/// mocked API server, and the wait ends once the Deployment's new pod is Ready.
#[tokio::test]
async fn a_replaced_pod_is_deleted_then_its_successor_awaited() {
    use http::{Request, Response};
    use kube::client::Body;
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut lists = 0;
        while let Some((request, send)) = handle.next_request().await {
            let line = format!("{} {}", request.method(), request.uri());
            let body = if request.method() == http::Method::DELETE {
                serde_json::to_value(pod("datastorage-a", "Running", true, 0, false)).unwrap()
            } else {
                lists += 1;
                let items = match lists {
                    1 => vec![pod("datastorage-a", "Running", true, 0, false)],
                    2 => vec![pod("datastorage-a", "Running", true, 0, false)],
                    _ => vec![pod("datastorage-b", "Running", true, 0, false)],
                };
                serde_json::json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
            };
            seen.push(line);
            send.send_response(
                Response::builder().body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap(),
            );
        }
        seen
    });
    let done = infra::backend::kube::restart_component(
        client,
        "xtask-we-1",
        "we-1",
        "datastorage",
        std::time::Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(done, "pod datastorage-a replaced");
    let seen = server.await.unwrap();
    let list = "GET /api/v1/namespaces/xtask-we-1/pods?&labelSelector=app.kubernetes.io%2Fname%3Ddatastorage%2Cxtask.run%3Dwe-1";
    assert_eq!(seen[0], list);
    assert_eq!(seen[1], "DELETE /api/v1/namespaces/xtask-we-1/pods/datastorage-a?");
    assert!(seen.len() >= 4 && seen[2..].iter().all(|l| l == list), "{seen:#?}");
}
