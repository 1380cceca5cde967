//! The Kubernetes backends: `kind` (a kind cluster xtask creates, or reuses with `--reuse`) and
//! `cluster` (an existing cluster from a kubeconfig). Both put a run in a namespace of its own,
//! apply each service as typed objects ([`crate::kubernetes`]) with server-side apply, wait for
//! the Deployment with fail-fast pod rules, then for the service's own probe through a kube-rs
//! port-forward on a free loopback port, which is also how migrations and tests reach it.
//! Built images are loaded into the kind node (unless it has them) or pushed to `--registry`.

use super::failure;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use container::Engine;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, AttachParams, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::DynamicObject;
use kube::{Client, Config};
use tokio::sync::OnceCell;

use super::forward::{self, Forward};
use super::{Backend, Blocking, Started, endpoint, probe_for};
use crate::error::InfraError;
use crate::kubernetes::{FIELD_MANAGER, Object, namespace, service_objects};
use crate::model::{
    Addr, Endpoint, EndpointKind, EndpointSpec, Image, Manifests, Placement, Service, Workload,
};
use crate::plan::{Step, StepKind};
use crate::run::{Artifact, Run};
use crate::runner::{BoxFuture, Progress, StepFailure};
use crate::state::Resource;

/// What the Kubernetes backends are told on the command line.
#[derive(Debug, Clone, Default)]
pub struct KubeOptions {
    /// The kubeconfig of an existing cluster (`cluster` backend; default: `$KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
    /// The context in it (default: its current context).
    pub context: Option<String>,
    /// Where built images are pushed for an existing cluster, e.g. `registry.example.com/team`.
    pub registry: Option<String>,
    /// Use a kind cluster of the same name if one exists, and keep it afterwards.
    pub reuse: bool,
    /// A local copy of the pinned Tekton release (offline machines); default: the cache.
    pub tekton_release: Option<PathBuf>,
    /// How much of Tekton's release is applied.
    pub tekton: TektonMode,
}

/// How much of Tekton's release a run applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TektonMode {
    /// All of it, ready when its controller and admission webhook answer.
    #[default]
    Full,
    /// Its API (CRDs Established), RBAC and configuration, without what needs Tekton's own pods
    /// (Deployments, the webhook's autoscaler, the webhook configurations): for a cluster that
    /// cannot pull Tekton's images. Tekton's objects are then stored but nothing runs them.
    CrdsOnly,
}

/// Why a run applies Tekton without its pods, as the plan and the summary say it.
const CRDS_ONLY_WHY: &str =
    "--tekton crds-only: Tekton's images cannot be pulled by this cluster, so nothing would run them";

enum Target {
    Kind(kind::Kind),
    Cluster,
}

/// The kind and cluster backends.
pub struct Kube {
    target: Target,
    options: KubeOptions,
    engine: Engine,
    blocking: Blocking,
    client: OnceCell<Client>,
    /// The API server's address, from the kubeconfig: where `kube-api` is reached.
    api: std::sync::OnceLock<Addr>,
    tekton: OnceCell<tekton::Release>,
    forwards: Mutex<Vec<Forward>>,
}

/// The kind cluster of a suite: one per suite, so `--reuse` finds it again.
pub fn cluster_name(suite: &str) -> String {
    format!("xtask-{suite}")
}

/// The run's namespace: a DNS label (63 characters at most).
pub fn namespace_name(run_id: &str) -> String {
    let name: String = format!("xtask-{run_id}")
        .to_lowercase()
        .chars()
        // `<run>` stays readable in printed plans; real run ids have no brackets.
        .map(|c| if c.is_ascii_alphanumeric() || c == '<' || c == '>' { c } else { '-' })
        .take(63)
        .collect();
    name.trim_end_matches('-').to_string()
}

/// The kind config of a suite: `manifests/kind/<suite>.yaml`.
pub fn kind_config(root: &Path, suite: &str) -> PathBuf {
    root.join("manifests").join("kind").join(format!("{suite}.yaml"))
}

/// Where downloads (the Tekton release) are kept between runs.
fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("xtask")
}

impl Kube {
    /// Forwards a free loopback port to `pod_port` of the pods `selector` picks, kept open for
    /// the run; returns the loopback port.
    async fn forward(
        &self,
        client: &Client,
        ns: &str,
        selector: &str,
        pod_port: u16,
    ) -> Result<u16, StepFailure> {
        let connect = forward::to_pods(client.clone(), ns.to_string(), selector.to_string(), pod_port);
        let fwd = Forward::start(connect).await.map_err(|e| failure(format!("port-forward: {e}")))?;
        let port = fwd.port();
        self.forwards.lock().expect("forwards lock").push(fwd);
        Ok(port)
    }

    /// The kind backend.
    pub fn kind(options: KubeOptions) -> Result<Self, InfraError> {
        let kind = kind::Kind::from_env().map_err(|e| InfraError::Invalid(e.to_string()))?;
        Ok(Self::new(Target::Kind(kind), options))
    }

    /// The backend for an existing cluster.
    pub fn cluster(options: KubeOptions) -> Result<Self, InfraError> {
        Ok(Self::new(Target::Cluster, options))
    }

    fn new(target: Target, options: KubeOptions) -> Self {
        Self {
            target,
            options,
            engine: Engine::from_env(),
            blocking: Blocking::new(),
            client: OnceCell::new(),
            api: std::sync::OnceLock::new(),
            tekton: OnceCell::new(),
            forwards: Mutex::new(Vec::new()),
        }
    }

    fn client(&self) -> Result<Client, StepFailure> {
        self.client
            .get()
            .cloned()
            .ok_or_else(|| StepFailure::new("no cluster client: the setup step did not run"))
    }

