//! Probes for Kubernetes objects, fed by kube-rs reflectors rather than by polling the API server.
//!
//! Each probe starts its watches on the first check (so building one needs no runtime), keeps
//! the latest objects in a reflector store, and computes the pure status from the store at every
//! check, which is how time-based rules (Unschedulable, ErrImagePull) fire without a new event.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::{
    PodRules, collect_workload, crd_status, deployment_status, job_status, pod_status, service_status,
};
use crate::{BoxFuture, Detail, Probe, Status};

/// How many log lines per container a diagnosis collects.
const LOG_LINES: i64 = 30;

/// Waits for one Kubernetes object to be ready: a Deployment, Pod, Job, CRD or Service.
pub struct KubeProbe {
    client: Client,
    namespace: String,
    name: String,
    kind: Kind,
    rules: PodRules,
    watches: Option<Watches>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deployment,
    Pod,
    Job,
    Crd,
    Service,
}

enum Watches {
    Deployment { deployments: Watched<Deployment>, pods: Option<(String, Watched<Pod>)> },
    Pod(Watched<Pod>),
    Job(Watched<Job>),
    Crd(Watched<CustomResourceDefinition>),
    Service(Watched<EndpointSlice>),
}

impl KubeProbe {
    fn new(client: Client, namespace: &str, name: &str, kind: Kind) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            name: name.into(),
            kind,
            rules: PodRules::default(),
            watches: None,
        }
    }

    /// A Deployment rolled out and available, failing on its new pods' terminal states.
    pub fn deployment(client: Client, namespace: &str, name: &str) -> Self {
        Self::new(client, namespace, name, Kind::Deployment)
    }

    /// A Pod that is Ready.
    pub fn pod(client: Client, namespace: &str, name: &str) -> Self {
        Self::new(client, namespace, name, Kind::Pod)
    }

    /// A Job that completed.
    pub fn job(client: Client, namespace: &str, name: &str) -> Self {
        Self::new(client, namespace, name, Kind::Job)
    }

    /// A CustomResourceDefinition that is Established (cluster-scoped: no namespace).
    pub fn crd(client: Client, name: &str) -> Self {
        Self::new(client, "", name, Kind::Crd)
    }

    /// A Service with at least one ready endpoint in its EndpointSlices.
    pub fn service(client: Client, namespace: &str, name: &str) -> Self {
        Self::new(client, namespace, name, Kind::Service)
    }

    /// Uses `rules` to decide when pod states are terminal.
    pub fn rules(mut self, rules: PodRules) -> Self {
        self.rules = rules;
        self
    }

    fn start(&self) -> Watches {
        let by_name = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let ns = self.namespace.as_str();
        let client = self.client.clone();
        match self.kind {
            Kind::Deployment => Watches::Deployment {
                deployments: Watched::start(Api::namespaced(client, ns), by_name),
                pods: None,
            },
            Kind::Pod => Watches::Pod(Watched::start(Api::namespaced(client, ns), by_name)),
            Kind::Job => Watches::Job(Watched::start(Api::namespaced(client, ns), by_name)),
            Kind::Crd => Watches::Crd(Watched::start(Api::all(client), by_name)),
            Kind::Service => {
                let labels = format!("kubernetes.io/service-name={}", self.name);
                Watches::Service(Watched::start(
                    Api::namespaced(client, ns),
                    watcher::Config::default().labels(&labels),
                ))
            }
        }
    }

    fn status(&mut self) -> Status {
        if self.watches.is_none() {
            self.watches = Some(self.start());
        }
        let watches = self.watches.as_mut().expect("just started");
        let now = Timestamp::now();
        let missing = |what: &str| Status::NotYet(format!("{what} does not exist yet"));
        match watches {
            Watches::Deployment { deployments, pods } => {
                let d = match deployments.single() {
                    Ok(Some(d)) => d,
                    Ok(None) => return missing(&format!("deployment {}/{}", self.namespace, self.name)),
                    Err(reason) => return Status::NotYet(reason),
                };
                let selector =
                    d.spec.as_ref().map(|s| super::selector_string(&s.selector)).unwrap_or_default();
                if pods.as_ref().is_none_or(|(s, _)| *s != selector) {
                    let api = Api::namespaced(self.client.clone(), &self.namespace);
                    *pods = Some((
                        selector.clone(),
                        Watched::start(api, watcher::Config::default().labels(&selector)),
                    ));
                }
                let pods = pods.as_ref().map(|(_, w)| w.objects()).unwrap_or_default();
                deployment_status(&d, &pods, &self.rules, now)
            }
            Watches::Pod(w) => match w.single() {
                Ok(Some(p)) => pod_status(&p, &self.rules, now),
                Ok(None) => missing(&format!("pod {}/{}", self.namespace, self.name)),
                Err(reason) => Status::NotYet(reason),
            },
            Watches::Job(w) => match w.single() {
                Ok(Some(j)) => job_status(&j),
                Ok(None) => missing(&format!("job {}/{}", self.namespace, self.name)),
                Err(reason) => Status::NotYet(reason),
            },
            Watches::Crd(w) => match w.single() {
                Ok(Some(c)) => crd_status(&c),
                Ok(None) => missing(&format!("customresourcedefinition {}", self.name)),
                Err(reason) => Status::NotYet(reason),
            },
            Watches::Service(w) => match w.listed() {
                Ok(()) => service_status(&self.name, &w.objects()),
                Err(reason) => Status::NotYet(reason),
            },
        }
    }

    /// The label selector of the pods behind the object, for a diagnosis.
    fn pod_selector(&self) -> Option<ListParams> {
        match (&self.kind, &self.watches) {
            (Kind::Deployment, Some(Watches::Deployment { pods: Some((selector, _)), .. })) => {
                Some(ListParams::default().labels(selector))
            }
            (Kind::Pod, _) => Some(ListParams::default().fields(&format!("metadata.name={}", self.name))),
            (Kind::Job, _) => Some(ListParams::default().labels(&format!("job-name={}", self.name))),
            _ => None,
        }
    }
}

