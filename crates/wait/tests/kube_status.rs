//! The pure Kubernetes status functions on fixtures shaped like real objects.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use serde::de::DeserializeOwned;
use wait::Status;
use wait::kube::{
    PodRules, crd_status, deployment_status, job_status, pod_status, selector_string, service_status,
};

fn fixture<K: DeserializeOwned>(file: &str, key: &str) -> K {
    let text = match file {
        "deployments" => include_str!("fixtures/deployments.yaml"),
        "pods" => include_str!("fixtures/pods.yaml"),
        _ => include_str!("fixtures/others.yaml"),
    };
    // YAML through serde-saphyr (the workspace's one YAML stack), objects through serde_json.
    let all: BTreeMap<String, serde_json::Value> = serde_saphyr::from_str(text).unwrap();
    let value = all.get(key).unwrap_or_else(|| panic!("no fixture {key} in {file}")).clone();
    serde_json::from_value(value).unwrap_or_else(|e| panic!("fixture {key}: {e}"))
}

fn pod(key: &str) -> Pod {
    fixture("pods", key)
}

fn deployment(key: &str) -> Deployment {
    fixture("deployments", key)
}

fn now() -> Timestamp {
    "2025-05-01T12:10:00Z".parse().unwrap()
}

fn failed(status: Status) -> String {
    match status {
        Status::Failed(r) => r,
        other => panic!("expected Failed, got {other:?}"),
    }
}

fn not_yet(status: Status) -> String {
    match status {
        Status::NotYet(r) => r,
        other => panic!("expected NotYet, got {other:?}"),
    }
}

#[test]
fn a_ready_pod_is_ready_and_a_starting_one_says_which_container() {
    let rules = PodRules::default();
    assert_eq!(pod_status(&pod("ready"), &rules, now()), Status::Ready);
    let reason = not_yet(pod_status(&pod("starting"), &rules, now()));
    assert_eq!(reason, "datastorage-7bb9c5d8f4-k9m2p: Running, not ready: datastorage");
}

#[test]
fn crashloop_is_waited_out_until_the_restart_threshold() {
    let rules = PodRules::default();
    let early = not_yet(pod_status(&pod("crashloop_early"), &rules, now()));
    assert_eq!(early, "datastorage-7bb9c5d8f4-q8w4z: CrashLoopBackOff, 2 restarts");
    let reason = failed(pod_status(&pod("crashloop"), &rules, now()));
    assert_eq!(
        reason,
        "datastorage-7bb9c5d8f4-q8w4z: container datastorage: CrashLoopBackOff, 4 restarts, last exit code 1 (Error)"
    );
    let lenient = PodRules { crashloop_restarts: 10, ..rules };
    not_yet(pod_status(&pod("crashloop"), &lenient, now()));
}

#[test]
fn an_init_container_crashloop_fails_the_pod() {
    let reason = failed(pod_status(&pod("init_crashloop"), &PodRules::default(), now()));
    assert!(reason.contains("container migrate: CrashLoopBackOff, 5 restarts, last exit code 2"), "{reason}");
}

#[test]
fn image_errors_that_never_clear_fail_at_once() {
    let rules = PodRules::default();
    let reason = failed(pod_status(&pod("image_pull_backoff"), &rules, now()));
    assert!(
        reason.starts_with(
            "datastorage-7bb9c5d8f4-n4d7t: container datastorage: ImagePullBackOff: Back-off pulling image"
        ),
        "{reason}"
    );
    let reason = failed(pod_status(&pod("err_image_never_pull"), &rules, now()));
    assert!(
        reason.contains(
            "ErrImageNeverPull: Container image \"localhost/workflowexecution:e2e\" is not present"
        ),
        "{reason}"
    );
}

#[test]
fn err_image_pull_fails_only_past_the_grace_window() {
    let rules = PodRules { image_pull_grace: Duration::from_secs(30), ..PodRules::default() };
    // Started at 12:09:50: 10 s into the window at 12:10:00, 40 s at 12:10:30.
    let reason = not_yet(pod_status(&pod("err_image_pull"), &rules, now()));
    assert_eq!(reason, "datastorage-7bb9c5d8f4-r5s6t: ErrImagePull");
    let later: Timestamp = "2025-05-01T12:10:30Z".parse().unwrap();
    let reason = failed(pod_status(&pod("err_image_pull"), &rules, later));
    assert!(reason.contains("ErrImagePull: rpc error: code = NotFound"), "{reason}");
}

#[test]
fn a_missing_secret_key_fails_with_the_kubelet_message() {
    let reason = failed(pod_status(&pod("create_container_config_error"), &PodRules::default(), now()));
    assert_eq!(
        reason,
        "datastorage-7bb9c5d8f4-c3v4b: container datastorage: CreateContainerConfigError: couldn't find key password in Secret kubernaut-system/datastorage-db-secret"
    );
}

#[test]
fn unschedulable_fails_after_the_grace_window_with_the_scheduler_message() {
    let rules = PodRules { unschedulable_grace: Duration::from_secs(15), ..PodRules::default() };
    let within: Timestamp = "2025-05-01T12:09:50Z".parse().unwrap();
    let reason = not_yet(pod_status(&pod("unschedulable"), &rules, within));
    assert!(
        reason.starts_with("datastorage-7bb9c5d8f4-u1u2u: Unschedulable: 0/1 nodes are available"),
        "{reason}"
    );
    let reason = failed(pod_status(&pod("unschedulable"), &rules, now()));
    assert!(reason.starts_with("datastorage-7bb9c5d8f4-u1u2u: Unschedulable for 20s: 0/1 nodes are available: 1 Insufficient memory."), "{reason}");
}