    /// The kubeconfig of the `cluster` backend.
    fn user_kubeconfig(&self) -> Option<PathBuf> {
        self.options
            .kubeconfig
            .clone()
            .or_else(|| std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()).map(PathBuf::from))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config")))
    }

    fn create_spec(&self, run: &Run) -> kind::CreateCluster {
        let mut spec =
            kind::CreateCluster::new(cluster_name(&run.suite.name), kind_config(&run.root, &run.suite.name));
        // kind waits for nothing: xtask's own probes wait for what each step needs.
        spec.kubeconfig = Some(run.dir().join("kubeconfig"));
        spec
    }

    /// The image a service's pods run: what a load step produced, else the reference.
    fn image_ref(run: &Run, component: &str, image: &Image) -> String {
        match run.artifact(component) {
            Some(Artifact::Image(r)) => r,
            _ => planned_image(image),
        }
    }

    async fn connect(&self, kubeconfig: &Path, context: Option<&str>) -> Result<Client, StepFailure> {
        let config = config_for(kubeconfig, context).await.map_err(failure)?;
        let url = &config.cluster_url;
        let port = url.port_u16().unwrap_or(if url.scheme_str() == Some("http") { 80 } else { 443 });
        let _ = self.api.set(Addr { host: url.host().unwrap_or_default().to_string(), port });
        Client::try_from(config).map_err(|e| failure(format!("{}: {e}", kubeconfig.display())))
    }

    /// DataStorage's identity in the run's namespace, its clients bound to it, and a token for
    /// the suite's tests: the cluster's own API reviews them (`kube-api` on Kubernetes).
    async fn kube_api(
        &self,
        run: &Run,
        component: &str,
        service: &Service,
        progress: &Progress,
    ) -> Result<Started, StepFailure> {
        let EndpointSpec::KubeApi { clients, .. } = &service.endpoint else {
            return Err(StepFailure::new(format!("{component}: a Kubernetes API needs its endpoint spec")));
        };
        let client = self.client()?;
        let ns = namespace_name(&run.id());
        let owner = namespace_owner(&client, &ns).await?;
        progress.say(format!("DataStorage's identity and its clients in {ns}"));
        let identity = crate::kubernetes::cluster_identity(&ns);
        let objects = crate::kubernetes::identity_objects(&run.id(), &identity, clients, Some(&owner));
        super::identity::put(&client, &objects).await?;
        // The controller runs in the cluster and mounts its own token; only the tests need one.
        let tests = crate::components::tests_account(&run.suite.name);
        let dir = run.dir().join(component).join("tokens");
        let tokens = super::identity::tokens(&client, &ns, [tests], &dir).await?;
        let api = self
            .api
            .get()
            .cloned()
            .ok_or_else(|| StepFailure::new("no API server address: the setup step did not run"))?;
        let endpoint = Endpoint {
            kind: EndpointKind::KubeApi { namespace: ns.clone(), kubeconfig: None, inside: None, tokens },
            host: api.clone(),
            inside: Addr { host: "kubernetes.default.svc".into(), port: 443 },
        };
        let probe = probe_for(&endpoint)?;
        Ok(Started {
            endpoint,
            probe,
            summary: format!(
                "the cluster's API at {api}: {} objects applied in {ns}, a token for the tests",
                objects.len()
            ),
        })
    }

    async fn release(&self, progress: &Progress) -> Result<tekton::Release, StepFailure> {
        let explicit = self.options.tekton_release.clone();
        self.tekton
            .get_or_try_init(|| async {
                let blocking = self.blocking.clone();
                let p = progress.clone();
                blocking.run("loading the Tekton release", move || load_tekton(explicit, &p)).await
            })
            .await
            .cloned()
    }
}

/// The reference an image will have before it is built: `HASH` stands for the hash of its inputs.
pub fn planned_image(image: &Image) -> String {
    match image {
        Image::Pull(r) => r.clone(),
        Image::Cargo { package, .. } => format!("localhost/xtask/{package}:HASH"),
        Image::Build { repository, .. } => format!("{repository}:HASH"),
    }
}

/// A client for `context` (or the current one) of `kubeconfig`.
pub async fn client_for(kubeconfig: &Path, context: Option<&str>) -> Result<Client, InfraError> {
    let config = config_for(kubeconfig, context).await?;
    Client::try_from(config).map_err(|e| InfraError::Invalid(format!("{}: {e}", kubeconfig.display())))
}

/// The client configuration of `context` (or the current one) of `kubeconfig`.
async fn config_for(kubeconfig: &Path, context: Option<&str>) -> Result<Config, InfraError> {
    let bad = |e: &dyn std::fmt::Display| InfraError::Invalid(format!("{}: {e}", kubeconfig.display()));
    // kube's own message names the path again, quoted twice ('"/p"').
    if !kubeconfig.exists() {
        return Err(bad(&"no such file"));
    }
    let file = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| bad(&e))?;
    let options =
        kube::config::KubeConfigOptions { context: context.map(str::to_string), ..Default::default() };
    Config::from_custom_kubeconfig(file, &options).await.map_err(|e| bad(&e))
}

/// An owner reference to the run's namespace, for the objects of the run that live outside it:
/// the garbage collector removes them once the namespace is gone.
async fn namespace_owner(client: &Client, ns: &str) -> Result<OwnerReference, StepFailure> {
    let namespace = Api::<Namespace>::all(client.clone())
        .get(ns)
        .await
        .map_err(|e| failure(format!("reading namespace {ns}: {}", error_chain(&e))))?;
    Ok(OwnerReference {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        name: ns.into(),
        uid: namespace.metadata.uid.unwrap_or_default(),
        ..Default::default()
    })
}

/// The pinned Tekton release if it is on this machine (`explicit`, else the cache), verified;
/// `None` when it would have to be downloaded.
pub fn local_tekton(explicit: Option<&Path>) -> Option<Result<tekton::Release, InfraError>> {
    let source = match explicit {
        Some(path) => tekton::Source::File(path.to_path_buf()),
        None => tekton::Source::Cache(cache_dir()),
    };
    let pin = match tekton::Pin::pinned() {
        Ok(pin) => pin,
        Err(e) => return Some(Err(InfraError::Invalid(e.to_string()))),
    };
    if explicit.is_none() && !source.path(&pin).exists() {
        return None;
    }
    Some(tekton::Release::load_pinned(&pin, &source).map_err(|e| InfraError::Invalid(e.to_string())))
}

/// The pinned Tekton release: a local copy, else the cache, else downloaded into the cache
/// once; always verified against the pin before anything is parsed.
fn load_tekton(explicit: Option<PathBuf>, progress: &Progress) -> Result<tekton::Release, StepFailure> {
    if let Some(path) = explicit {
        return tekton::Release::load(&tekton::Source::File(path)).map_err(failure);
    }
    let pin = tekton::Pin::pinned().map_err(failure)?;
    let source = tekton::Source::Cache(cache_dir());
    let path = source.path(&pin);
    if !path.exists() {
        progress.say(format!("downloading Tekton {} once into {}", pin.version, path.display()));
        let dir = path.parent().expect("a cache path has a parent");
        std::fs::create_dir_all(dir).map_err(|e| failure(format!("creating {}: {e}", dir.display())))?;
        let partial = dir.join("release.yaml.partial");
        let sh = xshell::Shell::new().map_err(failure)?;
        let url = &pin.url;
        xshell::cmd!(sh, "curl --fail --location --silent --show-error --output {partial} {url}")
            .quiet()
            .run()
            .map_err(|e| {
                failure(format!(
                    "downloading {url}: {e}\nhint: on an offline machine, copy the release file here and pass --tekton-release FILE"
                ))
            })?;
        // Verified before it takes the cache's name: a bad download is never "cached".
        tekton::Release::load_pinned(&pin, &tekton::Source::File(partial.clone())).map_err(failure)?;
        std::fs::rename(&partial, &path).map_err(|e| failure(format!("keeping {}: {e}", path.display())))?;
    }
    tekton::Release::load_pinned(&pin, &source).map_err(failure)
}

