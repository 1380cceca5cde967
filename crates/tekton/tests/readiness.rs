//! The pure readiness functions on real object dumps, and the probe Task's shape.

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::{DynamicObject, Status as ApiStatus};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tekton::{
    PROBE_TASK, Release, Source, Status, admission_status, crd_established, deployment_available, probe_task,
    release_in_place, tekton_status, webhook_configured,
};

fn value(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/k8s-status").join(file);
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn typed<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).unwrap()
}

fn not_yet(status: Status) -> String {
    match status {
        Status::NotYet(reason) => reason,
        other => panic!("expected NotYet, got {other:?}"),
    }
}

fn failed(status: Status) -> String {
    match status {
        Status::Failed(reason) => reason,
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn an_established_crd_is_ready_and_otherwise_its_condition_is_the_reason() {
    let established = value("crd-established.yaml");
    assert_eq!(crd_established(&typed(established.clone())), Status::Ready);

    let mut installing = established.clone();
    installing["status"]["conditions"][1] = json!({
        "type": "Established", "status": "False", "reason": "Installing",
        "message": "the initial names have been accepted"
    });
    assert_eq!(
        not_yet(crd_established(&typed(installing))),
        "Established=False (Installing): the initial names have been accepted"
    );

    let mut fresh = established.clone();
    fresh.as_object_mut().unwrap().remove("status");
    assert_eq!(not_yet(crd_established(&typed(fresh))), "no conditions reported yet");

    let mut conflict: Value = established;
    conflict["status"]["conditions"] = json!([{
        "type": "NamesAccepted", "status": "False", "reason": "PluralConflict",
        "message": "\"examples\" is already in use"
    }]);
    let reason = failed(crd_established(&typed::<CustomResourceDefinition>(conflict)));
    assert!(reason.contains("PluralConflict"), "{reason}");
}

#[test]
fn deployments_available_progressing_and_past_their_deadline() {
    assert_eq!(deployment_available(&typed(value("deployment-available.yaml"))), Status::Ready);
    let reason = not_yet(deployment_available(&typed::<Deployment>(value("deployment-progressing.yaml"))));
    assert!(reason.contains("1 old pods still running"), "{reason}");
    // Terminal even though the same object still says Available=True.
    let reason = failed(deployment_available(&typed(value("deployment-progress-deadline-exceeded.yaml"))));
    assert!(reason.contains("ProgressDeadlineExceeded"), "{reason}");
    assert!(reason.contains("has timed out progressing"), "{reason}");
}

#[test]
fn a_release_is_in_place_when_its_version_runs_available() {
    let labelled = |file: &str, version: &str| {
        let mut d: Deployment = typed(value(file));
        d.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("app.kubernetes.io/version".into(), version.into());
        d
    };
    assert!(release_in_place(&labelled("deployment-available.yaml", "v1.6.0"), "v1.6.0"));
    assert!(
        !release_in_place(&labelled("deployment-available.yaml", "v1.5.0"), "v1.6.0"),
        "another version is upgraded"
    );
    assert!(!release_in_place(&labelled("deployment-progressing.yaml", "v1.6.0"), "v1.6.0"), "mid-rollout");
    assert!(!release_in_place(&typed(value("deployment-available.yaml")), "v1.6.0"), "no version label");
}

#[test]
fn the_probe_task_is_one_busybox_step_running_true() {
    let task = serde_json::to_value(probe_task("default")).unwrap();
    assert_eq!(
        task,
        json!({
            "apiVersion": "tekton.dev/v1",
            "kind": "Task",
            "metadata": {"name": PROBE_TASK, "namespace": "default"},
            "spec": {"steps": [{"name": "probe", "image": "busybox", "script": "true"}]}
        })
    );
}

fn api_error(code: u16, reason: &str, message: &str) -> Result<DynamicObject, kube::Error> {
    let status: ApiStatus = serde_json::from_value(json!({
        "status": "Failure", "code": code, "reason": reason, "message": message
    }))
    .unwrap();
    Err(kube::Error::Api(Box::new(status)))
}

#[test]
fn the_dry_run_outcome_separates_not_serving_from_refused() {
    assert_eq!(admission_status(&Ok(probe_task("default"))), Status::Ready);
    let refused = "Internal error occurred: failed calling webhook \"webhook.pipeline.tekton.dev\": \
                   failed to call webhook: Post \"https://tekton-pipelines-webhook.tekton-pipelines.svc:443/defaulting\": \
                   dial tcp 10.96.0.12:443: connect: connection refused";
    let reason = not_yet(admission_status(&api_error(500, "InternalError", refused)));
    assert!(reason.contains(refused), "{reason}");
    let reason = not_yet(admission_status(&api_error(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )));
    assert!(reason.contains("tasks.tekton.dev is not served yet"), "{reason}");
    assert_eq!(
        admission_status(&api_error(409, "AlreadyExists", "tasks \"x\" already exists")),
        Status::Ready
    );
    let reason = failed(admission_status(&api_error(403, "Forbidden", "cannot create tasks")));
    assert!(reason.contains("403 Forbidden: cannot create tasks"), "{reason}");
    assert!(matches!(admission_status(&api_error(400, "BadRequest", "invalid step")), Status::Failed(_)));
}

#[test]
fn the_released_webhook_configurations_have_no_rules_until_the_webhook_adds_them() {
    let release = Release::load(&Source::File(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tekton/release-v1.x.yaml"),
    ))
    .unwrap();
    let mutating = release
        .objects()
        .iter()
        .find(|o| o.metadata.name.as_deref() == Some("webhook.pipeline.tekton.dev"))
        .unwrap()
        .clone();
    let reason = not_yet(webhook_configured(&mutating));
    assert!(reason.contains("webhook.pipeline.tekton.dev: no rules yet"), "{reason}");
    let mut reconciled = mutating;
    reconciled.data["webhooks"][0]["rules"] = json!([{
        "apiGroups": ["tekton.dev"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"], "resources": ["tasks"]
    }]);
    assert_eq!(webhook_configured(&reconciled), Status::Ready);
}

#[test]
fn tekton_is_ready_only_when_every_part_is() {
    let ready = |what: &str| (what.to_string(), Status::Ready);
    assert_eq!(tekton_status(&[ready("controller"), ready("webhook"), ready("admission")]), Status::Ready);
    assert!(matches!(tekton_status(&[]), Status::NotYet(_)));
    let waiting = tekton_status(&[
        ready("controller"),
        ready("webhook"),
        ("admission".into(), Status::NotYet("connection refused".into())),
    ]);
    assert_eq!(waiting, Status::NotYet("admission: connection refused".into()));
    let failed = tekton_status(&[
        ("controller".into(), Status::NotYet("0/1 pods ready".into())),
        ("webhook".into(), Status::Failed("ProgressDeadlineExceeded".into())),
    ]);
    assert_eq!(failed, Status::Failed("webhook: ProgressDeadlineExceeded".into()));
}
