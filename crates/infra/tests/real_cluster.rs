//! The Kubernetes backends' building blocks against a real API server and kubelet: what the
//! mock API client only imitated. CI runs them on the devcluster (`.ci/with-cluster`, which
//! sets KUBECONFIG and XTASK_REQUIRE_CLUSTER=1); without a cluster they skip, loudly, unless
//! XTASK_REQUIRE_CLUSTER=1 makes that a failure.
//!
//! Each test works in a namespace of its own, removed at its end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use infra::backend::kube::{apply_object, client_for};
use infra::kubernetes::{FIELD_MANAGER, Object};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ExecAction, Namespace, PodSpec, PodTemplateSpec, Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use wait::{WaitError, Waiter};

/// Whether a missing cluster is a failure rather than a skip.
fn required() -> bool {
    std::env::var("XTASK_REQUIRE_CLUSTER").is_ok_and(|v| v == "1")
}

/// A client for the cluster of KUBECONFIG; `None` (a test skips) when there is none.
async fn cluster() -> Option<Client> {
    let required = required();
    let Some(path) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) else {
        assert!(!required, "XTASK_REQUIRE_CLUSTER=1 but KUBECONFIG is not set");
        eprintln!(
            "SKIPPED: no KUBECONFIG (run under .ci/with-cluster, or set XTASK_REQUIRE_CLUSTER=1 to fail)"
        );
        return None;
    };
    match client_for(std::path::Path::new(&path), None).await {
        Ok(client) => Some(client),
        Err(e) if !required => {
            eprintln!("SKIPPED: no cluster from {}: {e}", path.to_string_lossy());
            None
        }
        Err(e) => panic!("XTASK_REQUIRE_CLUSTER=1 but {}: {e}", path.to_string_lossy()),
    }
}

/// A fresh namespace for one test, applied by xtask's own applier.
async fn namespace(client: &Client, test: &str) -> String {
    let name = format!("xtask-test-{test}-{}", std::process::id());
    let ns = Namespace {
        metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
        ..Default::default()
    };
    apply_object(client, &Object::Namespace(ns)).await.expect("create the test namespace");
    name
}

async fn remove(client: &Client, namespace: &str) {
    let _ = Api::<Namespace>::all(client.clone()).delete(namespace, &DeleteParams::background()).await;
}

fn config_map(ns: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("settings".into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..Default::default()
    }
}

