//! The component model: what a component needs, what it runs, what it exports and how it becomes
//! ready, as data. A [`Component`] renders a [`Workload`] for a [`Ctx`] (where it will run, what
//! its needs published); a backend turns that workload into processes or containers.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use datastorage::certs::{Pair, Tls};

use crate::error::InfraError;
use crate::suite::Suite;

/// A part of an environment, defined once for every backend; one file under `components/`.
pub trait Component: Send + Sync + 'static {
    /// Its name in suite files, e.g. `postgres`.
    fn name(&self) -> &'static str;

    /// What it is, for `--help` and errors.
    fn about(&self) -> &'static str;

    /// The components it cannot work without (their endpoints are published before it starts).
    fn needs(&self) -> &'static [&'static str];

    /// The components it uses when the suite lists them, and waits for then: DataStorage and
    /// `kube-api` (listed: every call is authenticated; not listed: none is).
    fn uses(&self) -> &'static [&'static str] {
        &[]
    }

    /// What it runs, rendered for `ctx`.
    fn workload(&self, ctx: &Ctx<'_>) -> Result<Workload, InfraError>;

    /// Whether a suite may replace what it runs: its binary on the local backend (`binaries:`,
    /// `--binary`) and its image on the others (`images:`, `builds:`). Only components whose
    /// workload runs a program of the user's choosing (DataStorage) say yes.
    fn replaceable(&self) -> bool {
        false
    }

    /// The environment variable that gives the tests its endpoint's URL, if any.
    fn env_var(&self) -> Option<&'static str> {
        None
    }
}

/// What a component runs.
#[derive(Debug, Clone)]
pub enum Workload {
    /// A long-running server that publishes an endpoint.
    Service(Box<Service>),
    /// A one-shot job run by xtask itself against its needs' endpoints.
    Job(Job),
    /// Objects applied to a Kubernetes cluster as they are: only Kubernetes backends run these.
    Manifests(Manifests),
}

/// A set of manifests a Kubernetes backend applies and waits for, in two steps: `<name>-api`
/// (namespaces and CRDs, until Established: what dependents need to talk to it) and `<name>`
/// (everything else, until ready: what the suite needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifests {
    /// The pinned Tekton Pipelines release (`manifests/tekton/release.yaml`).
    Tekton,
    /// The controller under test: its manifests, its image set on one container.
    Controller(crate::suite::ControllerSpec),
}

/// A server: its artifact for each kind of backend, arguments, environment, files, port and
/// the endpoint it publishes once ready.
#[derive(Debug, Clone)]
pub struct Service {
    /// What the local backend runs.
    pub program: Program,
    /// What container backends run.
    pub image: Image,
    /// Arguments after the program or image.
    pub args: Vec<String>,
    /// Environment variables (never secrets: those go in files).
    pub env: Vec<(String, String)>,
    /// Files the service reads (config and secrets), at the paths it will see them.
    pub files: Vec<File>,
    /// The port it serves on (inside a container; the local backend picks a free one).
    pub port: u16,
    /// Further ports it listens on, by name (DataStorage's health and metrics ports); the local
    /// backend picks a free one for each.
    pub ports: Vec<NamedPort>,
    /// What it publishes, which also says how it becomes ready.
    pub endpoint: EndpointSpec,
    /// The user a container runs as, when the image needs one.
    pub user: Option<String>,
    /// Where the container keeps what must survive a restart of the service (PostgreSQL's data
    /// directory): a volume that outlives the container on Kubernetes.
    pub data: Option<PathBuf>,
    /// The name other workloads reach it by (its Kubernetes Service, its network alias), when
    /// clients know it by another name than the component's: DataStorage's
    /// `data-storage-service`.
    pub service_name: Option<String>,
    /// The identity it runs as where it runs in a cluster (its pod's ServiceAccount, whose token
    /// the pod mounts): DataStorage's `data-storage-sa`. `None`: the namespace's default.
    pub account: Option<String>,
    /// What a production chart sets for its container on Kubernetes. `None`: the image's own
    /// defaults (the PostgreSQL and Redis images start as root to hand their data to their user).
    pub production: Option<Production>,
}

