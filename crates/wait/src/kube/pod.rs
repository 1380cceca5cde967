//! Pod readiness and the pod states that will not recover, as pure functions of a Pod.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};
use k8s_openapi::jiff::Timestamp;

use super::PodRules;
use crate::Status;

/// Waiting reasons that never clear without a change to the pod spec or the registry.
const HOPELESS_WAITING: [&str; 4] =
    ["ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError"];

/// Ready when the pod's `Ready` condition is true; Failed on a terminal state (see [`pod_failure`]).
pub fn pod_status(pod: &Pod, rules: &PodRules, now: Timestamp) -> Status {
    if let Some(failure) = pod_failure(pod, rules, now) {
        return Status::Failed(failure);
    }
    if phase(pod) == "Succeeded" {
        return Status::Failed(format!("{}: completed (Succeeded); it will not become ready", name(pod)));
    }
    if condition(pod, "Ready").is_some_and(|c| c.status == "True") {
        Status::Ready
    } else {
        Status::NotYet(pod_summary(pod))
    }
}

/// Why this pod will not become ready without intervention, or `None` while it still may.
///
/// Terminal: phase Failed; a container waiting in ImagePullBackOff, ErrImageNeverPull,
/// InvalidImageName or CreateContainerConfigError (e.g. a missing ConfigMap or Secret key);
/// ErrImagePull for longer than [`PodRules::image_pull_grace`]; CrashLoopBackOff after
/// [`PodRules::crashloop_restarts`] restarts; Unschedulable for longer than
/// [`PodRules::unschedulable_grace`], with the scheduler's message.
pub fn pod_failure(pod: &Pod, rules: &PodRules, now: Timestamp) -> Option<String> {
    let pod_name = name(pod);
    let status = pod.status.as_ref()?;
    if phase(pod) == "Failed" {
        let reason = status.reason.as_deref().unwrap_or("Failed");
        return Some(format!("{pod_name}: pod {reason}: {}", status.message.as_deref().unwrap_or("")));
    }
    for c in containers(pod) {
        let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else { continue };
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let message = waiting.message.as_deref().unwrap_or_default();
        let failed = HOPELESS_WAITING.contains(&reason)
            || (reason == "ErrImagePull" && age(pod, now).is_some_and(|a| a >= rules.image_pull_grace))
            || (reason == "CrashLoopBackOff" && c.restart_count >= rules.crashloop_restarts);
        if failed {
            let mut text = format!("{pod_name}: container {}: {reason}", c.name);
            if reason == "CrashLoopBackOff" {
                text.push_str(&format!(", {} restarts{}", c.restart_count, last_exit(c)));
            } else if !message.is_empty() {
                text.push_str(&format!(": {message}"));
            }
            return Some(text);
        }
    }
    let scheduled = condition(pod, "PodScheduled")?;
    if scheduled.status == "False" && scheduled.reason.as_deref() == Some("Unschedulable") {
        let since = scheduled.last_transition_time.as_ref().map(|t| t.0).or_else(|| created(pod))?;
        let pending = elapsed(since, now);
        if pending >= rules.unschedulable_grace {
            let message = scheduled.message.as_deref().unwrap_or("no message from the scheduler");
            return Some(format!("{pod_name}: Unschedulable for {}s: {message}", pending.as_secs()));
        }
    }
    None
}

/// A short account of a pod that is not ready, e.g. `datastorage-7bb: CrashLoopBackOff, 4 restarts`.
pub fn pod_summary(pod: &Pod) -> String {
    let pod_name = name(pod);
    for c in containers(pod) {
        if let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or("Waiting");
            return match c.restart_count {
                0 => format!("{pod_name}: {reason}"),
                1 => format!("{pod_name}: {reason}, 1 restart"),
                n => format!("{pod_name}: {reason}, {n} restarts"),
            };
        }
    }
    if let Some(c) = condition(pod, "PodScheduled").filter(|c| c.status == "False") {
        let why = c.reason.as_deref().unwrap_or("not scheduled");
        return format!("{pod_name}: {why}: {}", c.message.as_deref().unwrap_or_default());
    }
    let unready: Vec<&str> = containers(pod).filter(|c| !c.ready).map(|c| c.name.as_str()).collect();
    if !unready.is_empty() && phase(pod) == "Running" {
        return format!("{pod_name}: Running, not ready: {}", unready.join(", "));
    }
    format!("{pod_name}: {}", phase(pod))
}

/// The pod's name.
pub(crate) fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("<unnamed pod>")
}

/// The pod's phase, `Unknown` when absent.
pub(crate) fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Unknown")
}

/// A condition of the pod by type.
pub(crate) fn condition<'a>(pod: &'a Pod, kind: &str) -> Option<&'a PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind)
}

/// Init containers first, then app containers.
pub(crate) fn containers(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let status = pod.status.as_ref();
    let init = status.and_then(|s| s.init_container_statuses.as_deref()).unwrap_or_default();
    let main = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
    init.iter().chain(main)
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn age(pod: &Pod, now: Timestamp) -> Option<std::time::Duration> {
    let start =
        pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0).or_else(|| created(pod))?;
    Some(elapsed(start, now))
}

fn last_exit(c: &ContainerStatus) -> String {
    match c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
        Some(t) => {
            format!(", last exit code {} ({})", t.exit_code, t.reason.as_deref().unwrap_or("no reason"))
        }
        None => String::new(),
    }
}

/// Time from `since` to `now`, zero if the clocks disagree about the order.
fn elapsed(since: Timestamp, now: Timestamp) -> std::time::Duration {
    now.duration_since(since).try_into().unwrap_or_default()
}
