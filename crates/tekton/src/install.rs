//! Applying a plan and waiting for Tekton, against any kube [`Client`].
//!
//! The loops poll on tokio's clock (so tests pause it), bound every request by a timeout (so a
//! silent API server cannot hang them), and report a part's reason whenever it changes.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use wait::Status;

use crate::readiness::task_resource;
use crate::{
    CONTROLLER, Error, FIELD_MANAGER, NAMESPACE, PROBE_TASK, Plan, Release, Step, WEBHOOK,
    WEBHOOK_CONFIGURATIONS, admission_status, crd_established, deployment_available, object_ref, probe_task,
    tekton_status, webhook_configured,
};

/// Deadlines and the poll interval of the wait loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long the CRDs may take to become `Established`.
    pub crd_timeout: Duration,
    /// How long Tekton may take to become ready after the apply.
    pub ready_timeout: Duration,
    /// The pause between two checks.
    pub poll: Duration,
    /// How long one request may take; separate from the deadlines so the last check before a
    /// deadline still gets its answer.
    pub request_timeout: Duration,
}

impl Default for Timing {
    /// 60 s for CRDs, 5 min for Tekton (image pulls on a fresh kind node), checks every second,
    /// 10 s per request.
    fn default() -> Self {
        Timing {
            crd_timeout: Duration::from_secs(60),
            ready_timeout: Duration::from_secs(300),
            poll: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What the installer did or is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An object was server-side applied.
    Applied {
        /// `Kind/namespace/name`.
        object: String,
    },
    /// A part is not ready yet, with a new reason.
    Waiting {
        /// The part, e.g. `CRD tasks.tekton.dev` or `admission webhook`.
        what: String,
        /// Why it is not ready.
        reason: String,
    },
    /// A part became ready.
    Ready {
        /// The part.
        what: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Applied { object } => write!(f, "applied {object}"),
            Event::Waiting { what, reason } => write!(f, "waiting for {what}: {reason}"),
            Event::Ready { what } => write!(f, "{what} ready"),
        }
    }
}

/// The callback that hears about events.
type EventFn = Box<dyn FnMut(&Event) + Send + Sync>;

/// Installs a verified release into a cluster and waits until Tekton is usable.
pub struct Installer {
    client: Client,
    timing: Timing,
    probe_namespace: String,
    on_event: Option<EventFn>,
    last: HashMap<String, String>,
}

impl Installer {
    /// An installer using `client`, default [`Timing`], probing admission in namespace `default`.
    pub fn new(client: Client) -> Self {
        Installer {
            client,
            timing: Timing::default(),
            probe_namespace: "default".into(),
            on_event: None,
            last: HashMap::new(),
        }
    }

    /// Sets the deadlines, poll interval and request timeout.
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Sets the namespace of the admission probe's dry-run Task (`default` unless changed).
    pub fn probe_namespace(mut self, namespace: &str) -> Self {
        self.probe_namespace = namespace.into();
        self
    }

    /// Calls `f` with every event (they are also logged through `tracing`).
    pub fn on_event(mut self, f: impl FnMut(&Event) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Box::new(f));
        self
    }

    /// Applies `release` in plan order, waiting for its CRDs, then waits until Tekton is ready.
    pub async fn install(&mut self, release: &Release) -> Result<(), Error> {
        self.apply(&release.plan()).await?;
        self.wait_ready().await
    }

    /// Runs the plan's steps in order; the first failure stops it.
    pub async fn apply(&mut self, plan: &Plan) -> Result<(), Error> {
        for step in plan.steps() {
            match step {
                Step::Apply(object) => self.apply_object(object).await?,
                Step::WaitEstablished(crds) => self.wait_established(crds).await?,
            }
        }
        Ok(())
    }