/// Requests, limits and a locked-down security context (non-root, no privilege escalation, no
/// capabilities), as a production chart sets them for a service's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Production {
    /// CPU requested, e.g. `250m`.
    pub cpu_request: String,
    /// Memory requested, e.g. `512Mi`.
    pub memory_request: String,
    /// CPU limit.
    pub cpu_limit: String,
    /// Memory limit: above it the container is killed (OOMKilled), as in production.
    pub memory_limit: String,
    /// Whether the root filesystem is read-only (where the image writes nowhere else).
    pub read_only_root: bool,
}

impl Production {
    /// The memory limit in bytes, from a Kubernetes quantity (`1Gi`, `512Mi`, `500M`, `1000`);
    /// `None` for a form this does not read (fractions, exponents).
    pub fn memory_limit_bytes(&self) -> Option<u64> {
        let q = self.memory_limit.trim();
        let units: [(&str, u64); 8] = [
            ("Ki", 1 << 10),
            ("Mi", 1 << 20),
            ("Gi", 1 << 30),
            ("Ti", 1 << 40),
            ("k", 1_000),
            ("M", 1_000_000),
            ("G", 1_000_000_000),
            ("T", 1_000_000_000_000),
        ];
        let (digits, unit) = units
            .iter()
            .find_map(|(suffix, unit)| q.strip_suffix(suffix).map(|d| (d, *unit)))
            .unwrap_or((q, 1));
        digits.parse::<u64>().ok()?.checked_mul(unit)
    }

    /// The CPU limit in thousandths of a CPU, from a Kubernetes quantity (`500m`, `1`, `0.5`).
    pub fn cpu_limit_millis(&self) -> Option<u32> {
        let q = self.cpu_limit.trim();
        if let Some(m) = q.strip_suffix('m') {
            return m.parse().ok();
        }
        let (whole, fraction) = q.split_once('.').unwrap_or((q, ""));
        if fraction.len() > 3 || !fraction.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let fraction: u32 = format!("{fraction:0<3}").parse().ok()?;
        whole.parse::<u32>().ok()?.checked_mul(1000)?.checked_add(fraction)
    }
}

impl Service {
    /// The name other workloads reach it by: [`Service::service_name`], else `component`.
    pub fn dns_name<'a>(&'a self, component: &'a str) -> &'a str {
        self.service_name.as_deref().unwrap_or(component)
    }
}

/// A port a service listens on besides its main one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    /// Its name, e.g. `health` (a Kubernetes port name: at most 15 characters).
    pub name: String,
    /// The port inside a container.
    pub port: u16,
}

/// What the local backend starts for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// PostgreSQL through `initdb` + `postgres`, honouring the endpoint's user, database and password.
    Postgres,
    /// `redis-server` with the endpoint's password.
    Redis,
    /// A binary of this workspace, built with cargo.
    Cargo {
        /// The package.
        package: String,
    },
    /// A program on this machine.
    Path(PathBuf),
    /// etcd and kube-apiserver from `KUBEBUILDER_ASSETS`, as envtest starts them, with the
    /// identities the endpoint spec names.
    KubeApi,
}

/// What a container backend runs for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// An image reference, pulled when missing.
    Pull(String),
    /// A workspace binary put into an image built from a Containerfile of this repository,
    /// tagged by a hash of its inputs.
    Cargo {
        /// The package whose binary goes into the image.
        package: String,
        /// The Containerfile, relative to the workspace root.
        containerfile: PathBuf,
    },
    /// An image built by the engine from a Containerfile and a build context (the monorepo's
    /// own Dockerfiles), tagged by a hash of both.
    Build {
        /// The build context, relative to the workspace root.
        context: PathBuf,
        /// The Containerfile, relative to the workspace root.
        containerfile: PathBuf,
        /// The repository part of the tag, e.g. `localhost/xtask/workflowexecution-controller`.
        repository: String,
    },
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Image::Pull(r) => f.write_str(r),
            Image::Cargo { package, containerfile } => {
                write!(f, "built from {} with {package}", containerfile.display())
            }
            Image::Build { context, containerfile, .. } => {
                write!(f, "built from {} in {}", containerfile.display(), context.display())
            }
        }
    }
}

