//! Kubernetes readiness: pure status functions of k8s-openapi objects, watcher-driven probes,
//! and the collection of pod evidence (states, events, logs) for a diagnosis.
//!
//! The status functions take an object (and the time, where a grace window applies) and return
//! a [`Status`](crate::Status); they never talk to a cluster, so they are tested on fixtures.
//! [`KubeProbe`] feeds them from kube-rs reflectors (a watch, not a polling loop).
//!
//! ```
//! let crd = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "crd.example.com"},
//!     "spec": {"group": "example.com", "names": {"kind": "X", "plural": "xs"}, "scope": "Namespaced", "versions": []},
//!     "status": {"conditions": [{"type": "Established", "status": "True"}]}
//! })).unwrap();
//! assert_eq!(wait::kube::crd_status(&crd), wait::Status::Ready);
//! ```

mod diagnose;
mod pod;
mod watch;
mod workload;

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub use diagnose::{ContainerReport, EventReport, PodReport, WorkloadReport, collect_workload};
pub use pod::{pod_failure, pod_status, pod_summary};
pub use watch::KubeProbe;
pub use workload::{crd_status, deployment_status, job_status, service_status};

/// When pod states count as terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodRules {
    /// Restarts after which CrashLoopBackOff is Failed (3 unless changed).
    pub crashloop_restarts: i32,
    /// How long after the pod started ErrImagePull is Failed (30 s unless changed).
    pub image_pull_grace: Duration,
    /// How long a pod may stay Unschedulable before it is Failed (15 s unless changed).
    pub unschedulable_grace: Duration,
}

impl Default for PodRules {
    fn default() -> Self {
        Self {
            crashloop_restarts: 3,
            image_pull_grace: Duration::from_secs(30),
            unschedulable_grace: Duration::from_secs(15),
        }
    }
}

/// A label selector in the API's query syntax, e.g. `app=ds,tier in (web,api)`.
pub fn selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> =
        selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}