    /// Server-side applies one object with field manager `xtask`, forcing ownership conflicts.
    async fn apply_object(&mut self, object: &DynamicObject) -> Result<(), Error> {
        let object_ref = object_ref(object);
        let resource = api_resource(object);
        let name = object.metadata.name.as_deref().unwrap_or_default();
        // Scope comes from the manifest: Tekton's release names the namespace of every
        // namespaced object, so no discovery round trip is needed.
        let api: Api<DynamicObject> = match object.metadata.namespace.as_deref() {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        // Forced, because re-running over an install made by kubectl must take the fields over
        // rather than stop at a conflict.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(name, &params, &Patch::Apply(&with_protocols(object)))
            .await
            .map_err(|e| Error::Apply { object: object_ref.clone(), source: Box::new(e) })?;
        self.emit(Event::Applied { object: object_ref });
        Ok(())
    }

    /// Waits until every named CRD is `Established`, within [`Timing::crd_timeout`].
    pub async fn wait_established(&mut self, crds: &[String]) -> Result<(), Error> {
        let started = Instant::now();
        let deadline = started + self.timing.crd_timeout;
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let mut pending: Vec<(String, String)> =
            crds.iter().map(|c| (c.clone(), "not checked yet".to_string())).collect();
        loop {
            let mut still = Vec::new();
            for (crd, _) in pending {
                let what = format!("CRD {crd}");
                let status = match get(&api, &crd, self.timing.request_timeout).await {
                    Ok(object) => crd_established(&object),
                    Err(reason) => Status::NotYet(reason),
                };
                match status {
                    Status::Ready => self.emit(Event::Ready { what }),
                    Status::Failed(reason) => return Err(Error::Failed { what, reason }),
                    Status::NotYet(reason) => {
                        self.waiting(&what, &reason);
                        still.push((crd, reason));
                    }
                }
            }
            pending = still;
            let Some((crd, last)) = pending.first() else { return Ok(()) };
            if Instant::now() >= deadline {
                return Err(Error::CrdNotEstablished {
                    crd: crd.clone(),
                    last: last.clone(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(self.timing.poll.min(deadline - Instant::now())).await;
        }
    }

    /// Waits until the controller and webhook Deployments are available and the admission
    /// webhook answers, within [`Timing::ready_timeout`]; fails at once on a terminal state.
    pub async fn wait_ready(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        let deadline = started + self.timing.ready_timeout;
        loop {
            let parts = self.check().await;
            for (what, status) in &parts {
                match status {
                    Status::Failed(reason) => {
                        return Err(Error::Failed { what: what.clone(), reason: reason.clone() });
                    }
                    Status::NotYet(reason) => self.waiting(what, reason),
                    Status::Ready => {}
                }
            }
            let pending = match tekton_status(&parts) {
                Status::Ready => {
                    self.emit(Event::Ready { what: "tekton".into() });
                    return Ok(());
                }
                Status::NotYet(reason) | Status::Failed(reason) => reason,
            };
            if Instant::now() >= deadline {
                return Err(Error::NotReady { waited: started.elapsed(), pending });
            }
            tokio::time::sleep(self.timing.poll.min(deadline - Instant::now())).await;
        }
    }

    /// Checks the parts of Tekton in the order they can become ready, stopping at the first one
    /// that is not: later checks would only fail for the same cause.
    async fn check(&mut self) -> Vec<(String, Status)> {
        let limit = self.timing.request_timeout;
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), NAMESPACE);
        let mut parts = Vec::new();
        for name in [CONTROLLER, WEBHOOK] {
            let status = match get(&deployments, name, limit).await {
                Ok(d) => deployment_available(&d),
                Err(reason) => Status::NotYet(reason),
            };
            parts.push((format!("deployment {NAMESPACE}/{name}"), status));
        }
        if parts.iter().any(|(_, s)| !s.is_ready()) {
            return parts;
        }
        for (kind, name) in WEBHOOK_CONFIGURATIONS {
            let resource =
                ApiResource::from_gvk(&GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind));
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            let status = match get(&api, name, limit).await {
                Ok(config) => webhook_configured(&config),
                Err(reason) => Status::NotYet(reason),
            };
            parts.push((format!("{kind} {name}"), status));
        }
        if parts.iter().any(|(_, s)| !s.is_ready()) {
            return parts;
        }
        let status = self.probe_admission().await;
        parts.push(("admission webhook".into(), status));
        parts
    }

    /// Dry-run creates [`probe_task`]: ready once the admission chain accepts it.
    async fn probe_admission(&self) -> Status {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.probe_namespace, &task_resource());
        let params = PostParams { dry_run: true, field_manager: Some(FIELD_MANAGER.into()) };
        let task = probe_task(&self.probe_namespace);
        match tokio::time::timeout(self.timing.request_timeout, api.create(&params, &task)).await {
            Ok(outcome) => admission_status(&outcome),
            Err(_) => Status::NotYet(format!("no answer to the dry-run create of Task {PROBE_TASK}")),
        }
    }

    /// Reports a part's reason when it differs from the last one reported.
    fn waiting(&mut self, what: &str, reason: &str) {
        if self.last.get(what).is_some_and(|r| r == reason) {
            return;
        }
        self.last.insert(what.to_string(), reason.to_string());
        self.emit(Event::Waiting { what: what.to_string(), reason: reason.to_string() });
    }

    fn emit(&mut self, event: Event) {
        if let Event::Ready { what } = &event {
            self.last.remove(what);
        }
        tracing::info!(target: "tekton", "{event}");
        if let Some(f) = self.on_event.as_mut() {
            f(&event);
        }
    }
}

/// Gets one object within `limit`; a missing object or an error is a reason to wait.
async fn get<K>(api: &Api<K>, name: &str, limit: Duration) -> Result<K, String>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug,
{
    match tokio::time::timeout(limit, api.get(name)).await {
        Ok(Ok(object)) => Ok(object),
        Ok(Err(kube::Error::Api(status))) if status.code == 404 => Err("does not exist yet".into()),
        Ok(Err(e)) => Err(format!("cannot read it: {e}")),
        Err(_) => Err("no answer from the API server".into()),
    }
}

/// The API resource of a manifest object, its plural guessed from the kind.
///
/// The guess is right for every kind in Tekton's release (the apply test checks each path).
fn api_resource(object: &DynamicObject) -> ApiResource {
    let (api_version, kind) =
        object.types.as_ref().map_or(("", ""), |t| (t.api_version.as_str(), t.kind.as_str()));
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// Writes `protocol: TCP` on every port that omits it (a Service's, a pod template's
/// containers'): the protocol is a key of those lists, and Kubernetes 1.20's server-side apply
/// refuses an element without it ("omits key field \"protocol\""), where later releases
/// default it to TCP as this does. Tekton's release and the controllers' manifests omit it.
pub fn with_protocols(object: &DynamicObject) -> DynamicObject {
    let mut object = object.clone();
    fill_protocols(&mut object);
    object
}

/// [`with_protocols`] in place.
fn fill_protocols(object: &mut DynamicObject) {
    let fill = |ports: Option<&mut serde_json::Value>| {
        for port in ports.and_then(|p| p.as_array_mut()).into_iter().flatten() {
            if let Some(map) = port.as_object_mut() {
                map.entry("protocol").or_insert_with(|| "TCP".into());
            }
        }
    };
    fill(object.data.pointer_mut("/spec/ports"));
    for list in ["/spec/template/spec/containers", "/spec/template/spec/initContainers", "/spec/containers"] {
        let Some(containers) = object.data.pointer_mut(list).and_then(|c| c.as_array_mut()) else {
            continue;
        };
        for container in containers {
            fill(container.get_mut("ports"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_without_a_protocol_get_tcp_and_others_keep_theirs() {
        let mut service: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        fill_protocols(&mut service);
        assert_eq!(service.data["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(service.data["spec"]["ports"][1]["protocol"], "UDP");
        let mut deployment: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 9090}]}]}}}
        }))
        .unwrap();
        fill_protocols(&mut deployment);
        assert_eq!(
            deployment.data["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
            "TCP"
        );
    }
}