/// Whether a file is plain configuration or holds a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Plain configuration: written 0644, mounted read-only.
    Config,
    /// A secret: written 0600, mounted from the engine's secret store; never printed.
    Secret,
}

/// A file a service reads.
#[derive(Clone, PartialEq, Eq)]
pub struct File {
    /// Where the service sees it.
    pub path: PathBuf,
    /// Its contents.
    pub contents: String,
    /// Configuration or secret.
    pub kind: FileKind,
    /// On Kubernetes, the Secret that holds it when it is not the component's own: a pair the
    /// monorepo mounts from a Secret of its own (DataStorage's `datastorage-signing` and
    /// `datastorage-tls`, both `tls.crt` + `tls.key`).
    pub group: Option<String>,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let contents: &dyn fmt::Debug = match self.kind {
            FileKind::Config => &self.contents,
            FileKind::Secret => &"<redacted>",
        };
        f.debug_struct("File").field("path", &self.path).field("contents", contents).finish()
    }
}

impl File {
    /// The file name alone.
    pub fn name(&self) -> &str {
        self.path.file_name().and_then(|n| n.to_str()).unwrap_or_default()
    }

    /// A name unique among the service's files, where the files of a service are kept side by
    /// side (podman's secret store, the run directory): the group's name before the file's, as
    /// two pairs both have a `tls.crt`.
    pub fn key(&self) -> String {
        match &self.group {
            Some(group) => format!("{group}-{}", self.name()),
            None => self.name().to_string(),
        }
    }
}

/// What a service publishes once ready; the probe follows from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSpec {
    /// A PostgreSQL database: ready when it answers a query as `user`.
    Postgres {
        /// The service's login role.
        user: String,
        /// The database.
        database: String,
        /// The role's password.
        password: Secret,
    },
    /// A Redis server: ready when it answers `PING` after `AUTH`.
    Redis {
        /// The `requirepass` password.
        password: Secret,
    },
    /// A Kubernetes API that reviews tokens for DataStorage: its identity in `namespace`, and a
    /// ServiceAccount bound to `data-storage-client` with a token for each of `clients`.
    KubeApi {
        /// DataStorage's namespace (`POD_NAMESPACE`).
        namespace: String,
        /// The ServiceAccounts that call DataStorage.
        clients: Vec<String>,
    },
    /// An HTTP service: ready when `GET ready_path` answers 200.
    Http {
        /// The readiness path, e.g. `/readyz`.
        ready_path: String,
        /// The named port (see [`Service::ports`]) readiness is served on; `None`: the main port.
        ready_port: Option<String>,
        /// The liveness path on the same port, when the service has one apart from readiness
        /// (a liveness probe on readiness would restart a service whose database is down).
        live_path: Option<String>,
        /// The CA (PEM, public) its API port's certificate is signed by, when it serves HTTPS;
        /// readiness stays plain HTTP on its `ready_port`.
        ca: Option<String>,
    },
}

/// A host and port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Addr {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A published endpoint, as seen from this machine (xtask, the tests) and from other workloads
/// of the same backend (a container on the run's network).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// Which kind, with credentials.
    pub kind: EndpointKind,
    /// The address from this machine.
    pub host: Addr,
    /// The address from inside the backend.
    pub inside: Addr,
}