/// Server-side applies one of the run's typed objects with field manager `xtask`.
pub async fn apply_object(client: &Client, object: &Object) -> Result<(), kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    async fn put<K>(api: Api<K>, name: &str, params: &PatchParams, object: &K) -> Result<(), kube::Error>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    {
        api.patch(name, params, &Patch::Apply(object)).await.map(drop)
    }
    let ns = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.clone().unwrap_or_default()
    };
    let name = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.name.clone().unwrap_or_default()
    };
    let c = client.clone();
    match object {
        Object::Namespace(o) => put(Api::all(c), &name(&o.metadata), &params, o).await,
        Object::Secret(o) => put(Api::namespaced(c, &ns(&o.metadata)), &name(&o.metadata), &params, o).await,
        Object::ConfigMap(o) => {
            put(Api::namespaced(c, &ns(&o.metadata)), &name(&o.metadata), &params, o).await
        }
        Object::Deployment(o) => {
            put(Api::namespaced(c, &ns(&o.metadata)), &name(&o.metadata), &params, &**o).await
        }
        Object::Service(o) => put(Api::namespaced(c, &ns(&o.metadata)), &name(&o.metadata), &params, o).await,
        Object::ServiceAccount(o) => {
            put(Api::namespaced(c, &ns(&o.metadata)), &name(&o.metadata), &params, o).await
        }
        Object::RoleBinding(o) => {
            put(Api::namespaced(c, &ns(&o.metadata)), &name(&o.metadata), &params, o).await
        }
        Object::ClusterRole(o) => put(Api::all(c), &name(&o.metadata), &params, o).await,
        Object::ClusterRoleBinding(o) => put(Api::all(c), &name(&o.metadata), &params, o).await,
    }
}

/// An error with its causes, each said once: kube's own text stops at "client error
/// (Connect)", the cause (e.g. "Connection refused") is further down the chain.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// Kinds that live outside namespaces, among those a controller's manifests carry.
const CLUSTER_SCOPED: [&str; 9] = [
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "StorageClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
];