/// A Deployment of one container with a readiness probe, as every component's is: without
/// one, the kubelet calls a container Ready the moment it starts, even one about to exit.
fn deployment(ns: &str, name: &str, image: &str, command: Option<Vec<String>>) -> Deployment {
    let labels: BTreeMap<String, String> = [("app".to_string(), name.to_string())].into();
    Deployment {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
        spec: Some(DeploymentSpec {
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "main".into(),
                        image: Some(image.into()),
                        command,
                        readiness_probe: Some(Probe {
                            exec: Some(ExecAction {
                                command: Some(vec!["/bin/sh".into(), "-c".into(), "true".into()]),
                            }),
                            initial_delay_seconds: Some(2),
                            period_seconds: Some(1),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The managers of an object's fields, with their operation.
fn managers(meta: &ObjectMeta) -> Vec<(String, String)> {
    meta.managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.clone().unwrap_or_default(), m.operation.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn server_side_apply_is_owned_by_xtask_and_a_second_apply_changes_nothing() {
    let Some(client) = cluster().await else { return };
    let ns = namespace(&client, "ssa").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    apply_object(&client, &Object::ConfigMap(config_map(&ns, &[("a", "1")]))).await.unwrap();
    let first = api.get("settings").await.unwrap();
    assert_eq!(managers(&first.metadata), [(FIELD_MANAGER.to_string(), "Apply".to_string())]);

    apply_object(&client, &Object::ConfigMap(config_map(&ns, &[("a", "1")]))).await.unwrap();
    let second = api.get("settings").await.unwrap();
    assert_eq!(
        first.metadata.resource_version, second.metadata.resource_version,
        "re-applying the same object must not write it again"
    );
    remove(&client, &ns).await;
}

#[tokio::test]
async fn a_field_of_another_manager_is_kept_and_a_contested_one_is_taken_back() {
    let Some(client) = cluster().await else { return };
    let ns = namespace(&client, "owners").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    apply_object(&client, &Object::ConfigMap(config_map(&ns, &[("a", "1")]))).await.unwrap();

    // Someone else adds a key of their own: no conflict.
    let other = PatchParams::apply("someone-else");
    api.patch("settings", &other, &Patch::Apply(config_map(&ns, &[("b", "2")]))).await.unwrap();
    // ...and then tries to change xtask's key without forcing: the server refuses it.
    let refused =
        api.patch("settings", &other, &Patch::Apply(config_map(&ns, &[("a", "9"), ("b", "2")]))).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 409),
        "a contested field is a conflict: {refused:?}"
    );
    // Forced, it takes the key over.
    api.patch("settings", &other.clone().force(), &Patch::Apply(config_map(&ns, &[("a", "9"), ("b", "2")])))
        .await
        .unwrap();

    // xtask applies its object again: its value comes back, the other manager's key stays.
    apply_object(&client, &Object::ConfigMap(config_map(&ns, &[("a", "1")]))).await.unwrap();
    let now = api.get("settings").await.unwrap();
    let data = now.data.clone().unwrap();
    assert_eq!(data.get("a").map(String::as_str), Some("1"));
    assert_eq!(data.get("b").map(String::as_str), Some("2"), "a field xtask never set is not removed");
    let names: Vec<String> = managers(&now.metadata).into_iter().map(|(m, _)| m).collect();
    assert!(
        names.contains(&FIELD_MANAGER.to_string()) && names.contains(&"someone-else".to_string()),
        "{names:?}"
    );
    remove(&client, &ns).await;
}

/// Waits for a Deployment as the backends do; the failure, and how long it took to come.
async fn wait_deployment(client: &Client, ns: &str, name: &str) -> (WaitError, Duration) {
    let mut probe = wait::kube::KubeProbe::deployment(client.clone(), ns, name);
    let started = Instant::now();
    let error = Waiter::new(Duration::from_secs(240))
        .wait_for(&mut probe)
        .await
        .expect_err("it must not become ready");
    (error, started.elapsed())
}

#[tokio::test]
async fn an_image_that_does_not_exist_fails_the_wait_with_the_pull_error_not_at_the_deadline() {
    let Some(client) = cluster().await else { return };
    let ns = namespace(&client, "noimage").await;
    let registry = std::env::var("XTASK_DEVCLUSTER_REGISTRY").unwrap_or_else(|_| "localhost".into());
    let image = format!("{registry}/xtask-test/does-not-exist:1");
    let object = deployment(&ns, "ghost", &image, None);
    apply_object(&client, &Object::Deployment(Box::new(object))).await.unwrap();
    let (error, took) = wait_deployment(&client, &ns, "ghost").await;
    let text = error.to_string();
    assert!(matches!(error, WaitError::Failed { .. }), "a failure, not a timeout, after {took:?}: {text}");
    assert!(text.contains("ErrImagePull") || text.contains("ImagePullBackOff"), "{text}");
    assert!(text.contains("ghost-"), "names the pod: {text}");
    eprintln!("diagnosed in {:.1}s: {text}", took.as_secs_f64());
    remove(&client, &ns).await;
}

#[tokio::test]
async fn a_container_that_exits_fails_the_wait_with_its_exit_code_and_log_tail() {
    let Some(client) = cluster().await else { return };
    // Any image with a shell the cluster can pull: CI's PostgreSQL stand-in, pushed by with-cluster.
    let Some(image) = std::env::var("XTASK_IMAGE_POSTGRES").ok().filter(|i| !i.is_empty()) else {
        assert!(!required(), "XTASK_REQUIRE_CLUSTER=1 needs XTASK_IMAGE_POSTGRES");
        eprintln!("SKIPPED: no XTASK_IMAGE_POSTGRES to run a shell from");
        return;
    };
    let ns = namespace(&client, "exits").await;
    let command = vec!["/bin/sh".into(), "-c".into(), "echo the-last-words-of-the-test; exit 3".into()];
    let object = deployment(&ns, "quitter", &image, Some(command));
    apply_object(&client, &Object::Deployment(Box::new(object))).await.unwrap();
    let (error, took) = wait_deployment(&client, &ns, "quitter").await;
    let text = error.to_string();
    assert!(matches!(error, WaitError::Failed { .. }), "a failure, not a timeout, after {took:?}: {text}");
    assert!(text.contains("CrashLoopBackOff") && text.contains("exit code 3"), "{text}");
    let evidence = format!("{:?}", error.diagnosis());
    assert!(evidence.contains("the-last-words-of-the-test"), "the log tail is in the diagnosis: {evidence}");
    eprintln!("diagnosed in {:.1}s: {text}", took.as_secs_f64());
    remove(&client, &ns).await;
}