/// An endpoint's protocol and credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EndpointKind {
    /// PostgreSQL.
    Postgres {
        /// Login role.
        user: String,
        /// Database.
        database: String,
        /// Password.
        password: Secret,
    },
    /// Redis.
    Redis {
        /// Password.
        password: Secret,
    },
    /// A Kubernetes API: DataStorage's kubeconfig (its own token, by file) and its clients' tokens.
    KubeApi {
        /// DataStorage's namespace.
        namespace: String,
        /// The kubeconfig DataStorage reviews tokens with (`KUBECONFIG`); `None` where
        /// DataStorage runs in that cluster and reviews them as its ServiceAccount.
        #[serde(default)]
        kubeconfig: Option<PathBuf>,
        /// How DataStorage reaches it from inside the backend where it cannot read this
        /// machine's files (a podman container): given to it as files of its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inside: Option<KubeAccess>,
        /// Each client ServiceAccount's token file (0600).
        tokens: BTreeMap<String, PathBuf>,
    },
    /// HTTP.
    Http {
        /// Where readiness is read from this machine (`http://127.0.0.1:<health port>/readyz`);
        /// kept in the run's state so a restart waits on the same thing `up` did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ready_url: Option<String>,
        /// The CA (PEM, public) its API port's certificate is signed by, when it serves HTTPS.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca: Option<String>,
    },
}

/// A Kubernetes API as DataStorage reaches it from inside a backend: the server, the CA that
/// signed it and DataStorage's token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KubeAccess {
    /// The server's URL from inside, e.g. `https://kube-api:6443`.
    pub server: String,
    /// The CA (PEM, public).
    pub ca: String,
    /// DataStorage's ServiceAccount token.
    pub token: Secret,
}

/// Which address of an endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// From this machine.
    Host,
    /// From inside the backend.
    Inside,
}

impl Endpoint {
    /// The address for `view`.
    pub fn addr(&self, view: View) -> &Addr {
        match view {
            View::Host => &self.host,
            View::Inside => &self.inside,
        }
    }

    /// The URL for `view`, password included: a secret itself.
    pub fn url(&self, view: View) -> Secret {
        let a = self.addr(view);
        Secret::new(match &self.kind {
            EndpointKind::Postgres { user, database, password } => {
                format!("postgres://{user}:{}@{a}/{database}", password.expose())
            }
            EndpointKind::Redis { password } => format!("redis://:{}@{a}", password.expose()),
            EndpointKind::KubeApi { .. } => format!("https://{a}"),
            EndpointKind::Http { ca: Some(_), .. } => format!("https://{a}"),
            EndpointKind::Http { ca: None, .. } => format!("http://{a}"),
        })
    }

    /// The password, if the endpoint has one.
    pub fn password(&self) -> Option<&Secret> {
        match &self.kind {
            EndpointKind::Postgres { password, .. } | EndpointKind::Redis { password } => Some(password),
            EndpointKind::Http { .. } | EndpointKind::KubeApi { .. } => None,
        }
    }
}

/// A secret value (a password, a URL holding one): `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A fresh random password (24 alphanumerics).
    pub fn generate() -> Self {
        Self(pgserver::random_password())
    }

    /// The value itself, for the one place that must hand it over (a file, stdin, an environment).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact::connection_string(&self.0).replace(&self.0, "***"))
    }
}

/// A one-shot job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Goose migrations applied to a PostgreSQL endpoint.
    Migrations {
        /// The migrations folder.
        dir: PathBuf,
        /// Which migrations.
        selection: migrations::Selection,
        /// The component whose endpoint is the database.
        database: &'static str,
    },
}

/// Where a workload runs: decides the paths its files get and the addresses it sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A process on this machine; its files live in `dir`.
    Host {
        /// The component's directory in the run directory.
        dir: PathBuf,
    },
    /// A container (or pod); files are mounted at fixed paths.
    Container,
}

impl Placement {
    /// Which endpoint addresses a workload placed here uses.
    pub fn view(&self) -> View {
        match self {
            Placement::Host { .. } => View::Host,
            Placement::Container => View::Inside,
        }
    }
}