/// The controller's manifests as objects to apply: namespaced objects without a namespace go
/// into the run's, and the controller's container runs `image`. An error names the file.
pub fn controller_objects(
    root: &Path,
    spec: &crate::suite::ControllerSpec,
    namespace: &str,
    image: &str,
) -> Result<Vec<DynamicObject>, InfraError> {
    let mut objects = Vec::new();
    for file in &spec.manifests {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| InfraError::Invalid(format!("controller.manifests: {}: {e}", path.display())))?;
        let parsed = tekton::parse_manifest(&path, &text).map_err(|e| InfraError::Invalid(e.to_string()))?;
        objects.extend(parsed);
    }
    let mut found = false;
    for o in &mut objects {
        let kind = o.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
        if !CLUSTER_SCOPED.contains(&kind.as_str()) && o.metadata.namespace.is_none() {
            o.metadata.namespace = Some(namespace.to_string());
        }
        let labels = o.metadata.labels.get_or_insert_with(Default::default);
        labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
        if kind == "Deployment" && o.metadata.name.as_deref() == Some(&spec.deployment) {
            let containers =
                o.data.pointer_mut("/spec/template/spec/containers").and_then(|c| c.as_array_mut());
            let container = containers.and_then(|cs| {
                cs.iter_mut().find(|c| c.get("name").and_then(|n| n.as_str()) == Some(&spec.container))
            });
            let Some(container) = container else {
                return Err(InfraError::Invalid(format!(
                    "controller.container: Deployment/{} has no container `{}`",
                    spec.deployment, spec.container
                )));
            };
            container["image"] = serde_json::Value::String(image.to_string());
            container["imagePullPolicy"] = serde_json::Value::String("IfNotPresent".into());
            found = true;
        }
    }
    if !found {
        return Err(InfraError::Invalid(format!(
            "controller.deployment: no Deployment `{}` in {}",
            spec.deployment,
            spec.manifests.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(objects)
}

/// The namespace a controller's Deployment lands in.
fn deployment_namespace(objects: &[DynamicObject], deployment: &str, default: &str) -> String {
    objects
        .iter()
        .find(|o| {
            o.types.as_ref().is_some_and(|t| t.kind == "Deployment")
                && o.metadata.name.as_deref() == Some(deployment)
        })
        .and_then(|o| o.metadata.namespace.clone())
        .unwrap_or_else(|| default.to_string())
}

impl Backend for Kube {
    fn name(&self) -> &'static str {
        match self.target {
            Target::Kind(_) => "kind",
            Target::Cluster => "cluster",
        }
    }

    fn kubernetes(&self) -> bool {
        true
    }

    fn planned_endpoint(&self, run: &Run, component: &str, service: &Service) -> Endpoint {
        let (host, inside) = self.planned_addr(component, service);
        let mut planned = endpoint(&service.endpoint, host, inside, None);
        if let EndpointKind::KubeApi { namespace, kubeconfig, tokens, .. } = &mut planned.kind {
            *namespace = namespace_name(&run.id());
            *kubeconfig = None;
            tokens.retain(|name, _| *name == crate::components::tests_account(&run.suite.name));
        }
        planned
    }

    fn placement(&self, _run: &Run, _component: &str) -> Placement {
        Placement::Container
    }

    fn planned_addr(&self, component: &str, service: &Service) -> (Addr, Addr) {
        super::container_addrs(component, service)
    }

    fn setup(&self) -> Option<String> {
        Some(match &self.target {
            Target::Kind(_) if self.options.reuse => {
                "the suite's kind cluster (reused when it exists, else created), then the run's namespace"
                    .into()
            }
            Target::Kind(_) => "a kind cluster for the suite, then the run's namespace".into(),
            Target::Cluster => "the run's namespace on the existing cluster".into(),
        })
    }

    fn setup_actions(&self, run: &Run) -> Vec<String> {
        let ns = namespace_name(&run.id());
        let mut lines = Vec::new();
        match &self.target {
            Target::Kind(kind) => {
                let name = cluster_name(&run.suite.name);
                lines.push(kind.get_clusters_cmd().to_string());
                let create = kind.create_cluster_cmd(&self.create_spec(run)).to_string();
                lines.push(if self.options.reuse {
                    format!("{create}    (only when `{name}` is not listed)")
                } else {
                    format!("{create}    (refused when `{name}` exists: pass --reuse)")
                });
                lines.push(format!("kubeconfig: {} (0600)", run.dir().join("kubeconfig").display()));
            }
            Target::Cluster => lines.push(format!(
                "kubeconfig: {}{}",
                self.user_kubeconfig().map(|p| p.display().to_string()).unwrap_or_else(|| "<none>".into()),
                self.options.context.as_deref().map(|c| format!(", context {c}")).unwrap_or_default()
            )),
        }
        lines.push(format!("server-side apply (field manager {FIELD_MANAGER}): Namespace/{ns}"));
        lines
    }

    fn run_setup(self: Arc<Self>, run: Arc<Run>) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            let (kubeconfig, context, mut summary) = match &self.target {
                Target::Kind(kind) => {
                    let spec = self.create_spec(&run);
                    let name = spec.name.clone();
                    let (k, s, reuse) = (kind.clone(), spec.clone(), self.options.reuse);
                    let provider = kind.provider().as_str().to_string();
                    let exists = self
                        .blocking
                        .run("listing kind clusters", move || k.get_clusters().map_err(failure))
                        .await?
                        .contains(&name);
                    let summary = match (exists, reuse) {
                        (true, false) => {
                            return Err(StepFailure::new(format!(
                                "kind cluster `{name}` exists already (an earlier run with --keep or --reuse?); \
                                 pass --reuse to use it, or remove it: kind delete cluster --name {name}"
                            )));
                        }
                        (true, true) => {
                            let (k, n, path) = (kind.clone(), name.clone(), run.dir().join("kubeconfig"));
                            self.blocking
                                .run("reading the kubeconfig", move || {
                                    let config = k.get_kubeconfig(&n).map_err(failure)?;
                                    procs::write_file(&path, config.as_str().as_bytes(), 0o600)
                                        .map_err(failure)
                                })
                                .await?;
                            format!("kind cluster {name} (reused)")
                        }
                        (false, _) => {
                            // Recorded first: a create that fails half-way still leaves a node to remove.
                            // A reused (kept) cluster outlives the run, so only one created here is.
                            if !reuse {
                                run.created(Resource::Cluster { name: name.clone(), provider })?;
                            }
                            let k = kind.clone();
                            self.blocking
                                .run("creating the kind cluster", move || {
                                    k.create_cluster(&s).map_err(failure)
                                })
                                .await?;
                            format!("kind cluster {name} (created)")
                        }
                    };
                    (run.dir().join("kubeconfig"), None, summary)
                }
                Target::Cluster => {
                    let path = self.user_kubeconfig().ok_or_else(|| {
                        StepFailure::new("no kubeconfig: pass --kubeconfig PATH or set KUBECONFIG")
                    })?;
                    (path.clone(), self.options.context.clone(), format!("cluster from {}", path.display()))
                }
            };
            let client = self.connect(&kubeconfig, context.as_deref()).await?;
            let _ = self.client.set(client.clone());
            let ns = namespace_name(&run.id());
            run.created(Resource::Namespace { name: ns.clone(), kubeconfig: kubeconfig.clone(), context })?;
            apply_object(&client, &namespace(&ns, &run.id())).await.map_err(|e| {
                failure(format!(
                    "creating namespace {ns} through the API server of {}: {}",
                    kubeconfig.display(),
                    error_chain(&e)
                ))
            })?;
            run.update(|s| {
                s.env.insert("KUBECONFIG".into(), kubeconfig.display().to_string());
                s.env.insert("XTASK_NAMESPACE".into(), ns.clone());
            })?;
            summary.push_str(&format!(", namespace {ns}"));
            Ok(summary)
        })
    }

    fn job_route(&self, component: &str) -> String {
        format!(", through a port-forward to Service/{component}")
    }

    fn prepare(&self, component: &str, service: &Service) -> Option<String> {
        self.prepare_image(component, &service.image)
    }

    fn prepare_image(&self, _component: &str, image: &Image) -> Option<String> {
        match image {
            // The node pulls it; an image that cannot be pulled fails the start at once.
            Image::Pull(_) => None,
            built => Some(crate::images::describe(&self.engine, built)),
        }
    }

    fn run_prepare(
        self: Arc<Self>,
        run: Arc<Run>,
        component: String,
        service: Service,
        progress: Progress,
    ) -> BoxFuture<Result<String, StepFailure>> {
        self.run_prepare_image(run, component, service.image, progress)
    }

    fn run_prepare_image(
        self: Arc<Self>,
        run: Arc<Run>,
        component: String,
        image: Image,
        progress: Progress,
    ) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            let (tag, built) =
                crate::images::build(&self.engine, &self.blocking, &run, &component, &image, &progress)
                    .await?;
            run.set_artifact(&component, Artifact::Image(tag.clone()));
            Ok(if built { format!("{tag} (built)") } else { format!("{tag} (unchanged, not rebuilt)") })
        })
    }

    fn load(&self, _component: &str, image: &Image) -> Option<String> {
        if matches!(image, Image::Pull(_)) {
            return None;
        }
        Some(match (&self.target, &self.options.registry) {
            (Target::Kind(_), _) => {
                "kind load image-archive into the node, unless the node has the tag (crictl images)".into()
            }
            (Target::Cluster, Some(registry)) => format!("{} push to {registry}", self.engine.program()),
            (Target::Cluster, None) => {
                "push to a registry: none given, pass --registry (this step fails without)".into()
            }
        })
    }

    fn run_load(
        self: Arc<Self>,
        run: Arc<Run>,
        component: String,
        progress: Progress,
    ) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            let Some(Artifact::Image(tag)) = run.artifact(&component) else {
                return Err(StepFailure::new(format!("{component}: no image was built to load")));
            };
            match &self.target {
                Target::Kind(kind) => {
                    let cluster = cluster_name(&run.suite.name);
                    let (k, c, t, engine) = (kind.clone(), cluster.clone(), tag.clone(), self.engine.clone());
                    let archive = run.dir().join(format!("image-{component}.tar"));
                    let p = progress.clone();
                    self.blocking
                        .run("loading the image", move || {
                            let on_node = k.node_images(&c).map_err(failure)?;
                            if kind::has_image(&on_node, &t) {
                                return Ok(format!("{t} (already on the node, not reloaded)"));
                            }
                            p.say(format!("saving {t} and loading it into {c}"));
                            engine.save(&t, &archive).map_err(failure)?;
                            let loaded = k.load_image_archive(&archive, &c).map_err(failure);
                            let _ = std::fs::remove_file(&archive);
                            loaded.map(|()| format!("{t} (loaded into {c})"))
                        })
                        .await
                }
                Target::Cluster => {
                    let Some(registry) = self.options.registry.clone() else {
                        return Err(StepFailure::new(format!(
                            "{component}: the built image {tag} cannot reach the cluster; pass --registry HOST[/PATH] \
                             (it is pushed there), or --image {component}=REF (an image the cluster can pull)"
                        )));
                    };
                    let name = tag.rsplit('/').next().unwrap_or(&tag).to_string();
                    let target = format!("{}/{name}", registry.trim_end_matches('/'));
                    let (engine, t, to) = (self.engine.clone(), tag.clone(), target.clone());
                    self.blocking
                        .run("pushing the image", move || {
                            engine.tag(&t, &to).map_err(failure)?;
                            engine.push(&to).map_err(failure)
                        })
                        .await?;
                    run.set_artifact(&component, Artifact::Image(target.clone()));
                    Ok(format!("{target} (pushed)"))
                }
            }
        })
    }

    fn render(&self, run: &Run, component: &str, service: &Service) -> Vec<String> {
        let ns = namespace_name(&run.id());
        let image = Self::image_ref(run, component, &service.image);
        let objects = service_objects(&ns, &run.id(), component, service, &image);
        let mut lines = match &objects {
            Ok(objects) => vec![format!(
                "server-side apply (field manager {FIELD_MANAGER}): {}",
                objects.iter().map(Object::id).collect::<Vec<_>>().join(", ")
            )],
            Err(e) => vec![format!("cannot render: {e}")],
        };
        if let EndpointSpec::KubeApi { .. } = &service.endpoint {
            lines.extend([
                "the ClusterRoles and their binding owned by the run's namespace: removed with it".into(),
                format!(
                    "TokenRequest for ServiceAccount {}, {} h, written 0600 (the controller mounts its own)",
                    crate::components::tests_account(&run.suite.name),
                    super::identity::TOKEN_SECONDS / 3600
                ),
            ]);
            return lines;
        }
        lines.push(format!("image {image}"));
        lines.push(format!(
            "ready: Deployment/{component} available (fails at once on ImagePullBackOff, ErrImageNeverPull, \
             CrashLoopBackOff, CreateContainerConfigError), then {} through a port-forward 127.0.0.1:<free port> -> pod port {}",
            describe_probe(&service.endpoint),
            service.port
        ));
        lines
    }

    fn start(
        self: Arc<Self>,
        run: Arc<Run>,
        component: String,
        progress: Progress,
    ) -> BoxFuture<Result<Started, StepFailure>> {
        Box::pin(async move {
            let client = self.client()?;
            let endpoints = run.endpoints();
            let workload = run
                .workload(&component, Placement::Container, &endpoints, None, Default::default())
                .map_err(failure)?;
            let Workload::Service(service) = workload else {
                return Err(StepFailure::new(format!("{component} is not a service")));
            };
            if service.program == crate::model::Program::KubeApi {
                return self.kube_api(&run, &component, &service, &progress).await;
            }
            let ns = namespace_name(&run.id());
            let image = Self::image_ref(&run, &component, &service.image);
            let objects = service_objects(&ns, &run.id(), &component, &service, &image).map_err(failure)?;
            for o in &objects {
                progress.say(format!("applying {}", o.id()));
                apply_object(&client, o).await.map_err(|e| failure(format!("applying {}: {e}", o.id())))?;
            }
            let selector =
                format!("app.kubernetes.io/name={component},{}={}", crate::kubernetes::RUN_LABEL, run.id());
            let port = self.forward(&client, &ns, &selector, service.port).await?;
            // Readiness on a port of its own (DataStorage's health port) gets a forward of its own.
            let ready = match super::ready_port(&service) {
                Some(pod_port) => Some(Addr {
                    host: "127.0.0.1".into(),
                    port: self.forward(&client, &ns, &selector, pod_port).await?,
                }),
                None => None,
            };
            let ep = endpoint(
                &service.endpoint,
                Addr { host: "127.0.0.1".into(), port },
                Addr { host: service.dns_name(&component).to_string(), port: service.port },
                ready,
            );
            let ready = probe_for(&ep)?;
            let rollout = wait::kube::KubeProbe::deployment(client, &ns, &component);
            Ok(Started {
                endpoint: ep,
                probe: Box::new(wait::then(rollout, ready)),
                summary: format!("Deployment/{component} in {ns} ({image}), forwarded to 127.0.0.1:{port}"),
            })
        })
    }

    fn render_manifests(
        &self,
        run: &Run,
        component: &str,
        manifests: &Manifests,
    ) -> (Vec<String>, Vec<String>) {
        let ns = namespace_name(&run.id());
        match manifests {
            Manifests::Tekton => {
                let source = match &self.options.tekton_release {
                    Some(path) => format!("{} (--tekton-release)", path.display()),
                    None => match tekton::Pin::pinned() {
                        Ok(pin) => format!(
                            "{} (downloaded once from {} when missing)",
                            tekton::Source::Cache(cache_dir()).path(&pin).display(),
                            pin.url
                        ),
                        Err(e) => format!("<no pin: {e}>"),
                    },
                };
                let pin = tekton::Pin::pinned()
                    .map(|p| format!("{} sha256:{}", p.version, p.sha256))
                    .unwrap_or_default();
                let mut api = vec![
                    format!("Tekton Pipelines {pin}, verified before parsing, from {source}"),
                    "server-side apply: Namespace/tekton-pipelines*, the CRDs; wait: every CRD Established"
                        .into(),
                ];
                if self.options.reuse {
                    api.push(format!(
                        "--reuse: nothing applied when Deployment/{}/{} runs this version already",
                        tekton::NAMESPACE,
                        tekton::CONTROLLER
                    ));
                }
                if self.options.tekton == TektonMode::CrdsOnly {
                    api.push(
                        "if the API server refuses `default: \"\"` in a CRD schema (before Kubernetes 1.21): \
                         the CRDs again without those defaults, said in the summary"
                            .into(),
                    );
                    let skipped = match local_tekton(self.options.tekton_release.as_deref()) {
                        Some(Ok(release)) => release.plan().split_api().1.without_pods().1.join(", "),
                        _ => tekton::NEEDS_PODS
                            .iter()
                            .map(|k| format!("every {k}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    };
                    return (
                        api,
                        vec![
                            "server-side apply: RBAC, ConfigMaps, Services".into(),
                            format!("SKIPPED ({CRDS_ONLY_WHY}): {skipped}"),
                            "ready: once applied (no Tekton pod to wait for)".into(),
                        ],
                    );
                }
                (
                    api,
                    vec![
                        "server-side apply: RBAC, ConfigMaps, Deployments, Services, then the webhook configurations".into(),
                        format!(
                            "ready: Deployments {} and {} available AND a server-side dry-run create of Task/{} in {ns} admitted by the webhook",
                            tekton::CONTROLLER,
                            tekton::WEBHOOK,
                            tekton::PROBE_TASK
                        ),
                    ],
                )
            }
            Manifests::Controller(spec) => {
                let image = Self::image_ref(run, component, &spec.image);
                match controller_objects(&run.root, spec, &ns, &image) {
                    Ok(objects) => {
                        let (api, rest) = tekton::Plan::unpinned(&objects).split_api();
                        let deployment_ns = deployment_namespace(&objects, &spec.deployment, &ns);
                        let mut rest_lines: Vec<String> =
                            rest.lines().into_iter().map(|l| format!("server-side apply: {l}")).collect();
                        rest_lines.push(format!(
                            "ready: Deployment/{deployment_ns}/{} available, container {} running {image}",
                            spec.deployment, spec.container
                        ));
                        (
                            api.lines().into_iter().map(|l| format!("server-side apply: {l}")).collect(),
                            rest_lines,
                        )
                    }
                    Err(e) => (vec![format!("cannot render: {e}")], vec![]),
                }
            }
        }
    }

    fn apply(
        self: Arc<Self>,
        run: Arc<Run>,
        component: String,
        api: bool,
        progress: Progress,
    ) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            let client = self.client()?;
            let ns = namespace_name(&run.id());
            let endpoints = run.endpoints();
            let workload = run
                .workload(&component, Placement::Container, &endpoints, None, Default::default())
                .map_err(failure)?;
            let Workload::Manifests(manifests) = workload else {
                return Err(StepFailure::new(format!("{component} has no manifests")));
            };
            let p = progress.clone();
            let mut installer = tekton::Installer::new(client.clone())
                .probe_namespace(&ns)
                .on_event(move |e| p.say(e.to_string()));
            match manifests {
                Manifests::Tekton => {
                    let release = self.release(&progress).await?;
                    let version = release.pin().version.clone();
                    if self.options.reuse && tekton_in_place(&client, &version).await {
                        if api {
                            return Ok(format!(
                                "Tekton {version} in place on the reused cluster, not applied"
                            ));
                        }
                        installer.wait_ready().await.map_err(failure)?;
                        return Ok(format!("Tekton {version} in place, admission webhook answering"));
                    }
                    let (api_plan, rest) = release.plan().split_api();
                    if api {
                        return match installer.apply(&api_plan).await {
                            Ok(()) => Ok(format!("Tekton {version} CRDs Established")),
                            Err(e)
                                if self.options.tekton == TektonMode::CrdsOnly
                                    && tekton::refused_empty_default(&e) =>
                            {
                                let (plan, n) = api_plan.without_empty_string_defaults();
                                progress.say(format!("this API server refuses `default: \"\"` in a CRD schema (Kubernetes before 1.21 stores it as null): applying the CRDs without those {n} defaults"));
                                installer.apply(&plan).await.map_err(failure)?;
                                Ok(format!(
                                    "Tekton {version} CRDs Established, without {n} empty-string defaults this API server (before 1.21) refuses"
                                ))
                            }
                            Err(e) => Err(failure(e)),
                        };
                    }
                    if self.options.tekton == TektonMode::CrdsOnly {
                        let (kept, skipped) = rest.without_pods();
                        installer.apply(&kept).await.map_err(failure)?;
                        return Ok(format!(
                            "Tekton {version} API and configuration applied; {} objects SKIPPED ({CRDS_ONLY_WHY}): {}",
                            skipped.len(),
                            skipped.join(", ")
                        ));
                    }
                    installer.apply(&rest).await.map_err(failure)?;
                    installer.wait_ready().await.map_err(failure)?;
                    Ok(format!("Tekton {version} ready, admission webhook answering"))
                }
                Manifests::Controller(spec) => {
                    let image = Self::image_ref(&run, &component, &spec.image);
                    let objects = controller_objects(&run.root, &spec, &ns, &image).map_err(failure)?;
                    let (api_plan, rest) = tekton::Plan::unpinned(&objects).split_api();
                    if api {
                        installer.apply(&api_plan).await.map_err(failure)?;
                        return Ok(format!("{} objects applied", api_plan.steps().len()));
                    }
                    installer.apply(&rest).await.map_err(failure)?;
                    let deployment_ns = deployment_namespace(&objects, &spec.deployment, &ns);
                    let mut probe =
                        wait::kube::KubeProbe::deployment(client, &deployment_ns, &spec.deployment);
                    crate::exec::wait_ready(&mut probe, run.suite.ready_timeout, &progress).await?;
                    Ok(format!("Deployment/{deployment_ns}/{} available ({image})", spec.deployment))
                }
            }
        })
    }

    fn estimate(&self, step: &Step) -> Option<Duration> {
        Some(Duration::from_secs(estimate_secs(&step.kind, self.options.reuse)))
    }

    fn settle(&self) -> wait::BoxFuture<'_, ()> {
        Box::pin(self.blocking.settle())
    }

    fn collect_logs(&self, run: &Run) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Target::Kind(kind) = &self.target {
            let dir = run.dir().join("kind-logs");
            let name = cluster_name(&run.suite.name);
            let text = match kind.export_logs(&dir, &name) {
                Ok(()) => format!("kind export logs: {}\n", dir.display()),
                Err(e) => format!("kind export logs failed: {e}\n"),
            };
            out.push(("kind-logs.txt".into(), text));
        }
        out
    }
}

