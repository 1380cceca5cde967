//! The podman backend: a network per run, one container per service named and labelled with the
//! run id, ports published on 127.0.0.1 only, config files mounted read-only and secrets from the
//! engine's secret store, readiness probed from this machine.

use super::failure;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use container::{ContainerSpec, Engine, Kind, Mount, SecretMount};
use sha2::{Digest, Sha256};

use super::{Backend, Blocking, Started, endpoint, probe_for};
use crate::error::InfraError;
use crate::model::{
    Addr, Endpoint, EndpointKind, EndpointSpec, FileKind, Image, KubeAccess, Placement, Production, Secret,
    Service, Workload,
};
use crate::run::{Artifact, Run};
use crate::runner::{BoxFuture, Progress, StepFailure};
use crate::state::Resource;

/// The label every resource of a run carries, with the run id as its value.
pub const RUN_LABEL: &str = "xtask.run";
/// The label naming the component a container serves.
pub const COMPONENT_LABEL: &str = "xtask.component";
/// The label naming the runs directory a resource's run lives in (see `home_label`).
pub const HOME_LABEL: &str = "xtask.home";

/// Runs services as podman containers.
pub struct Podman {
    engine: Engine,
    blocking: Blocking,
}

impl Podman {
    /// The backend with the engine configured by the environment (see `cargo xtask doctor`).
    pub fn from_env() -> Self {
        Self { engine: Engine::from_env(), blocking: Blocking::new() }
    }

    /// The engine it drives.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// The run's network.
fn network(run_id: &str) -> String {
    format!("xtask-{run_id}")
}

/// A component's container.
fn container_name(run_id: &str, component: &str) -> String {
    format!("xtask-{run_id}-{component}")
}

/// A secret file's name in the engine's store: at most 64 characters (podman's limit), so the
/// run id is shortened to a hash; the labels carry it whole.
fn secret_name(run_id: &str, component: &str, file: &str) -> String {
    let digest = format!("{:x}", Sha256::digest(run_id.as_bytes()));
    let readable: String = format!("{component}-{file}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' })
        .take(64 - 20)
        .collect();
    format!("xtask-{}-{}", &digest[..12], readable.trim_end_matches(['-', '_', '.']))
}

/// The label value naming the runs directory (one per checkout or `XTASK_STATE_DIR`) whose run
/// made a resource: stray resources are looked for among our own only, so `down --all` in one
/// checkout never removes another checkout's (or a concurrent test's) running environment.
fn home_label(home: &Path) -> String {
    std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf()).display().to_string()
}

fn labels(run: &Run, component: Option<&str>) -> BTreeMap<String, String> {
    let home = run.dir().parent().map(home_label).unwrap_or_default();
    let mut l = BTreeMap::from([(RUN_LABEL.to_string(), run.id()), (HOME_LABEL.to_string(), home)]);
    if let Some(c) = component {
        l.insert(COMPONENT_LABEL.to_string(), c.to_string());
    }
    l
}

/// The image reference a service runs: the pulled reference, or the one a prepare step built.
fn image_ref(run: &Run, component: &str, service: &Service) -> String {
    match (&service.image, run.artifact(component)) {
        (_, Some(Artifact::Image(r))) => r,
        (Image::Pull(r), _) => r.clone(),
        (Image::Cargo { package, .. }, _) => format!("localhost/xtask/{package}:<hash of its inputs>"),
        (Image::Build { repository, .. }, _) => format!("{repository}:<hash of its inputs>"),
    }
}

/// The container spec of a service, as data: what `--dry-run` prints and `start` runs.
fn spec(run: &Run, component: &str, service: &Service) -> ContainerSpec {
    let id = run.id();
    let files_dir = run.dir().join(component).join("files");
    let mut mounts = Vec::new();
    let mut secrets = Vec::new();
    for f in &service.files {
        match f.kind {
            FileKind::Config => mounts.push(Mount {
                source: files_dir.join(f.key()),
                target: f.path.clone(),
                read_only: true,
            }),
            // Only the container's own processes see its mounts; its user may be any uid.
            FileKind::Secret => secrets.push(SecretMount {
                secret: secret_name(&id, component, &f.key()),
                target: f.path.clone(),
                mode: 0o444,
            }),
        }
    }
    ContainerSpec {
        name: container_name(&id, component),
        image: image_ref(run, component, service),
        network: Some(network(&id)),
        aliases: std::iter::once(component.to_string()).chain(service.service_name.clone()).collect(),
        labels: labels(run, Some(component)),
        env: service.env.clone(),
        // Every port the service has, so readiness on a health port is probed from here too.
        publish: std::iter::once(service.port).chain(service.ports.iter().map(|p| p.port)).collect(),
        mounts,
        secrets,
        user: service.user.clone(),
        entrypoint: None,
        args: service.args.clone(),
        // As its pod runs on Kubernetes: the same limits and lock-down (requests have no
        // counterpart that matters for one container on a workstation).
        locked_down: service.production.is_some(),
        read_only: service.production.as_ref().is_some_and(|p| p.read_only_root),
        memory: service.production.as_ref().and_then(Production::memory_limit_bytes),
        millicpus: service.production.as_ref().and_then(Production::cpu_limit_millis),
    }
}

impl Backend for Podman {
    fn name(&self) -> &'static str {
        "podman"
    }