#[test]
fn an_evicted_pod_is_failed() {
    let reason = failed(pod_status(&pod("failed_phase"), &PodRules::default(), now()));
    assert!(reason.contains("pod Evicted: The node was low on resource"), "{reason}");
}

#[test]
fn a_rolled_out_deployment_is_ready() {
    let pods = [pod("ready")];
    assert_eq!(
        deployment_status(&deployment("rolled_out"), &pods, &PodRules::default(), now()),
        Status::Ready
    );
}

#[test]
fn a_stale_progressing_condition_is_not_a_finished_rollout() {
    let d = deployment("new_generation_not_observed");
    let reason = not_yet(deployment_status(&d, &[pod("ready")], &PodRules::default(), now()));
    assert_eq!(reason, "datastorage: waiting for the controller to observe generation 3 (it has seen 2)");
}

#[test]
fn a_rolling_update_in_progress_counts_updated_and_old_pods() {
    let d = deployment("rolling_update");
    let reason = not_yet(deployment_status(&d, &[], &PodRules::default(), now()));
    assert_eq!(reason, "3/3 pods ready, 1/3 updated, 3 old pods still running");
}

#[test]
fn ready_but_not_available_is_not_done() {
    let reason =
        not_yet(deployment_status(&deployment("ready_not_available"), &[], &PodRules::default(), now()));
    assert_eq!(reason, "2/2 pods ready, 0/2 available (minReadySeconds)");
}

#[test]
fn a_first_rollout_names_the_pods_that_hold_it_up() {
    let d = deployment("first_rollout");
    let pods = [pod("ready"), pod("ready"), pod("crashloop_early")];
    let reason = not_yet(deployment_status(&d, &pods, &PodRules::default(), now()));
    assert_eq!(reason, "2/3 pods ready; datastorage-7bb9c5d8f4-q8w4z: CrashLoopBackOff, 2 restarts");
}

#[test]
fn a_hopeless_pod_fails_the_rollout_before_the_progress_deadline() {
    let d = deployment("first_rollout");
    let pods = [pod("ready"), pod("crashloop")];
    let reason = failed(deployment_status(&d, &pods, &PodRules::default(), now()));
    assert!(
        reason
            .starts_with("datastorage-7bb9c5d8f4-q8w4z: container datastorage: CrashLoopBackOff, 4 restarts"),
        "{reason}"
    );
}

#[test]
fn an_old_replicasets_broken_pod_does_not_fail_a_rollout_that_replaces_it() {
    let d = deployment("first_rollout");
    let mut old = pod("crashloop");
    old.metadata.labels.as_mut().unwrap().insert("pod-template-hash".into(), "5d6f7c8b9a".into());
    old.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2025-05-01T11:00:00Z".parse().unwrap()));
    let reason = not_yet(deployment_status(&d, &[old, pod("starting")], &PodRules::default(), now()));
    assert!(reason.ends_with("; datastorage-7bb9c5d8f4-k9m2p: Running, not ready: datastorage"), "{reason}");
}

#[test]
fn progress_deadline_exceeded_is_failed() {
    let reason = failed(deployment_status(
        &deployment("progress_deadline_exceeded"),
        &[],
        &PodRules::default(),
        now(),
    ));
    assert_eq!(
        reason,
        "datastorage: ProgressDeadlineExceeded: ReplicaSet \"datastorage-7bb9c5d8f4\" has timed out progressing."
    );
}

#[test]
fn jobs_complete_fail_or_run() {
    assert_eq!(job_status(&fixture::<Job>("others", "job_complete")), Status::Ready);
    let reason = failed(job_status(&fixture::<Job>("others", "job_failed")));
    assert_eq!(
        reason,
        "datastorage-migrate: BackoffLimitExceeded: Job has reached the specified backoff limit"
    );
    let reason = not_yet(job_status(&fixture::<Job>("others", "job_running")));
    assert_eq!(reason, "datastorage-migrate: 1 active, 0/1 succeeded, 1 failed");
}

#[test]
fn crds_are_ready_when_established_and_fail_on_name_conflicts() {
    let crd = |k| fixture::<CustomResourceDefinition>("others", k);
    assert_eq!(crd_status(&crd("crd_established")), Status::Ready);
    assert_eq!(not_yet(crd_status(&crd("crd_pending"))), "pipelineruns.tekton.dev: not established yet");
    assert_eq!(
        failed(crd_status(&crd("crd_names_conflict"))),
        "runs.example.dev: ShortNamesConflict: \"pr\" is already in use"
    );
}

#[test]
fn a_service_needs_one_ready_endpoint() {
    let slice = |k| fixture::<EndpointSlice>("others", k);
    assert_eq!(
        service_status("datastorage", &[slice("slice_not_ready"), slice("slice_ready")]),
        Status::Ready
    );
    assert_eq!(
        not_yet(service_status("datastorage", &[slice("slice_not_ready")])),
        "service datastorage: 0/1 endpoints ready"
    );
    assert_eq!(
        not_yet(service_status("datastorage", &[slice("slice_empty")])),
        "service datastorage: no endpoints yet"
    );
    assert_eq!(not_yet(service_status("datastorage", &[])), "service datastorage: no endpoints yet");
}

#[test]
fn selectors_render_in_query_syntax() {
    let selector = serde_json::from_value(serde_json::json!({
        "matchLabels": {"app": "datastorage", "tier": "api"},
        "matchExpressions": [
            {"key": "track", "operator": "In", "values": ["stable", "canary"]},
            {"key": "legacy", "operator": "DoesNotExist"}
        ]
    }))
    .unwrap();
    assert_eq!(selector_string(&selector), "app=datastorage,tier=api,track in (stable,canary),!legacy");
}