/// Whether the pinned Tekton runs already (a reused cluster); any doubt means "apply it".
async fn tekton_in_place(client: &Client, version: &str) -> bool {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), tekton::NAMESPACE);
    match deployments.get_opt(tekton::CONTROLLER).await {
        Ok(Some(d)) => tekton::release_in_place(&d, version),
        _ => false,
    }
}

fn describe_probe(spec: &crate::model::EndpointSpec) -> String {
    match spec {
        crate::model::EndpointSpec::Postgres { user, .. } => format!("a query as {user}"),
        crate::model::EndpointSpec::Redis { .. } => "PING after AUTH".into(),
        crate::model::EndpointSpec::KubeApi { .. } => "the cluster's own API".into(),
        crate::model::EndpointSpec::Http { ready_path, ready_port: None, .. } => {
            format!("GET {ready_path} = 200")
        }
        crate::model::EndpointSpec::Http { ready_path, ready_port: Some(name), .. } => {
            format!("GET {ready_path} on port {name} = 200")
        }
    }
}

/// Expected seconds per step, for a dry run's expected critical path: the monorepo's own
/// published step timings (seed 001: cluster ~30 s, PostgreSQL ~30 s, Redis ~20 s, an image
/// build ~30 s and its load ~10-20 s, DataStorage and the controller ~10 s deploy + ~10 s
/// ready), except where xtask does less work (migrations: one connection, ~2 s, not 15 s) and
/// Tekton (see BENCHMARKS.md: an assumption until the kind workflow publishes a measurement).
/// With `--reuse` the cluster, the loaded images and Tekton are in place already.
/// Estimates, not measurements.
fn estimate_secs(kind: &StepKind, reuse: bool) -> u64 {
    let tekton = |c: &str| c == "tekton";
    match (kind, reuse) {
        (StepKind::Setup, false) => 30,
        (StepKind::Setup, true) => 2,
        (StepKind::Prepare(_), false) => 30,
        (StepKind::Prepare(_), true) => 2,
        (StepKind::Load(_), false) => 15,
        (StepKind::Load(_), true) => 1,
        (StepKind::Start(c), false) if c == "postgres" => 30,
        (StepKind::Start(c), true) if c == "postgres" => 6,
        (StepKind::Start(c), false) if c == "redis" => 20,
        (StepKind::Start(c), true) if c == "redis" => 3,
        (StepKind::Start(_), false) => 20,
        (StepKind::Start(_), true) => 5,
        (StepKind::Job(_), _) => 2,
        (StepKind::Snapshot(_), _) => 1,
        (StepKind::ApplyApi(c), false) if tekton(c) => 5,
        (StepKind::ApplyApi(_), _) => 2,
        (StepKind::Apply(c), false) if tekton(c) => 60,
        (StepKind::Apply(c), true) if tekton(c) => 3,
        (StepKind::Apply(_), false) => 20,
        (StepKind::Apply(_), true) => 5,
    }
}