    fn placement(&self, _run: &Run, _component: &str) -> Placement {
        Placement::Container
    }

    fn planned_addr(&self, component: &str, service: &Service) -> (Addr, Addr) {
        super::container_addrs(component, service)
    }

    fn planned_endpoint(&self, _run: &Run, component: &str, service: &Service) -> Endpoint {
        let (host, inside) = self.planned_addr(component, service);
        let mut planned = endpoint(&service.endpoint, host, inside, None);
        if let EndpointKind::KubeApi { inside: access, .. } = &mut planned.kind {
            *access = Some(KubeAccess {
                server: inside_server(component, service),
                ca: "<the CA made when kube-api starts>".into(),
                token: Secret::new("<DataStorage's token, requested when kube-api is ready>"),
            });
        }
        planned
    }

    fn setup(&self) -> Option<String> {
        Some(format!("{} network create, labelled {RUN_LABEL}=<run>", self.engine.program()))
    }

    fn run_setup(self: Arc<Self>, run: Arc<Run>) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            let id = run.id();
            let name = network(&id);
            run.created(Resource::Network { name: name.clone() })?;
            let (engine, n) = (self.engine.clone(), name.clone());
            self.blocking
                .run("creating the network", move || {
                    engine.create_network(&n, &labels(&run, None)).map_err(failure)
                })
                .await?;
            Ok(name)
        })
    }

    fn prepare(&self, _component: &str, service: &Service) -> Option<String> {
        Some(crate::images::describe(&self.engine, &service.image))
    }

    fn run_prepare(
        self: Arc<Self>,
        run: Arc<Run>,
        component: String,
        service: Service,
        progress: Progress,
    ) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            let Image::Pull(reference) = service.image.clone() else {
                let (tag, built) = crate::images::build(
                    &self.engine,
                    &self.blocking,
                    &run,
                    &component,
                    &service.image,
                    &progress,
                )
                .await?;
                run.set_artifact(&component, Artifact::Image(tag.clone()));
                return Ok(if built {
                    format!("{tag} (built)")
                } else {
                    format!("{tag} (unchanged, not rebuilt)")
                });
            };
            let hint = format!(
                "name an image this machine has with `images: {{{component}: REF}}` in the suite file, `--image {component}=REF` or {}",
                crate::session::image_env(&component)
            );
            let summary = self.ensure_image(&reference, &progress, hint).await?;
            run.set_artifact(&component, Artifact::Image(reference));
            Ok(summary)
        })
    }

    fn render(&self, run: &Run, component: &str, service: &Service) -> Vec<String> {
        let id = run.id();
        let mut lines = Vec::new();
        for f in &service.files {
            match f.kind {
                FileKind::Config => lines.push(format!(
                    "file {} (0644), mounted read-only at {}:\n{}",
                    run.dir().join(component).join("files").join(f.key()).display(),
                    f.path.display(),
                    indent(&f.contents)
                )),
                FileKind::Secret => lines.push(format!(
                    "{} secret create {} - <secret on stdin>",
                    self.engine.program(),
                    secret_name(&id, component, &f.key())
                )),
            }
        }
        if service.program == crate::model::Program::KubeApi {
            let (etcd, apiserver) = kube_api_specs(run, component, service);
            lines.push(format!(
                "certificates made in {} (a CA, kube-apiserver's serving pair, an administrator's client pair, the token signing key; keys 0600)",
                kube_api_pki(run, component).display()
            ));
            lines.push(shell_words(&self.engine.run_argv(&etcd)));
            lines.push(shell_words(&self.engine.run_argv(&apiserver)));
            lines.push(format!(
                "then, through the published port: namespace {ns}, DataStorage's identity and its clients', tokens 0600 in {}",
                run.dir().join(component).join("tokens").display(),
                ns = match &service.endpoint {
                    EndpointSpec::KubeApi { namespace, .. } => namespace.as_str(),
                    _ => "",
                }
            ));
            return lines;
        }
        lines.push(shell_words(&self.engine.run_argv(&spec(run, component, service))));
        lines
    }

    fn start(
        self: Arc<Self>,
        run: Arc<Run>,
        component: String,
        progress: Progress,
    ) -> BoxFuture<Result<Started, StepFailure>> {
        Box::pin(async move {
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
            let id = run.id();
            let spec = spec(&run, &component, &service);
            let files_dir = run.dir().join(&component).join("files");
            for f in &service.files {
                match f.kind {
                    FileKind::Config => {
                        write_config(&files_dir.join(f.key()), &f.contents).map_err(failure)?
                    }
                    FileKind::Secret => {
                        let name = secret_name(&id, &component, &f.key());
                        run.created(Resource::Secret { name: name.clone() })?;
                        let (engine, data, l) =
                            (self.engine.clone(), f.contents.clone(), labels(&run, Some(&component)));
                        self.blocking
                            .run("creating a secret", move || {
                                engine.create_secret(&name, &l, data.as_bytes()).map_err(failure)
                            })
                            .await?;
                    }
                }
            }
            progress.say(format!("starting container {} ({})", spec.name, spec.image));
            run.created(Resource::Container { component: component.clone(), name: spec.name.clone() })?;
            let (engine, s) = (self.engine.clone(), spec.clone());
            let ready_port = super::ready_port(&service);
            let (host_port, ready_host_port) = self
                .blocking
                .run("starting the container", move || {
                    engine.run(&s).map_err(failure)?;
                    let main = engine.host_port(&s.name, service_port(&s)).map_err(failure)?;
                    let ready = match ready_port {
                        Some(p) => Some(engine.host_port(&s.name, p).map_err(failure)?),
                        None => None,
                    };
                    Ok((main, ready))
                })
                .await?;
            let ep = endpoint(
                &service.endpoint,
                Addr { host: "127.0.0.1".into(), port: host_port },
                Addr { host: component.clone(), port: service.port },
                ready_host_port.map(|port| Addr { host: "127.0.0.1".into(), port }),
            );
            let ready = probe_for(&ep)?;
            let probe = container::ContainerProbe::new(self.engine.clone(), spec.name.clone()).until(ready);
            Ok(Started {
                endpoint: ep,
                probe: Box::new(probe),
                summary: format!("{} on 127.0.0.1:{host_port} ({})", spec.name, spec.image),
            })
        })
    }

    fn settle(&self) -> wait::BoxFuture<'_, ()> {
        Box::pin(self.blocking.settle())
    }

    fn collect_logs(&self, run: &Run) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let id = run.id();
        for r in run.state().resources {
            if let Resource::Container { component, name } = r {
                // A component's second container (kube-api's etcd) gets a log named after it.
                let file = match name.strip_prefix(&container_name(&id, &component)) {
                    Some("") => "container.log".to_string(),
                    _ => format!("{}.log", name.strip_prefix(&format!("xtask-{id}-")).unwrap_or(&name)),
                };
                let mut text = String::new();
                if let Ok(Some(st)) = self.engine.inspect(&name) {
                    text.push_str(&format!(
                        "# {name}: status {}, exit code {}, OOM-killed {}, restarts {}{}\n",
                        st.status,
                        st.exit_code,
                        st.oom_killed,
                        st.restart_count,
                        if st.error.is_empty() { String::new() } else { format!(", error: {}", st.error) }
                    ));
                }
                text.push_str(&self.engine.logs(&name, None).unwrap_or_else(|e| format!("(no logs: {e})")));
                out.push((format!("{component}/{file}"), text));
            }
        }
        out
    }
}

