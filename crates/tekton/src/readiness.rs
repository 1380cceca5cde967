//! When Tekton is ready, as pure functions of what the API server returned.
//!
//! Available Deployments are not enough: the API server calls the admission webhook through its
//! Service, and until the webhook pod serves and its endpoints have propagated, every create of a
//! Tekton resource fails with `failed calling webhook ... connection refused`
//! (tektoncd/pipeline#7353). So the last check is a server-side dry-run create of a trivial
//! [`probe_task`], which goes through the same admission chain as a real one and stores nothing.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use wait::Status;
use wait::kube::PodRules;

/// The namespace Tekton Pipelines runs in.
pub const NAMESPACE: &str = "tekton-pipelines";
/// The Deployment that reconciles TaskRuns and PipelineRuns.
pub const CONTROLLER: &str = "tekton-pipelines-controller";
/// The Deployment serving the admission webhooks.
pub const WEBHOOK: &str = "tekton-pipelines-webhook";
/// The name of the Task the admission probe dry-run creates.
pub const PROBE_TASK: &str = "xtask-webhook-probe";
/// The webhook configurations a Task create goes through, as `(kind, name)`.
///
/// The release ships them without rules; the webhook fills the rules in once it runs, and until
/// then a dry-run create succeeds without calling it, which proves nothing.
pub const WEBHOOK_CONFIGURATIONS: [(&str, &str); 2] = [
    ("MutatingWebhookConfiguration", "webhook.pipeline.tekton.dev"),
    ("ValidatingWebhookConfiguration", "validation.webhook.pipeline.tekton.dev"),
];

/// Ready when the CRD is `Established`; not yet with its last condition; failed when its names
/// were not accepted.
pub fn crd_established(crd: &CustomResourceDefinition) -> Status {
    match wait::kube::crd_status(crd) {
        Status::NotYet(_) => Status::NotYet(last_crd_condition(crd)),
        other => other,
    }
}

/// The condition that best says why a CRD is not `Established`: that condition if present,
/// otherwise the newest one.
fn last_crd_condition(crd: &CustomResourceDefinition) -> String {
    let conditions = crd.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let Some(c) = conditions.iter().find(|c| c.type_ == "Established").or(conditions.last()) else {
        return "no conditions reported yet".into();
    };
    let mut text = format!("{}={}", c.type_, c.status);
    if let Some(reason) = c.reason.as_deref().filter(|r| !r.is_empty()) {
        text.push_str(&format!(" ({reason})"));
    }
    if let Some(message) = c.message.as_deref().filter(|m| !m.is_empty()) {
        text.push_str(&format!(": {message}"));
    }
    text
}

/// Ready when the Deployment's latest generation is rolled out and available; failed on
/// `ProgressDeadlineExceeded`.
pub fn deployment_available(deployment: &Deployment) -> Status {
    // No pods are passed: pod-level terminal states are the `wait` crate's KubeProbe's job, and
    // without pods the rules and the time do not enter the result.
    wait::kube::deployment_status(deployment, &[], &PodRules::default(), Timestamp::now())
}

/// Whether `version` of Tekton is installed and running: the controller Deployment carries the
/// release's `app.kubernetes.io/version` label and is available. On a reused cluster such a
/// release is not applied again.
pub fn release_in_place(controller: &Deployment, version: &str) -> bool {
    let labelled = controller.metadata.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/version"));
    labelled.is_some_and(|v| v == version) && deployment_available(controller).is_ready()
}

/// Ready when every webhook of the configuration has rules, i.e. the Tekton webhook has
/// reconciled it and the API server will call it.
pub fn webhook_configured(configuration: &DynamicObject) -> Status {
    let name = configuration.metadata.name.as_deref().unwrap_or("<unnamed webhook configuration>");
    let webhooks =
        configuration.data.get("webhooks").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let has_rules =
        |w: &Value| w.get("rules").and_then(Value::as_array).is_some_and(|rules| !rules.is_empty());
    if webhooks.is_empty() {
        return Status::NotYet(format!("{name}: no webhooks yet"));
    }
    if let Some(w) = webhooks.iter().find(|w| !has_rules(w)) {
        let hook = w.get("name").and_then(Value::as_str).unwrap_or(name);
        return Status::NotYet(format!("{hook}: no rules yet (the Tekton webhook adds them when it starts)"));
    }
    Status::Ready
}

/// The Task whose dry-run create proves the admission webhook answers: one step, `busybox`,
/// script `true`.
pub fn probe_task(namespace: &str) -> DynamicObject {
    DynamicObject::new(PROBE_TASK, &task_resource()).within(namespace).data(json!({
        "spec": {
            "steps": [{"name": "probe", "image": "busybox", "script": "true"}]
        }
    }))
}

/// The API resource of `tekton.dev/v1` Tasks.
pub(crate) fn task_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("tekton.dev", "v1", "Task"), "tasks")
}

/// Reads the outcome of the probe's dry-run create.
///
/// Server errors and a missing `tasks` resource mean "not serving yet"; a refusal (400, 403,
/// 422, ...) means the webhook or RBAC answered and will answer the same way again.
pub fn admission_status(outcome: &Result<DynamicObject, kube::Error>) -> Status {
    let status = match outcome {
        Ok(_) => return Status::Ready,
        Err(kube::Error::Api(status)) => status,
        Err(other) => return Status::NotYet(format!("the API server did not answer: {other}")),
    };
    let what = format!("{} {}: {}", status.code, status.reason, status.message);
    match status.code {
        // AlreadyExists is decided by storage, after admission has passed.
        409 => Status::Ready,
        404 => Status::NotYet(format!("tasks.tekton.dev is not served yet: {what}")),
        429 | 500..=599 => Status::NotYet(what),
        _ => Status::Failed(format!("dry-run create of Task {PROBE_TASK} refused: {what}")),
    }
}

/// Tekton's overall readiness from its named parts: the first failure, else every part not yet
/// ready, else ready.
pub fn tekton_status(parts: &[(String, Status)]) -> Status {
    if let Some((what, Status::Failed(reason))) = parts.iter().find(|(_, s)| matches!(s, Status::Failed(_))) {
        return Status::Failed(format!("{what}: {reason}"));
    }
    let pending: Vec<String> =
        parts.iter().filter_map(|(what, s)| s.reason().map(|r| format!("{what}: {r}"))).collect();
    if parts.is_empty() {
        return Status::NotYet("nothing checked yet".into());
    }
    if pending.is_empty() { Status::Ready } else { Status::NotYet(pending.join("; ")) }
}