/// Removes a kind cluster or a run's namespace.
pub fn remove(resource: &Resource) -> Result<(), InfraError> {
    let backend = if matches!(resource, Resource::Cluster { .. }) { "kind" } else { "kubernetes" };
    let err = |message: String| InfraError::Backend { backend, message };
    match resource {
        Resource::Cluster { name, provider } => {
            let provider = kind::Provider::parse(provider).unwrap_or(kind::Provider::Docker);
            let binary = std::env::var(kind::KIND_VAR).ok().filter(|b| !b.trim().is_empty());
            kind::Kind::new(binary.unwrap_or_else(|| "kind".into()), provider)
                .delete_cluster(name)
                .map_err(|e| err(e.to_string()))
        }
        Resource::Namespace { name, kubeconfig, context } => {
            let (name, kubeconfig, context) = (name.clone(), kubeconfig.clone(), context.clone());
            // Teardown is synchronous and may run inside or outside a runtime: a thread of its own.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async {
                    if !kubeconfig.exists() {
                        // The kind cluster (and its kubeconfig) went first: nothing left to delete.
                        return Ok(());
                    }
                    let client = client_for(&kubeconfig, context.as_deref())
                        .await
                        .map_err(|e| format!("deleting namespace {name}: {e}"))?;
                    let api: Api<Namespace> = Api::all(client.clone());
                    let deleted = async {
                        gone(api.delete(&name, &DeleteParams::background()).await)?;
                        delete_owned_by_namespace(&client, &name).await
                    };
                    match tokio::time::timeout(Duration::from_secs(30), deleted).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(kube::Error::Api(s))) if s.code == 404 => Ok(()),
                        Ok(Err(e)) => Err(format!(
                            "deleting namespace {name} through the API server of {}: {}",
                            kubeconfig.display(),
                            error_chain(&e)
                        )),
                        Err(_) => Err(format!(
                            "deleting namespace {name}: the API server of {} did not answer in 30 s",
                            kubeconfig.display()
                        )),
                    }
                })
            })
            .join()
            .map_err(|_| err("the namespace deletion thread panicked".into()))?
            .map_err(err)
        }
        other => Err(InfraError::Invalid(format!("the kind and cluster backends did not create {other}"))),
    }
}