impl Podman {
    /// Makes sure the engine has image `reference`, pulling it if not; a failed pull ends with
    /// `hint: <hint>`. Says whether it was present or pulled.
    async fn ensure_image(
        &self,
        reference: &str,
        progress: &Progress,
        hint: String,
    ) -> Result<String, StepFailure> {
        let (engine, r, p) = (self.engine.clone(), reference.to_string(), progress.clone());
        self.blocking
            .run("checking the image", move || {
                if engine.image_exists(&r).map_err(failure)? {
                    return Ok(format!("{r} (present)"));
                }
                p.say(format!("pulling {r}"));
                engine.pull(&r).map_err(|e| failure(format!("{e}\nhint: {hint}")))?;
                Ok(format!("{r} (pulled)"))
            })
            .await
    }

    /// Runs etcd and kube-apiserver from their images on the run's network (the same flags as
    /// on this machine, certificates made here and mounted read-only), waits until the API is
    /// usable through its published port, then puts DataStorage's identity and its clients on
    /// it and writes their tokens (0600). DataStorage's container gets the API's address on the
    /// network, its CA and its own token through the endpoint.
    async fn kube_api(
        &self,
        run: &Arc<Run>,
        component: &str,
        service: &Service,
        progress: &Progress,
    ) -> Result<Started, StepFailure> {
        let EndpointSpec::KubeApi { namespace, clients } = &service.endpoint else {
            return Err(StepFailure::new(format!("{component}: a Kubernetes API needs its endpoint spec")));
        };
        let dir = run.dir().join(component);
        let pki = kube_api_pki(run, component);
        envtest::pki::make(&pki, "kube-api-ca", &envtest::leaves(&[component])).map_err(failure)?;

        let (etcd, apiserver) = kube_api_specs(run, component, service);
        let hint = format!(
            "name an etcd image this machine has with {}",
            crate::session::image_env(crate::components::ETCD_IMAGE_KEY)
        );
        self.ensure_image(&etcd.image, progress, hint).await?;
        progress.say(format!("starting containers {} and {}", etcd.name, apiserver.name));
        for s in [&etcd, &apiserver] {
            run.created(Resource::Container { component: component.into(), name: s.name.clone() })?;
        }
        let (engine, e, a) = (self.engine.clone(), etcd.clone(), apiserver.clone());
        let host_port = self
            .blocking
            .run("starting the containers", move || {
                engine.run(&e).map_err(failure)?;
                engine.run(&a).map_err(failure)?;
                engine.host_port(&a.name, service_port(&a)).map_err(failure)
            })
            .await?;

        let admin = dir.join("admin.kubeconfig");
        let server = format!("https://127.0.0.1:{host_port}");
        let text = envtest::kubeconfig::admin("kube-api", &server, &pki);
        procs::write_file(&admin, text.as_bytes(), 0o600).map_err(failure)?;
        let client = envtest::kubeconfig::client(&admin).await.map_err(failure)?;
        progress.say("waiting for kube-apiserver");
        // Both containers running, and then `ready` of the API itself.
        let running = |ready: Box<dyn wait::Probe>| {
            container::ContainerProbe::new(self.engine.clone(), apiserver.name.clone())
                .until(container::ContainerProbe::new(self.engine.clone(), etcd.name.clone()).until(ready))
        };
        let mut usable = running(Box::new(envtest::Usable::new(client.clone())));
        let say = progress.clone();
        wait::Waiter::new(run.suite.ready_timeout)
            .on_progress(move |p| say.say(p.to_string()))
            .wait_for(&mut usable)
            .await
            .map_err(failure)?;

        progress.say("identities and tokens");
        let mut tokens = super::identity::provision(run, &client, namespace, clients, &dir).await?;
        let own = tokens.remove(datastorage::rbac::SERVICE_ACCOUNT).unwrap_or_default();
        let token = std::fs::read_to_string(&own).map_err(|e| failure(format!("{}: {e}", own.display())))?;
        let ca = std::fs::read_to_string(pki.join("ca.crt")).map_err(failure)?;
        let ep = Endpoint {
            kind: EndpointKind::KubeApi {
                namespace: namespace.clone(),
                kubeconfig: None,
                inside: Some(KubeAccess {
                    server: inside_server(component, service),
                    ca,
                    token: Secret::new(token),
                }),
                tokens,
            },
            host: Addr { host: "127.0.0.1".into(), port: host_port },
            inside: Addr { host: component.into(), port: service.port },
        };
        let probe = running(Box::new(wait::TcpProbe::new(ep.host.to_string())));
        Ok(Started {
            endpoint: ep,
            probe: Box::new(probe),
            summary: format!("{} on {server} ({}), with {}", apiserver.name, apiserver.image, etcd.name),
        })
    }
}