/// Everything a component renders its workload from.
pub struct Ctx<'a> {
    /// The suite.
    pub suite: &'a Suite,
    /// The workspace root.
    pub root: &'a std::path::Path,
    /// Where the workload runs.
    pub placement: Placement,
    /// Endpoints published so far (at plan time: planned ones with default ports).
    pub endpoints: &'a BTreeMap<String, Endpoint>,
    /// The run's secrets, by name.
    pub secrets: &'a Secrets,
    /// The image chosen for each component (suite file, then flags).
    pub images: &'a BTreeMap<String, String>,
    /// The port the backend chose for a service on this machine; `None`: the component's own.
    pub port: Option<u16>,
    /// The ports the backend chose for a service's named ports; missing: the component's own.
    pub ports: BTreeMap<String, u16>,
}

impl Ctx<'_> {
    /// The endpoint of a component this one needs.
    pub fn endpoint(&self, component: &str) -> Result<&Endpoint, InfraError> {
        self.endpoints.get(component).ok_or_else(|| InfraError::NotPublished(component.to_string()))
    }

    /// The run's secret `name` (generated on first use when the run started).
    pub fn secret(&self, name: &str) -> Secret {
        self.secrets.get(name)
    }

    /// DataStorage's signing pair for this run (a placeholder in plans).
    pub fn signing_pair(&self) -> Result<Pair, InfraError> {
        self.secrets.signing_pair()
    }

    /// DataStorage's TLS for this run (a placeholder in plans); see [`Secrets::tls`].
    pub fn tls(&self, names: &[String], ips: &[std::net::IpAddr]) -> Result<Tls, InfraError> {
        self.secrets.tls(names, ips)
    }

    /// The port for the service's named port `name`: the backend's choice, else `default`.
    pub fn named_port(&self, name: &str, default: u16) -> u16 {
        self.ports.get(name).copied().unwrap_or(default)
    }

    /// The image for `component`: the suite's or a flag's choice, else `default`.
    pub fn image(&self, component: &str, default: &str) -> String {
        self.images.get(component).cloned().unwrap_or_else(|| default.to_string())
    }
}

/// The run's secrets: passwords generated once per run, and DataStorage's signing pair.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Secrets {
    passwords: BTreeMap<String, Secret>,
    #[serde(skip)]
    signing: Option<Arc<Signing>>,
    /// DataStorage's TLS (a CA and the serving pair it signed), made on first use: every
    /// rendering of the run's workloads, and the CA its clients get, share one.
    #[serde(skip)]
    tls: Option<Arc<OnceLock<Result<Tls, String>>>>,
}

/// DataStorage's signing pair, generated on a thread of its own: an RSA key takes 0.3 to 1.5 s
/// here, which overlaps with PostgreSQL and Redis starting instead of delaying the run.
struct Signing {
    pending: Mutex<Option<std::thread::JoinHandle<Result<Pair, datastorage::certs::CertError>>>>,
    pair: OnceLock<Result<Pair, String>>,
}

impl fmt::Debug for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signing(***)")
    }
}