/// Deletes the run's cluster-wide objects owned by namespace `name` (the ClusterRoles and their
/// binding): the garbage collector would remove them once the namespace is gone, but on a busy
/// cluster that can take minutes, and `down` leaves nothing behind when it returns. The owner
/// reference stays the safety net for a namespace deleted by hand.
async fn delete_owned_by_namespace(client: &Client, name: &str) -> Result<(), kube::Error> {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let owned = |refs: &Option<Vec<OwnerReference>>| {
        refs.iter().flatten().any(|o| o.kind == "Namespace" && o.name == name)
    };
    let ours = ListParams::default().labels(crate::kubernetes::RUN_LABEL);
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for b in bindings.list(&ours).await? {
        if owned(&b.metadata.owner_references) {
            gone(bindings.delete(&b.metadata.name.unwrap_or_default(), &DeleteParams::default()).await)?;
        }
    }
    let roles: Api<ClusterRole> = Api::all(client.clone());
    for r in roles.list(&ours).await? {
        if owned(&r.metadata.owner_references) {
            gone(roles.delete(&r.metadata.name.unwrap_or_default(), &DeleteParams::default()).await)?;
        }
    }
    Ok(())
}

/// A deletion's result, where an object already gone counts as deleted.
fn gone<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// How a service's pod is restarted in place of the process or container of other backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// The pod has a data volume: its container is stopped from inside (SIGINT to PID 1, a fast
    /// shutdown for PostgreSQL and Redis) and the kubelet starts it again in the same pod, on
    /// the same volume.
    InPlace {
        /// The pod.
        pod: String,
        /// The container that restarts.
        container: String,
        /// Its restart count before.
        restarts: i32,
    },
    /// Nothing in the pod must survive: it is deleted and the Deployment makes a new one.
    Replace {
        /// The pod deleted.
        pod: String,
    },
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

