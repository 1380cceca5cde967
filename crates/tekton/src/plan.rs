//! The apply order of a release, as pure data.
//!
//! Namespaces come first because everything namespaced needs one; CRDs next, followed by a wait
//! for `Established`, because a custom resource (or a webhook rule naming one) is refused until
//! its CRD is served; then everything else in manifest order, which upstream already orders
//! (RBAC before the Deployments that use it). Webhook configurations go last: with
//! `failurePolicy: Fail` they would make the API server call a webhook that is not running yet for
//! every object they intercept (the config webhook intercepts Tekton's own ConfigMaps).

use std::fmt;

use kube::core::DynamicObject;

/// One step of an install.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Server-side apply this object.
    Apply(Box<DynamicObject>),
    /// Wait until every named CRD has the condition `Established=True`.
    WaitEstablished(Vec<String>),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Apply(object) => f.write_str(&object_ref(object)),
            Step::WaitEstablished(crds) => write!(f, "wait for {} CRDs Established", crds.len()),
        }
    }
}

/// The ordered steps that install a verified release; built by [`Release::plan`](crate::Release::plan).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    steps: Vec<Step>,
}

impl Plan {
    /// Only a [`Release`](crate::Release) builds plans, so an unverified file never reaches the
    /// installer.
    pub(crate) fn new(objects: &[DynamicObject]) -> Plan {
        Plan { steps: apply_order(objects) }
    }

    /// The plan of manifests that are not a pinned release: the controller under test's own
    /// files, read from the workspace, ordered by the same rules.
    pub fn unpinned(objects: &[DynamicObject]) -> Plan {
        Plan::new(objects)
    }

    /// Splits the plan after its API part (namespaces, CRDs and the wait for them to be
    /// Established): what dependents need before the rest (Deployments, webhooks) is ready.
    pub fn split_api(&self) -> (Plan, Plan) {
        let cut = self.steps.iter().rposition(|s| matches!(s, Step::WaitEstablished(_))).map_or(0, |i| i + 1);
        (Plan { steps: self.steps[..cut].to_vec() }, Plan { steps: self.steps[cut..].to_vec() })
    }

    /// The plan without what only works with Tekton's own pods running ([`NEEDS_PODS`]), for
    /// a cluster that cannot pull Tekton's images; with the references of what was left out.
    pub fn without_pods(&self) -> (Plan, Vec<String>) {
        let (mut kept, mut skipped) = (Vec::new(), Vec::new());
        for step in &self.steps {
            match step {
                Step::Apply(o) if o.types.as_ref().is_some_and(|t| NEEDS_PODS.contains(&t.kind.as_str())) => {
                    skipped.push(object_ref(o));
                }
                other => kept.push(other.clone()),
            }
        }
        (Plan { steps: kept }, skipped)
    }

    /// The plan with every `default: ""` taken out of its CRDs' schemas, and how many there
    /// were: Kubernetes before 1.21 stores an empty-string default as null and then refuses the
    /// CRD ("default: Invalid value: \"null\""). Only for such a server, and said where used:
    /// a field whose default was "" then has none.
    pub fn without_empty_string_defaults(&self) -> (Plan, usize) {
        let mut removed = 0;
        let steps = self
            .steps
            .iter()
            .map(|step| match step {
                Step::Apply(o) if o.types.as_ref().is_some_and(|t| t.kind == "CustomResourceDefinition") => {
                    let mut o = o.clone();
                    removed += drop_empty_defaults(&mut o.data);
                    Step::Apply(o)
                }
                other => other.clone(),
            })
            .collect();
        (Plan { steps }, removed)
    }

    /// The steps in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// One line per step (`Kind/namespace/name`, or the wait), for logs and snapshots.
    pub fn lines(&self) -> Vec<String> {
        self.steps.iter().map(Step::to_string).collect()
    }
}

/// Removes, anywhere under `value`, object keys `default` whose value is the empty string.
fn drop_empty_defaults(value: &mut serde_json::Value) -> usize {
    match value {
        serde_json::Value::Object(map) => {
            let mut n = 0;
            if map.get("default").is_some_and(|d| d.as_str() == Some("")) {
                map.remove("default");
                n += 1;
            }
            n + map.values_mut().map(drop_empty_defaults).sum::<usize>()
        }
        serde_json::Value::Array(items) => items.iter_mut().map(drop_empty_defaults).sum(),
        _ => 0,
    }
}

/// Whether an apply was refused for an empty-string default stored as null (Kubernetes
/// before 1.21), which [`Plan::without_empty_string_defaults`] works around.
pub fn refused_empty_default(error: &crate::Error) -> bool {
    error.to_string().contains(".default: Invalid value: \"null\"")
}

/// Kinds that need Tekton's pods: its Deployments, the autoscaler of its webhook, and the
/// webhook configurations, which would send Tekton's objects to a webhook that never answers.
pub const NEEDS_PODS: [&str; 4] = [
    "Deployment",
    "HorizontalPodAutoscaler",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
];

/// Orders `objects`: Namespaces, CRDs, the CRD wait, the rest in manifest order, webhook
/// configurations last.
pub fn apply_order(objects: &[DynamicObject]) -> Vec<Step> {
    let mut ranked: Vec<(Rank, &DynamicObject)> = objects.iter().map(|o| (rank(o), o)).collect();
    // A stable sort keeps manifest order within each rank.
    ranked.sort_by_key(|(r, _)| *r);
    let crds: Vec<String> = ranked
        .iter()
        .filter(|(r, _)| *r == Rank::Crd)
        .map(|(_, o)| o.metadata.name.clone().unwrap_or_default())
        .collect();
    let mut steps = Vec::with_capacity(objects.len() + 1);
    let mut waited = crds.is_empty();
    for (r, object) in ranked {
        if !waited && r > Rank::Crd {
            steps.push(Step::WaitEstablished(crds.clone()));
            waited = true;
        }
        steps.push(Step::Apply(Box::new(object.clone())));
    }
    if !waited {
        steps.push(Step::WaitEstablished(crds));
    }
    steps
}

/// `Kind/namespace/name`, or `Kind/name` for a cluster-scoped object.
pub fn object_ref(object: &DynamicObject) -> String {
    let kind = object.types.as_ref().map_or("<no kind>", |t| t.kind.as_str());
    let name = object.metadata.name.as_deref().unwrap_or("<no name>");
    match object.metadata.namespace.as_deref() {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Namespace,
    Crd,
    Other,
    Webhook,
}

fn rank(object: &DynamicObject) -> Rank {
    let Some(types) = &object.types else { return Rank::Other };
    let group = types.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, types.kind.as_str()) {
        ("", "Namespace") => Rank::Namespace,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Rank::Crd,
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => Rank::Webhook,
        _ => Rank::Other,
    }
}