/// kube-api's two containers, as data: etcd (reached on the network by its alias, not
/// published) and kube-apiserver with the run's certificates mounted read-only, its port
/// published on loopback. The flags are envtest's, shared with the local backend.
fn kube_api_specs(run: &Run, component: &str, service: &Service) -> (ContainerSpec, ContainerSpec) {
    let id = run.id();
    let etcd_name = format!("{component}-etcd");
    let etcd_url = format!("http://{etcd_name}:2379");
    let etcd = ContainerSpec {
        entrypoint: Some("/usr/local/bin/etcd".into()),
        args: envtest::etcd_flags(
            &etcd_name,
            Path::new("/var/lib/etcd"),
            "http://0.0.0.0:2379",
            &etcd_url,
            2380,
        ),
        aliases: vec![etcd_name.clone()],
        network: Some(network(&id)),
        labels: labels(run, Some(component)),
        ..ContainerSpec::new(container_name(&id, &etcd_name), crate::components::etcd_image(&run.images))
    };
    let pki_inside = Path::new(PKI_INSIDE);
    let mut args = envtest::apiserver_flags(&etcd_url, service.port, pki_inside);
    args.push("--bind-address=0.0.0.0".into());
    let apiserver = ContainerSpec {
        entrypoint: Some("/usr/local/bin/kube-apiserver".into()),
        args,
        publish: vec![service.port],
        mounts: vec![Mount {
            source: kube_api_pki(run, component),
            target: pki_inside.into(),
            read_only: true,
        }],
        ..spec(run, component, service)
    };
    (etcd, apiserver)
}

