//! Readiness of Deployments, Jobs, CRDs and Services, as pure functions of k8s-openapi objects.
//!
//! The Deployment rules follow kstatus: a rollout is finished only when the controller has
//! observed the latest generation and the updated, ready and available replica counts all match
//! the spec; a `Progressing` condition left over from an earlier rollout proves nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;

use super::PodRules;
use super::pod::{pod_failure, pod_summary};
use crate::Status;

/// Label the Deployment controller puts on the pods of each ReplicaSet.
const TEMPLATE_HASH: &str = "pod-template-hash";

/// Ready when the Deployment's latest generation is rolled out and available.
///
/// `pods` are the pods matching the Deployment's selector; the newest ReplicaSet's pods are
/// checked for terminal states (CrashLoopBackOff, ImagePullBackOff, ...) so that a hopeless
/// rollout fails at once instead of at `progressDeadlineSeconds`.
pub fn deployment_status(deployment: &Deployment, pods: &[Pod], rules: &PodRules, now: Timestamp) -> Status {
    let name = deployment.metadata.name.as_deref().unwrap_or("<unnamed deployment>");
    let want = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Status::NotYet(format!(
            "{name}: waiting for the controller to observe generation {generation} (it has seen {observed})"
        ));
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    if let Some(c) = conditions.iter().find(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")) {
        return Status::Failed(format!(
            "{name}: ProgressDeadlineExceeded: {}",
            c.message.as_deref().unwrap_or("the rollout made no progress in time")
        ));
    }
    let current = current_pods(pods);
    if let Some(failure) = current.iter().find_map(|p| pod_failure(p, rules, now)) {
        return Status::Failed(failure);
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if updated >= want && total <= updated && ready >= want && available >= want {
        return Status::Ready;
    }
    let mut reason = format!("{ready}/{want} pods ready");
    if updated < want {
        reason.push_str(&format!(", {updated}/{want} updated"));
    }
    if total > updated {
        reason.push_str(&format!(", {} old pods still running", total - updated));
    }
    if available < want && ready >= want {
        reason.push_str(&format!(", {available}/{want} available (minReadySeconds)"));
    }
    for pod in current.iter().filter(|p| !is_ready(p)) {
        reason.push_str("; ");
        reason.push_str(&pod_summary(pod));
    }
    Status::NotYet(reason)
}

/// Ready when the Job has completed; Failed when it has failed (e.g. `BackoffLimitExceeded`).
pub fn job_status(job: &Job) -> Status {
    let name = job.metadata.name.as_deref().unwrap_or("<unnamed job>");
    let status = job.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let holds = |kind: &str| conditions.iter().find(|c| c.type_ == kind && c.status == "True");
    if let Some(c) = holds("Failed").or_else(|| holds("FailureTarget")) {
        let reason = c.reason.as_deref().unwrap_or("Failed");
        return Status::Failed(format!("{name}: {reason}: {}", c.message.as_deref().unwrap_or_default()));
    }
    if holds("Complete").is_some() {
        return Status::Ready;
    }
    let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
    Status::NotYet(format!(
        "{name}: {} active, {}/{completions} succeeded, {} failed",
        status.active.unwrap_or(0),
        status.succeeded.unwrap_or(0),
        status.failed.unwrap_or(0)
    ))
}

/// Ready when the CRD is `Established`; Failed when its names were not accepted.
pub fn crd_status(crd: &CustomResourceDefinition) -> Status {
    let name = crd.metadata.name.as_deref().unwrap_or("<unnamed crd>");
    let conditions = crd.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let find = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    if find("Established").is_some_and(|c| c.status == "True") {
        return Status::Ready;
    }
    if let Some(c) = find("NamesAccepted").filter(|c| c.status == "False") {
        let reason = c.reason.as_deref().unwrap_or("NamesNotAccepted");
        return Status::Failed(format!("{name}: {reason}: {}", c.message.as_deref().unwrap_or_default()));
    }
    Status::NotYet(format!("{name}: not established yet"))
}

/// Ready when the Service's EndpointSlices hold at least one ready endpoint.
pub fn service_status(service: &str, slices: &[EndpointSlice]) -> Status {
    let endpoints: Vec<_> = slices.iter().flat_map(|s| s.endpoints.iter()).collect();
    // A missing `ready` means ready, as the EndpointSlice API documents.
    let ready =
        endpoints.iter().filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)).count();
    match (ready, endpoints.len()) {
        (0, 0) => Status::NotYet(format!("service {service}: no endpoints yet")),
        (0, n) => Status::NotYet(format!("service {service}: 0/{n} endpoints ready")),
        _ => Status::Ready,
    }
}

/// The pods of the newest ReplicaSet (by pod creation time), not being deleted.
///
/// Old ReplicaSets' pods are scaled down by the rollout itself; their failures do not decide it.
fn current_pods(pods: &[Pod]) -> Vec<&Pod> {
    let live: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    let hash = |p: &Pod| p.metadata.labels.as_ref().and_then(|l| l.get(TEMPLATE_HASH)).cloned();
    let mut newest: BTreeMap<Option<String>, Timestamp> = BTreeMap::new();
    for p in &live {
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH);
        let entry = newest.entry(hash(p)).or_insert(created);
        *entry = (*entry).max(created);
    }
    let Some((current, _)) = newest.into_iter().max_by_key(|(_, t)| *t) else { return Vec::new() };
    live.into_iter().filter(|p| hash(p) == current).collect()
}

fn is_ready(pod: &Pod) -> bool {
    super::pod::condition(pod, "Ready").is_some_and(|c| c.status == "True")
}
