//! The seam between components and where they run: a [`Backend`] turns a component's workload
//! into actions (argv, container specs), carries them out, hands back the endpoint and the probe
//! to wait on, and removes what it created. Adding a backend is one new file here plus one line
//! in [`for_name`].

mod forward;
mod identity;
pub mod kube;
pub mod local;
pub mod podman;

use std::sync::Arc;

use crate::error::InfraError;
use crate::model::{Addr, Endpoint, EndpointKind, EndpointSpec, Image, Manifests, Placement, Service};
use crate::plan::Step;
use crate::run::Run;
use crate::runner::{BoxFuture, Progress, StepFailure};
use crate::state::Resource;

/// A service that started: what it publishes and how to know it is ready.
pub struct Started {
    /// The endpoint, published to dependents once the probe passes.
    pub endpoint: Endpoint,
    /// The readiness probe (fails fast when the process or container dies).
    pub probe: Box<dyn wait::Probe>,
    /// One line for people, e.g. `127.0.0.1:5432`.
    pub summary: String,
}

/// Where and how workloads run: local processes, podman containers, later kind and clusters.
pub trait Backend: Send + Sync + 'static {
    /// Its name (`local`, `podman`), recorded with every resource it creates.
    fn name(&self) -> &'static str;

    /// Where a component's workload runs.
    fn placement(&self, run: &Run, component: &str) -> Placement;

    /// The address a service is planned at, before it runs (dry runs show these).
    fn planned_addr(&self, component: &str, service: &Service) -> (Addr, Addr);

    /// The endpoint a service is planned to publish, for its dependents' planned workloads:
    /// what [`endpoint`] makes of its spec at its planned address, unless the backend publishes
    /// something else (a cluster's own API instead of envtest's).
    fn planned_endpoint(&self, _run: &Run, component: &str, service: &Service) -> Endpoint {
        let (host, inside) = self.planned_addr(component, service);
        endpoint(&service.endpoint, host, inside, None)
    }

    /// A step that must run before any service starts (podman: the run's network).
    fn setup(&self) -> Option<String> {
        None
    }

    /// What the setup step runs, as values (argv, objects), for plans.
    fn setup_actions(&self, _run: &Run) -> Vec<String> {
        Vec::new()
    }

    /// Whether its `kube-api` component runs etcd and kube-apiserver from `KUBEBUILDER_ASSETS`
    /// on this machine (local), rather than from images (podman) or as the cluster it runs
    /// everything in (kind, cluster).
    fn kube_api_from_assets(&self) -> bool {
        false
    }

    /// Whether it runs Kubernetes manifests (Tekton, a controller); other backends skip them.
    fn kubernetes(&self) -> bool {
        false
    }

    /// How a job reaches a service's endpoint, for plans (kind: through a port-forward).
    fn job_route(&self, _component: &str) -> String {
        String::new()
    }

    /// A step preparing the image of a manifests workload (the controller): its description.
    fn prepare_image(&self, _component: &str, _image: &Image) -> Option<String> {
        None
    }

    /// Carries out [`Backend::prepare_image`]'s step.
    fn run_prepare_image(
        self: Arc<Self>,
        _run: Arc<Run>,
        component: String,
        _image: Image,
        _progress: Progress,
    ) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            Err(StepFailure::new(format!("the {} backend builds no image for {component}", self.name())))
        })
    }

    /// A step putting a built image where the workloads find it (kind: loaded into the node).
    fn load(&self, _component: &str, _image: &Image) -> Option<String> {
        None
    }

    /// Carries out the load step of `component`'s built image.
    fn run_load(
        self: Arc<Self>,
        _run: Arc<Run>,
        component: String,
        _progress: Progress,
    ) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            Err(StepFailure::new(format!("the {} backend loads no image for {component}", self.name())))
        })
    }

    /// What applying a manifests workload does, for plans: the API step's and the ready step's lines.
    fn render_manifests(
        &self,
        _run: &Run,
        _component: &str,
        _manifests: &Manifests,
    ) -> (Vec<String>, Vec<String>) {
        (Vec::new(), Vec::new())
    }

    /// Applies a manifests workload: its API (namespaces, CRDs Established) when `api`, else the
    /// rest until ready.
    fn apply(
        self: Arc<Self>,
        _run: Arc<Run>,
        component: String,
        _api: bool,
        _progress: Progress,
    ) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            Err(StepFailure::new(format!("the {} backend applies no manifests ({component})", self.name())))
        })
    }

    /// A step keeping the migrated database of `database` as a template for later runs: its
    /// description and actions; `None` where there is no snapshot cache.
    fn snapshot(&self, _run: &Run, _database: &str) -> Option<(String, Vec<String>)> {
        None
    }

    /// How long a step is expected to take on this backend, from published timings (for the
    /// expected critical path of a dry run); `None` when unknown.
    fn estimate(&self, _step: &Step) -> Option<std::time::Duration> {
        None
    }

    /// Carries out the setup step.
    fn run_setup(self: Arc<Self>, _run: Arc<Run>) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async { Ok(String::new()) })
    }

    /// A step preparing a service's artifact (a build) before it starts: its description.
    fn prepare(&self, component: &str, service: &Service) -> Option<String>;

    /// Carries out the prepare step; the artifact is recorded in `run` for [`Backend::start`].
    fn run_prepare(
        self: Arc<Self>,
        run: Arc<Run>,
        component: String,
        service: Service,
        progress: Progress,
    ) -> BoxFuture<Result<String, StepFailure>>;

    /// What starting the service does, as lines of values: argv, files, environment (secrets hidden).
    fn render(&self, run: &Run, component: &str, service: &Service) -> Vec<String>;

    /// Starts a component's service (rendering its workload with the backend's placement and
    /// port), records what it created in the run, and returns its endpoint and probe.
    fn start(
        self: Arc<Self>,
        run: Arc<Run>,
        component: String,
        progress: Progress,
    ) -> BoxFuture<Result<Started, StepFailure>>;

    /// Waits until no blocking operation started by an aborted step is still running.
    fn settle(&self) -> wait::BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Evidence for a diagnosis after a failure (container states and logs), saved with the run.
    fn collect_logs(&self, _run: &Run) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Where a service in a container is planned: its port on loopback from this machine (published
/// or forwarded), and `component:port` from the backend's other workloads.
pub(crate) fn container_addrs(component: &str, service: &Service) -> (Addr, Addr) {
    (
        Addr { host: "127.0.0.1".into(), port: service.port },
        Addr { host: service.dns_name(component).to_string(), port: service.port },
    )
}

/// The container port readiness is served on, when it is a named port of the service.
pub(crate) fn ready_port(service: &Service) -> Option<u16> {
    match &service.endpoint {
        EndpointSpec::Http { ready_port: Some(name), .. } => {
            service.ports.iter().find(|p| &p.name == name).map(|p| p.port)
        }
        _ => None,
    }
}

/// Removes one resource, by the backend that created it.
pub fn remove(resource: &Resource) -> Result<(), InfraError> {
    match resource {
        Resource::Process { .. } => local::remove(resource),
        Resource::Background { .. } => crate::background::finish(resource),
        Resource::Cluster { .. } | Resource::Namespace { .. } => kube::remove(resource),
        Resource::Container { .. } | Resource::Network { .. } | Resource::Secret { .. } => {
            podman::remove(resource)
        }
    }
}

/// The backend called `name` with its default options, or what exists.
pub fn for_name(name: &str) -> Result<Arc<dyn Backend>, InfraError> {
    with_options(name, &kube::KubeOptions::default())
}

/// The backend called `name`; the Kubernetes ones take `kube`'s options.
pub fn with_options(name: &str, kube: &kube::KubeOptions) -> Result<Arc<dyn Backend>, InfraError> {
    match name {
        "local" => Ok(Arc::new(local::Local::new())),
        "podman" => Ok(Arc::new(podman::Podman::from_env())),
        "kind" => Ok(Arc::new(kube::Kube::kind(kube.clone())?)),
        "cluster" => Ok(Arc::new(kube::Kube::cluster(kube.clone())?)),
        other => Err(InfraError::Invalid(format!("no backend `{other}` (backends: {})", NAMES.join(", ")))),
    }
}

/// Every backend's name.
pub const NAMES: [&str; 4] = ["local", "podman", "kind", "cluster"];

/// The endpoint a service's spec publishes at these addresses; `ready` is where its named
/// readiness port is reached from this machine, if it has one.
pub fn endpoint(spec: &EndpointSpec, host: Addr, inside: Addr, ready: Option<Addr>) -> Endpoint {
    let kind = match spec {
        EndpointSpec::Postgres { user, database, password } => EndpointKind::Postgres {
            user: user.clone(),
            database: database.clone(),
            password: password.clone(),
        },
        EndpointSpec::Redis { password } => EndpointKind::Redis { password: password.clone() },
        // Where a plan expects the files; the backend that starts it publishes the real ones.
        EndpointSpec::KubeApi { namespace, clients } => EndpointKind::KubeApi {
            namespace: namespace.clone(),
            kubeconfig: Some("<kube-api>/datastorage.kubeconfig".into()),
            inside: None,
            tokens: clients.iter().map(|c| (c.clone(), format!("<kube-api>/tokens/{c}").into())).collect(),
        },
        EndpointSpec::Http { ready_path, ca, .. } => EndpointKind::Http {
            ready_url: Some(format!("http://{}{ready_path}", ready.as_ref().unwrap_or(&host))),
            ca: ca.clone(),
        },
    };
    Endpoint { kind, host, inside }
}

/// The readiness probe of an endpoint, from this machine.
pub fn probe_for(endpoint: &Endpoint) -> Result<Box<dyn wait::Probe>, StepFailure> {
    let url = endpoint.url(crate::model::View::Host);
    let bad = |e: wait::ProbeError| StepFailure::new(e.to_string());
    Ok(match &endpoint.kind {
        EndpointKind::Postgres { .. } => Box::new(wait::PostgresProbe::from_url(url.expose()).map_err(bad)?),
        EndpointKind::Redis { .. } => Box::new(wait::RedisProbe::from_url(url.expose()).map_err(bad)?),
        // Started only once /readyz said ok: from then on, its port answering is enough.
        EndpointKind::KubeApi { .. } => Box::new(wait::TcpProbe::new(endpoint.host.to_string())),
        EndpointKind::Http { ready_url, .. } => {
            let ready = ready_url.clone().unwrap_or_else(|| url.expose().to_string());
            Box::new(wait::HttpProbe::get(&ready).map_err(bad)?.status(200))
        }
    })
}

/// A step failure whose message is `e`: how every backend turns its crates' errors into one.
pub(crate) fn failure(e: impl std::fmt::Display) -> StepFailure {
    StepFailure::new(e.to_string())
}

/// The most blocking operations (server start-ups, engine calls) in flight at once.
const MAX_BLOCKING: u32 = 16;

/// Blocking work run off the async threads, counted so an aborted run can wait for it to end
/// before tearing down (an aborted task does not stop a blocking thread).
#[derive(Clone)]
pub(crate) struct Blocking(Arc<tokio::sync::Semaphore>);

impl Blocking {
    pub(crate) fn new() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(MAX_BLOCKING as usize)))
    }

    /// Runs `f` on a blocking thread; `what` names it in an error.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T, StepFailure> + Send + 'static,
    ) -> Result<T, StepFailure> {
        let permit = self.0.clone().acquire_owned().await.map_err(|_| StepFailure::new("shutting down"))?;
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await;
        joined.unwrap_or_else(|e| Err(StepFailure::new(format!("{what}: {e}"))))
    }

    /// Waits until nothing runs.
    pub(crate) async fn settle(&self) {
        let _all = self.0.acquire_many(MAX_BLOCKING).await;
    }
}