/// kube-api's address on the run's network, as DataStorage's container reaches it.
fn inside_server(component: &str, service: &Service) -> String {
    format!("https://{component}:{}", service.port)
}

/// Where kube-apiserver's container finds the certificates.
const PKI_INSIDE: &str = "/etc/kubernetes/pki";

/// Where the certificates of a run's kube-api are made on this machine.
fn kube_api_pki(run: &Run, component: &str) -> std::path::PathBuf {
    run.dir().join(component).join("pki")
}

fn service_port(spec: &ContainerSpec) -> u16 {
    spec.publish.first().copied().unwrap_or_default()
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("        {l}")).collect::<Vec<_>>().join("\n")
}

/// An argv as one line a shell would split back into the same words.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_config(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents)
}

/// Removes a container, network or secret the podman backend created.
pub fn remove(resource: &Resource) -> Result<(), InfraError> {
    let engine = Engine::from_env();
    let err = |e: container::Error| InfraError::Backend { backend: "podman", message: e.to_string() };
    match resource {
        Resource::Container { name, .. } => engine.remove_container(name).map(drop).map_err(err),
        Resource::Network { name } => engine.remove_network(name).map(drop).map_err(err),
        Resource::Secret { name } => match engine.remove_secret(name) {
            // A name the engine refuses was never created.
            Err(e) if e.stderr().contains("invalid secret name") => Ok(()),
            r => r.map(drop).map_err(err),
        },
        Resource::Process { .. }
        | Resource::Background { .. }
        | Resource::Cluster { .. }
        | Resource::Namespace { .. } => {
            Err(InfraError::Invalid(format!("the podman backend did not create {resource}")))
        }
    }
}

/// Resources of the runs under `home` labelled as run `run`'s (or any run's), in creation order:
/// networks, secrets, containers. Empty when the engine is not installed.
pub fn leftovers(home: &Path, run: Option<&str>) -> Result<Vec<Resource>, InfraError> {
    let engine = Engine::from_env();
    let label = format!("{HOME_LABEL}={}", home_label(home));
    let list = |kind| match engine.list(kind, &label) {
        Ok(l) => Ok(l
            .into_iter()
            .filter(|x| run.is_none_or(|id| x.labels.get(RUN_LABEL).map(String::as_str) == Some(id)))
            .collect::<Vec<_>>()),
        Err(container::Error::NotInstalled { .. }) => Ok(vec![]),
        Err(e) => Err(InfraError::Backend { backend: "podman", message: e.to_string() }),
    };
    let mut out: Vec<Resource> = Vec::new();
    out.extend(list(Kind::Network)?.into_iter().map(|l| Resource::Network { name: l.name }));
    out.extend(list(Kind::Secret)?.into_iter().map(|l| Resource::Secret { name: l.name }));
    out.extend(list(Kind::Container)?.into_iter().map(|l| Resource::Container {
        component: l.labels.get(COMPONENT_LABEL).cloned().unwrap_or_default(),
        name: l.name,
    }));
    Ok(out)
}

/// The ids of runs under `home` that have resources in the engine.
pub fn leftover_runs(home: &Path) -> Result<Vec<String>, InfraError> {
    let engine = Engine::from_env();
    let label = format!("{HOME_LABEL}={}", home_label(home));
    let mut ids = std::collections::BTreeSet::new();
    for kind in [Kind::Container, Kind::Network, Kind::Secret] {
        match engine.list(kind, &label) {
            Ok(l) => ids.extend(l.into_iter().filter_map(|x| x.labels.get(RUN_LABEL).cloned())),
            Err(container::Error::NotInstalled { .. }) => return Ok(vec![]),
            Err(e) => return Err(InfraError::Backend { backend: "podman", message: e.to_string() }),
        }
    }
    Ok(ids.into_iter().collect())
}