fn restart_count(pod: &Pod, container: &str) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find(|c| c.name == container).map(|c| c.restart_count)
}

/// How to restart `component`, from its pods: the running one (not being deleted) is
/// restarted, in place when it mounts a `data` volume. An error lists the pods seen.
pub fn restart_plan(pods: &[Pod], component: &str) -> Result<Restart, String> {
    let running = pods.iter().find(|p| {
        p.metadata.deletion_timestamp.is_none()
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    });
    let Some(pod) = running else {
        let seen: Vec<String> = pods.iter().map(wait::kube::pod_summary).collect();
        return Err(format!(
            "no running pod of {component}{}",
            if seen.is_empty() { String::new() } else { format!(" (pods: {})", seen.join("; ")) }
        ));
    };
    let name = pod_name(pod).to_string();
    let spec = pod.spec.as_ref();
    let has_data = spec.and_then(|s| s.volumes.as_ref()).is_some_and(|v| v.iter().any(|v| v.name == "data"));
    if !has_data {
        return Ok(Restart::Replace { pod: name });
    }
    let container = spec.and_then(|s| s.containers.first()).map(|c| c.name.clone()).unwrap_or_default();
    let restarts = restart_count(pod, &container).unwrap_or(0);
    Ok(Restart::InPlace { pod: name, container, restarts })
}

/// Whether a restart is over, from the component's pods now: Ready once the restarted
/// container (or the new pod) is ready; Failed on a terminal pod state, or when a pod that
/// had to keep its data disappeared.
pub fn restart_status(pods: &[Pod], how: &Restart, now: k8s_openapi::jiff::Timestamp) -> wait::Status {
    let rules = wait::kube::PodRules::default();
    match how {
        Restart::InPlace { pod, container, restarts } => {
            let Some(p) = pods.iter().find(|p| pod_name(p) == pod) else {
                return wait::Status::Failed(format!(
                    "pod {pod} disappeared while {container} restarted in it"
                ));
            };
            match restart_count(p, container) {
                Some(n) if n > *restarts => wait::kube::pod_status(p, &rules, now),
                _ => match wait::kube::pod_failure(p, &rules, now) {
                    Some(f) => wait::Status::Failed(f),
                    None => wait::Status::NotYet(format!(
                        "{pod}: waiting for {container} to stop and start again"
                    )),
                },
            }
        }
        Restart::Replace { pod } => {
            let new = pods.iter().find(|p| pod_name(p) != pod && p.metadata.deletion_timestamp.is_none());
            match new {
                Some(p) => wait::kube::pod_status(p, &rules, now),
                None => wait::Status::NotYet(format!("waiting for a pod to replace {pod}")),
            }
        }
    }
}

struct Restarted {
    pods: Api<Pod>,
    selector: String,
    how: Restart,
}

impl wait::Probe for Restarted {
    fn name(&self) -> String {
        match &self.how {
            Restart::InPlace { pod, container, .. } => {
                format!("container {container} of pod {pod} restarted")
            }
            Restart::Replace { pod } => format!("a new pod in place of {pod}"),
        }
    }

    fn check(&mut self) -> wait::BoxFuture<'_, wait::Status> {
        Box::pin(async move {
            match self.pods.list(&ListParams::default().labels(&self.selector)).await {
                Ok(list) => restart_status(&list.items, &self.how, k8s_openapi::jiff::Timestamp::now()),
                Err(e) => wait::Status::NotYet(format!("listing pods: {e}")),
            }
        })
    }
}

/// Restarts `component` of a run in namespace `namespace`, waiting up to `timeout` until its
/// pod is ready again; returns what was done.
pub async fn restart_component(
    client: Client,
    namespace: &str,
    run_id: &str,
    component: &str,
    timeout: Duration,
) -> Result<String, InfraError> {
    let err = |message: String| InfraError::Backend { backend: "kind", message };
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let selector = format!("app.kubernetes.io/name={component},{}={run_id}", crate::kubernetes::RUN_LABEL);
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| err(format!("listing the pods of {component} in {namespace}: {e}")))?;
    let how =
        restart_plan(&list.items, component).map_err(|e| err(format!("{e} in namespace {namespace}")))?;
    match &how {
        Restart::InPlace { pod, container, .. } => {
            let params = AttachParams::default().container(container.clone()).stdout(true).stderr(true);
            let mut process = pods.exec(pod, ["sh", "-c", "kill -INT 1"], &params).await.map_err(|e| {
                err(format!("stopping {container} in pod {pod} (exec sh -c 'kill -INT 1'): {e}"))
            })?;
            // The session may end with the container it stopped: the wait below decides.
            if let Some(status) = process.take_status()
                && let Some(s) = status.await
                && s.status.as_deref() == Some("Failure")
            {
                return Err(err(format!(
                    "stopping {container} in pod {pod}: {}",
                    s.message.unwrap_or_else(|| "the exec failed".into())
                )));
            }
        }
        Restart::Replace { pod } => {
            pods.delete(pod, &DeleteParams::default())
                .await
                .map_err(|e| err(format!("deleting pod {pod} of {component}: {e}")))?;
        }
    }
    let mut probe = Restarted { pods, selector, how: how.clone() };
    wait::Waiter::new(timeout)
        .wait_for(&mut probe)
        .await
        .map_err(|e| err(format!("{component} did not come back: {e}")))?;
    Ok(match how {
        Restart::InPlace { pod, container, .. } => format!("container {container} restarted in pod {pod}"),
        Restart::Replace { pod } => format!("pod {pod} replaced"),
    })
}

#[cfg(test)]
mod chain_tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct E {
        text: &'static str,
        #[source]
        source: Option<Box<E>>,
    }

    #[test]
    fn an_error_chain_names_every_cause_once() {
        let refused = E { text: "Connection refused (os error 111)", source: None };
        let connect = E { text: "client error (Connect)", source: Some(Box::new(refused)) };
        let top = E { text: "ServiceError: client error (Connect)", source: Some(Box::new(connect)) };
        assert_eq!(
            error_chain(&top),
            "ServiceError: client error (Connect): Connection refused (os error 111)"
        );
    }
}