impl Probe for KubeProbe {
    fn name(&self) -> String {
        let kind = format!("{:?}", self.kind).to_lowercase();
        match self.kind {
            Kind::Crd => format!("{kind} {}", self.name),
            _ => format!("{kind} {}/{}", self.namespace, self.name),
        }
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move { self.status() })
    }

    fn diagnose(&mut self) -> BoxFuture<'_, Vec<Detail>> {
        Box::pin(async move {
            let Some(params) = self.pod_selector() else {
                return vec![Detail::Note { text: format!("{}: {}", self.name(), self.status()) }];
            };
            match collect_workload(&self.client, &self.namespace, &params, LOG_LINES).await {
                Ok(report) => vec![Detail::Kubernetes(report)],
                Err(e) => vec![Detail::Note { text: format!("could not collect pod evidence: {e}") }],
            }
        })
    }
}

/// A reflector store kept current by a background watch, and the watch's latest error.
struct Watched<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    error: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Watched<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn start(api: Api<K>, config: watcher::Config) -> Self {
        let (store, writer) = reflector::store();
        let error = Arc::new(Mutex::new(None));
        let seen = error.clone();
        let events = reflector::reflector(writer, watcher(api, config)).default_backoff();
        let task = tokio::spawn(async move {
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                *seen.lock().expect("error lock") = event.err().map(|e| crate::error_chain(&e));
            }
        });
        Self { store, error, task }
    }

    /// `Ok` once the initial list has arrived; otherwise why not.
    fn listed(&self) -> Result<(), String> {
        if self.store.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok()) {
            return Ok(());
        }
        Err(match &*self.error.lock().expect("error lock") {
            Some(e) => format!("watch failed, retrying: {e}"),
            None => format!("waiting for the first list of {}", K::plural(&())),
        })
    }

    fn objects(&self) -> Vec<K> {
        self.store.state().iter().map(|o| (**o).clone()).collect()
    }

    fn single(&self) -> Result<Option<K>, String> {
        self.listed()?;
        Ok(self.objects().into_iter().next())
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Drop for Watched<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