impl Secrets {
    /// Generates every password in `names`.
    pub fn generate<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            passwords: names.into_iter().map(|n| (n.to_string(), Secret::generate())).collect(),
            signing: None,
            tls: None,
        }
    }

    /// Starts generating DataStorage's signing pair (see [`Secrets::signing_pair`]).
    pub fn with_signing(mut self) -> Self {
        let pending = std::thread::Builder::new()
            .name("signing-pair".into())
            .spawn(datastorage::certs::signing_pair)
            .map_err(|e| e.to_string());
        let signing = Signing { pending: Mutex::new(None), pair: OnceLock::new() };
        match pending {
            Ok(handle) => *signing.pending.lock().expect("signing lock") = Some(handle),
            Err(e) => {
                let _ = signing.pair.set(Err(format!("starting its thread: {e}")));
            }
        }
        self.signing = Some(Arc::new(signing));
        self.tls = Some(Arc::default());
        self
    }

    /// DataStorage's TLS for this run, for `names` and `ips`: made by the first call (an ECDSA
    /// pair takes milliseconds), the same for every later one; a fixed placeholder when the run
    /// starts nothing (plans and dry runs).
    pub fn tls(&self, names: &[String], ips: &[std::net::IpAddr]) -> Result<Tls, InfraError> {
        let Some(tls) = &self.tls else {
            let placeholder = |what: &str| format!("<tls {what}>");
            return Ok(Tls {
                ca: placeholder("ca"),
                server: Pair { cert: placeholder("cert"), key: placeholder("key") },
            });
        };
        tls.get_or_init(|| datastorage::certs::tls(names, ips).map_err(|e| e.to_string()))
            .clone()
            .map_err(|e| InfraError::Model(format!("datastorage: generating the TLS pair: {e}")))
    }

    /// The same passwords without the signing pair: what a plan renders with, so that planning
    /// never waits for the key (a plan shows no secret's contents).
    pub fn for_plan(&self) -> Self {
        Self { passwords: self.passwords.clone(), signing: None, tls: None }
    }

    /// DataStorage's signing pair for this run, waiting for its generation to finish; a fixed
    /// placeholder when none was started (plans and dry runs).
    pub fn signing_pair(&self) -> Result<Pair, InfraError> {
        let Some(signing) = &self.signing else {
            return Ok(Pair { cert: "<signing cert>".into(), key: "<signing key>".into() });
        };
        let pair = signing.pair.get_or_init(|| {
            let handle = signing.pending.lock().expect("signing lock").take();
            match handle.map(std::thread::JoinHandle::join) {
                Some(Ok(generated)) => generated.map_err(|e| e.to_string()),
                Some(Err(_)) => Err("its thread panicked".into()),
                None => Err("generated twice".into()),
            }
        });
        pair.clone().map_err(|e| InfraError::Model(format!("datastorage: generating the signing pair: {e}")))
    }

    /// Secret `name`; an unknown name is a programming error, answered with a fixed placeholder
    /// so a dry run can render without secrets.
    pub fn get(&self, name: &str) -> Secret {
        self.passwords.get(name).cloned().unwrap_or_else(|| Secret::new(format!("<{name}>")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_quantities_become_podman_limits() {
        let p = |cpu: &str, memory: &str| Production {
            cpu_request: String::new(),
            memory_request: String::new(),
            cpu_limit: cpu.into(),
            memory_limit: memory.into(),
            read_only_root: true,
        };
        let ds = p("500m", "1Gi");
        assert_eq!((ds.cpu_limit_millis(), ds.memory_limit_bytes()), (Some(500), Some(1 << 30)));
        assert_eq!(p("2", "512Mi").cpu_limit_millis(), Some(2000));
        assert_eq!(p("0.25", "500M").cpu_limit_millis(), Some(250));
        assert_eq!(p("1", "500M").memory_limit_bytes(), Some(500_000_000));
        assert_eq!(p("a lot", "1e9").cpu_limit_millis(), None);
        assert_eq!(p("1", "1e9").memory_limit_bytes(), None);
    }

    #[test]
    fn secrets_never_show() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.to_string(), "***");
        let url = Endpoint {
            kind: EndpointKind::Postgres { user: "u".into(), database: "d".into(), password: s.clone() },
            host: Addr { host: "127.0.0.1".into(), port: 5 },
            inside: Addr { host: "postgres".into(), port: 5432 },
        }
        .url(View::Inside);
        assert_eq!(url.expose(), "postgres://u:hunter2-very-secret@postgres:5432/d");
        assert!(!url.to_string().contains("hunter2"), "{url}");
        assert!(url.to_string().contains("postgres:5432/d"), "{url}");
    }
}
