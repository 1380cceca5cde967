//! Starting the cluster, each part gated on real readiness, and what `status` and `env` read.
//!
//! Order (independent parts at once): the bridge and guard chains; etcd, containerd and the
//! registry; the API server once etcd answers; the pause image once containerd answers; then the
//! controller manager, the scheduler, kube-proxy, the DNS responder and the kubelet; ready when
//! the node is Ready, the `default` ServiceAccount exists, kube-proxy has synced, the DNS answers
//! for `kubernetes.default` and the registry answers. Every process is recorded by PID in the
//! state file before it is waited on, so `down` finds it whatever happens next.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use wait::{Probe, Waiter};
use xshell::{Shell, cmd};

use crate::config::{self, Layout, Network};
use crate::probes::{AccountExists, ApiReady, NodeReady, Resolves, SocketProbe};
use crate::{Error, assets, net, pki};

/// Says how far things got, a line at a time.
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// One process of the cluster, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Its part, e.g. `kube-apiserver`.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// The program it runs (checked against /proc before it is signalled).
    pub program: String,
}

/// What a running cluster is: written to `cluster.json` as it starts, read by `down` and `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The folder of the binaries it runs.
    pub assets: PathBuf,
    /// Where etcd keeps its data (a tmpfs when there is a roomy one).
    pub etcd_data: PathBuf,
    /// The loopback registry, `127.0.0.1:<port>`.
    pub registry: String,
    /// Its processes, in the order they started.
    pub processes: Vec<Process>,
    /// Each sysctl the cluster needs, with its value before `up` changed anything.
    pub sysctls: Vec<(String, String)>,
    /// Host paths `up` (or the programs it started) created, removed again by `down`.
    pub created: Vec<PathBuf>,
    /// When `up` was done (seconds since the epoch), 0 while it starts.
    pub ready_at: u64,
}

impl State {
    /// Reads the state file of `layout`; `None` when there is none.
    pub fn read(layout: &Layout) -> Result<Option<State>, Error> {
        let path = layout.state_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::State { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", path)(e)),
        }
    }

    fn write(&self, layout: &Layout) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(self).expect("the state serializes");
        Ok(procs::write_file_atomic(&layout.state_file(), &json, 0o600)?)
    }

    /// The recorded process named `name`.
    pub fn process(&self, name: &str) -> Option<&Process> {
        self.processes.iter().find(|p| p.name == name)
    }
}

/// Whether `pid` runs `program` (by its executable's name), so a recycled PID is never signalled.
pub fn runs(pid: u32, program: &str) -> bool {
    if !procs::pid_alive(pid) {
        return false;
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let want = Path::new(program).file_name();
    exe.as_deref().and_then(Path::file_name).zip(want).is_some_and(|(a, b)| {
        // A replaced binary reads as `name (deleted)`.
        a == b || a.to_string_lossy().trim_end_matches(" (deleted)") == b.to_string_lossy()
    })
}

/// How `up` is asked to run.
pub struct UpOptions {
    /// The state directory, e.g. `<workspace>/.xtask/devcluster`.
    pub dir: PathBuf,
    /// The command that runs the DNS responder (e.g. `[xtask, devcluster, dns]`); `up` adds
    /// `--kubeconfig K --listen ADDR --domain D`.
    pub dns_command: Vec<OsString>,
    /// How long every part together may take to become ready.
    pub timeout: Duration,
    /// Hears progress.
    pub progress: Progress,
}

/// What `up` did.
#[derive(Debug, Clone, Serialize)]
pub struct Up {
    /// The administrator's kubeconfig (0600).
    pub kubeconfig: PathBuf,
    /// The loopback registry the kubelet pulls from.
    pub registry: String,
    /// The assets folder (`KUBEBUILDER_ASSETS`).
    pub assets: PathBuf,
    /// Whether it was running already (nothing started).
    pub already: bool,
    /// How long `up` took.
    pub seconds: f64,
}

/// The owner file: which state directory the machine's one cluster belongs to.
fn owner_file() -> PathBuf {
    Path::new(config::RUN_DIR).join("owner")
}

/// The state directory of the cluster running on this machine, if one does.
pub fn running_owner() -> Option<PathBuf> {
    let owner = PathBuf::from(std::fs::read_to_string(owner_file()).ok()?.trim());
    let layout = Layout::new(&owner, "");
    let state = State::read(&layout).ok()??;
    state.processes.iter().any(|p| runs(p.pid, &p.program)).then_some(owner)
}

/// A client for the administrator's kubeconfig at `path`.
pub async fn client(path: &Path) -> Result<Client, Error> {
    envtest::kubeconfig::client(path).await.map_err(|e| match e {
        envtest::Error::Kubeconfig { path, reason } => Error::State { path, reason },
        other => Error::Envtest(other),
    })
}

/// Programs `up` runs besides the built ones, with their Debian packages.
const RUNTIME_NEEDS: [(&str, &str); 8] = [
    ("containerd", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    ("iptables", "iptables"),
    ("ip", "iproute2"),
    ("docker-registry", "docker-registry"),
    ("conntrack", "conntrack"),
    ("/usr/lib/cni/bridge", "containernetworking-plugins"),
];

/// What `up` needs on this machine that it lacks, with the packages.
pub fn missing_runtime() -> Vec<(String, String)> {
    let on_path = |p: &str| {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(p).is_file()))
    };
    RUNTIME_NEEDS
        .iter()
        .filter(|(what, _)| if what.starts_with('/') { !Path::new(what).exists() } else { !on_path(what) })
        .map(|(w, p)| (w.to_string(), p.to_string()))
        .collect()
}

/// Starts the cluster kept in `options.dir`, building Kubernetes first when needed; a cluster
/// already running there is left as it is. Anything half-started by a failure is stopped.
pub async fn up(options: UpOptions) -> Result<Up, Error> {
    let started = Instant::now();
    let network = Network::fixed();
    let progress = options.progress.clone();
    if let Some(owner) = running_owner()
        && owner != options.dir
    {
        return Err(Error::Busy { owner });
    }
    let probe_layout = Layout::new(&options.dir, "");
    if let Some(state) = State::read(&probe_layout)? {
        let layout = Layout::new(&options.dir, &state.assets);
        if state.ready_at > 0 && healthy(&layout, &state).await {
            return Ok(Up {
                kubeconfig: layout.kubeconfig(),
                registry: state.registry,
                assets: state.assets,
                already: true,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        progress("a devcluster is recorded here but is not whole: stopping what is left of it first");
        crate::teardown::down(&layout, &progress).await?;
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Conflict(
            "the devcluster needs root (bridges, iptables, mounts, cgroups): run it as root".into(),
        ));
    }
    let missing = missing_runtime();
    if !missing.is_empty() {
        return Err(Error::MissingPackages { missing });
    }
    let conflicts = net::conflicts(&network)?;
    if !conflicts.is_empty() {
        return Err(Error::Conflict(format!(
            "this machine routes into the devcluster's ranges ({} pods, {} services) already: {}",
            network.pod_cidr,
            network.service_cidr,
            conflicts.join("; ")
        )));
    }
    // `down` removes every KUBE- chain: any there now belongs to another Kubernetes.
    let foreign = net::chains("KUBE-")?;
    if !foreign.is_empty() {
        return Err(Error::Conflict(format!(
            "another Kubernetes' kube-proxy or kubelet has iptables chains on this machine ({}); \
             stop it first, or if it is gone, remove its chains",
            foreign.join(", ")
        )));
    }
    let p = progress.clone();
    let assets = tokio::task::spawn_blocking(move || assets::find_or_build(&|line| p(line)))
        .await
        .map_err(|e| Error::NotReady { part: "the Kubernetes build".into(), reason: e.to_string() })??;
    let layout = Layout::new(&options.dir, &assets);
    let result = start(&layout, &network, &options, started).await;
    match result {
        Ok(up) => Ok(up),
        Err(e) => {
            progress(
                "the devcluster did not come up: stopping what started (logs kept under the state directory's logs/ until then)",
            );
            let logs = keep_logs(&layout);
            let _ = crate::teardown::down(&layout, &progress).await;
            Err(match (e, logs) {
                (Error::NotReady { part, reason }, Some(kept)) => {
                    Error::NotReady { part, reason: format!("{reason}\nlogs kept in {}", kept.display()) }
                }
                (e, _) => e,
            })
        }
    }
}

/// Copies the logs of a failed start out of the state directory, which `down` removes.
fn keep_logs(layout: &Layout) -> Option<PathBuf> {
    let logs = layout.path("logs");
    let kept = layout.dir.with_file_name("devcluster-failed-logs");
    let _ = std::fs::remove_dir_all(&kept);
    std::fs::create_dir_all(&kept).ok()?;
    for entry in std::fs::read_dir(&logs).ok()?.flatten() {
        let _ = std::fs::copy(entry.path(), kept.join(entry.file_name()));
    }
    Some(kept)
}

/// Whether every recorded process runs and the API answers.
async fn healthy(layout: &Layout, state: &State) -> bool {
    if !state.processes.iter().all(|p| runs(p.pid, &p.program)) {
        return false;
    }
    let Ok(client) = client(&layout.kubeconfig()).await else { return false };
    let mut probe = ApiReady(client);
    matches!(tokio::time::timeout(Duration::from_secs(5), probe.check()).await, Ok(wait::Status::Ready))
}

/// A data directory for etcd: a tmpfs when one has room (etcd syncs every write, which a slow
/// disk makes the API server's bottleneck), else the state directory.
fn etcd_data(layout: &Layout) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let tmpfs =
        nix::sys::statfs::statfs(shm).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    let free = nix::sys::statvfs::statvfs(shm).map(|s| s.blocks_available() * s.fragment_size()).unwrap_or(0);
    if tmpfs && free >= 1 << 30 { shm.join("xtask-devcluster-etcd") } else { layout.path("etcd") }
}

/// The shared state while starting: recorded as each process starts.
struct Recorder {
    layout: Layout,
    state: Mutex<State>,
}

impl Recorder {
    fn update(&self, f: impl FnOnce(&mut State)) -> Result<(), Error> {
        let mut state = self.state.lock().expect("state lock");
        f(&mut state);
        state.write(&self.layout)
    }

    /// Starts `argv` as part `name`, detached (the cluster outlives `up`), its output in its log,
    /// recorded before anything waits on it.
    fn spawn(&self, name: &str, argv: &[OsString]) -> Result<Started, Error> {
        let log = self.layout.log(name);
        let mut command = procs::command(&argv[0]);
        command.args(&argv[1..]);
        procs::log_output(&mut command, &log, procs::OpenLog::Truncate)?;
        // A group of its own: a Ctrl-C meant for `up` reaches `up`, which stops the cluster in order.
        procs::own_process_group(&mut command);
        let child = procs::spawn(command, procs::Tie::Detached)?;
        let program = argv[0].to_string_lossy().into_owned();
        self.update(|s| {
            s.processes.push(Process { name: name.into(), pid: child.id(), program: program.clone() })
        })?;
        let line = argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
        Ok(Started { name: name.into(), child: Arc::new(Mutex::new(child)), command: line, log })
    }
}

/// A process just started.
struct Started {
    name: String,
    child: Arc<Mutex<Child>>,
    command: String,
    log: PathBuf,
}

impl Started {
    /// Waits until `ready` passes while the process runs; its exit fails the wait at once with
    /// the exit status and the end of its log.
    async fn ready(
        &self,
        ready: impl Probe + 'static,
        deadline: Instant,
        progress: &Progress,
    ) -> Result<(), Error> {
        let mut probe =
            wait::ProcessProbe::new(self.child.clone(), self.command.clone(), self.log.clone()).until(ready);
        wait_until(&self.name, &mut probe, deadline, progress).await
    }
}

impl Started {
    /// Waits only for the process to be running (a part with no readiness of its own to ask).
    async fn running(&self, deadline: Instant, progress: &Progress) -> Result<(), Error> {
        let mut probe = wait::ProcessProbe::new(self.child.clone(), self.command.clone(), self.log.clone());
        wait_until(&self.name, &mut probe, deadline, progress).await
    }
}

async fn wait_until(
    part: &str,
    probe: &mut dyn Probe,
    deadline: Instant,
    progress: &Progress,
) -> Result<(), Error> {
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
    let (p, name) = (progress.clone(), part.to_string());
    Waiter::new(left)
        .on_progress(move |w| p(&format!("devcluster: {name}: {w}")))
        .wait_for(probe)
        .await
        .map(drop)
        .map_err(|e| Error::NotReady { part: part.into(), reason: e.to_string() })
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn path_arg(flag: &str, path: &Path) -> OsString {
    let mut s = OsString::from(flag);
    s.push(path.as_os_str());
    s
}

async fn start(
    layout: &Layout,
    network: &Network,
    options: &UpOptions,
    started: Instant,
) -> Result<Up, Error> {
    let deadline = started + options.timeout;
    let progress = &options.progress;
    for d in [
        "logs",
        "config/certs.d",
        "cni/net.d",
        "cni/ipam",
        "containerd/root",
        "containerd/opt",
        "kubelet",
        "registry",
    ] {
        let dir = layout.path(d);
        std::fs::create_dir_all(&dir).map_err(Error::io("creating", dir))?;
    }
    std::fs::create_dir_all(&layout.run).map_err(Error::io("creating", &layout.run))?;
    procs::write_file(&owner_file(), layout.dir.display().to_string().as_bytes(), 0o644)?;
    let etcd_data = etcd_data(layout);
    let registry_port = procs::free_port()?;
    let registry = format!("127.0.0.1:{registry_port}");
    let mut created = Vec::new();
    for host in [
        "/var/lib/kubelet",
        "/var/lib/cni",
        "/run/containerd",
        "/run/netns",
        "/etc/containers/registries.conf.d",
    ] {
        if !Path::new(host).exists() {
            created.push(PathBuf::from(host));
        }
    }
    created.push(PathBuf::from(config::PODMAN_REGISTRY_CONF));
    created.push(etcd_data.clone());
    let sysctls = net::SYSCTLS.iter().filter_map(|s| net::sysctl(s).map(|v| (s.to_string(), v))).collect();
    let recorder = Arc::new(Recorder {
        layout: layout.clone(),
        state: Mutex::new(State {
            assets: layout.assets.clone(),
            etcd_data: etcd_data.clone(),
            registry: registry.clone(),
            sysctls,
            created,
            ..Default::default()
        }),
    });
    recorder.update(|_| ())?;

    progress("devcluster: certificates, configuration, the bridge and its guard chains");
    pki::make(&layout.path("pki"), network)?;
    write_configs(layout, network, &registry, registry_port)?;
    for name in net::SYSCTLS_SET {
        net::set_sysctl(name, "1")?;
    }
    net::create_bridge(network)?;
    net::guard(network)?;

    let node = network.node_ip.to_string();
    let (client_port, peer_port) = network.etcd_ports;
    let mut etcd_argv = os(&["etcd", "--name", network.node_name]);
    etcd_argv.push(path_arg("--data-dir=", &etcd_data));
    etcd_argv.extend(os(&[
        &format!("--listen-client-urls=http://{node}:{client_port}"),
        &format!("--advertise-client-urls=http://{node}:{client_port}"),
        &format!("--listen-peer-urls=http://{node}:{peer_port}"),
        &format!("--initial-advertise-peer-urls=http://{node}:{peer_port}"),
        &format!("--initial-cluster={}=http://{node}:{peer_port}", network.node_name),
        "--quota-backend-bytes=2147483648",
        "--log-level=warn",
    ]));
    let etcd = recorder.spawn("etcd", &etcd_argv)?;
    let containerd = recorder.spawn(
        "containerd",
        &[OsString::from("containerd"), "--config".into(), layout.path("config/containerd.toml").into()],
    )?;
    let registry_proc = recorder.spawn(
        "registry",
        &[OsString::from("docker-registry"), "serve".into(), layout.path("config/registry.yaml").into()],
    )?;

    let etcd_health = wait::HttpProbe::get(&format!("{}/health", network.etcd_url()))
        .map_err(|e| Error::NotReady { part: "etcd".into(), reason: e.to_string() })?
        .status(200);
    // etcd on a local address answers in a second or two: waiting the whole deadline for it
    // would only hide a network or data-directory problem.
    etcd.ready(etcd_health, deadline.min(Instant::now() + Duration::from_secs(30)), progress).await?;
    let pki_dir = layout.path("pki");
    let pki = |name: &str| pki_dir.join(name).display().to_string();
    let apiserver = recorder.spawn(
        "kube-apiserver",
        &os(&[
            &layout.bin("kube-apiserver").display().to_string(),
            &format!("--etcd-servers={}", network.etcd_url()),
            &format!("--bind-address={node}"),
            &format!("--advertise-address={node}"),
            &format!("--secure-port={}", network.api_port),
            "--insecure-port=0",
            &format!("--tls-cert-file={}", pki("apiserver.crt")),
            &format!("--tls-private-key-file={}", pki("apiserver.key")),
            &format!("--client-ca-file={}", pki("ca.crt")),
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            &format!("--service-account-issuer=https://kubernetes.default.svc.{}", network.domain),
            &format!("--api-audiences=https://kubernetes.default.svc.{}", network.domain),
            &format!("--service-account-key-file={}", pki("sa.pub")),
            &format!("--service-account-signing-key-file={}", pki("sa.key")),
            &format!("--service-cluster-ip-range={}", network.service_cidr),
            "--allow-privileged=true",
            "--kubelet-preferred-address-types=InternalIP",
            &format!("--kubelet-client-certificate={}", pki("apiserver-kubelet-client.crt")),
            &format!("--kubelet-client-key={}", pki("apiserver-kubelet-client.key")),
            &format!("--cert-dir={}", layout.path("apiserver").display()),
            "--profiling=false",
            "--v=1",
        ]),
    )?;

    // containerd and the registry come up while the API server does.
    let socket = SocketProbe(layout.containerd_socket());
    let (containerd_ready, api_client) = tokio::join!(containerd.ready(socket, deadline, progress), async {
        let client = client(&layout.kubeconfig()).await?;
        apiserver.ready(ApiReady(client.clone()), deadline, progress).await?;
        Ok::<_, Error>(client)
    });
    containerd_ready?;
    let client = api_client?;
    import_pause(layout)?;

    let kubeconfig = layout.kubeconfig().display().to_string();
    let cm = recorder.spawn(
        "kube-controller-manager",
        &os(&[
            &layout.bin("kube-controller-manager").display().to_string(),
            &format!("--kubeconfig={kubeconfig}"),
            "--secure-port=0",
            "--port=0",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            &format!("--service-account-private-key-file={}", pki("sa.key")),
            &format!("--root-ca-file={}", pki("ca.crt")),
            &format!("--cluster-signing-cert-file={}", pki("ca.crt")),
            &format!("--cluster-signing-key-file={}", pki("ca.key")),
            &format!("--service-cluster-ip-range={}", network.service_cidr),
            "--allocate-node-cidrs=false",
            "--v=1",
        ]),
    )?;
    let scheduler = recorder.spawn(
        "kube-scheduler",
        &os(&[
            &layout.bin("kube-scheduler").display().to_string(),
            &format!("--kubeconfig={kubeconfig}"),
            "--secure-port=0",
            "--port=0",
            "--leader-elect=false",
            "--v=1",
        ]),
    )?;
    let proxy = recorder.spawn(
        "kube-proxy",
        &os(&[
            &layout.bin("kube-proxy").display().to_string(),
            &format!("--config={}", layout.path("config/kube-proxy.yaml").display()),
            "--v=1",
        ]),
    )?;
    let mut dns_argv = options.dns_command.clone();
    let dns_addr = std::net::SocketAddr::from((network.node_ip, 53));
    dns_argv.extend(os(&[
        "--kubeconfig",
        &kubeconfig,
        "--listen",
        &dns_addr.to_string(),
        "--domain",
        network.domain,
    ]));
    let dns = recorder.spawn("dns", &dns_argv)?;
    let kubelet = recorder.spawn(
        "kubelet",
        &os(&[
            &layout.bin("kubelet").display().to_string(),
            &format!("--config={}", layout.path("config/kubelet.yaml").display()),
            &format!("--kubeconfig={}", layout.path("node.kubeconfig").display()),
            "--container-runtime=remote",
            &format!("--container-runtime-endpoint=unix://{}", layout.containerd_socket().display()),
            &format!("--hostname-override={}", network.node_name),
            &format!("--node-ip={node}"),
            &format!("--root-dir={}", layout.path("kubelet").display()),
            &format!("--cert-dir={}", layout.path("kubelet/pki").display()),
            "--v=1",
        ]),
    )?;

    let proxy_health =
        wait::HttpProbe::get(&format!("http://127.0.0.1:{}/healthz", read_port(layout, "kube-proxy")?))
            .map_err(|e| Error::NotReady { part: "kube-proxy".into(), reason: e.to_string() })?
            .status(200);
    let registry_ready = wait::HttpProbe::get(&format!("http://{registry}/v2/"))
        .map_err(|e| Error::NotReady { part: "registry".into(), reason: e.to_string() })?
        .status(200);
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let accounts = Api::namespaced(client.clone(), "default");
    let resolves = Resolves {
        server: dns_addr,
        name: format!("kubernetes.default.svc.{}", network.domain),
        expect: network.api_service_ip,
    };
    let results = tokio::join!(
        kubelet.ready(NodeReady { api: nodes, name: network.node_name.into() }, deadline, progress),
        cm.ready(AccountExists { api: accounts, name: "default".into() }, deadline, progress),
        scheduler.running(deadline, progress),
        proxy.ready(proxy_health, deadline, progress),
        dns.ready(resolves, deadline, progress),
        registry_proc.ready(registry_ready, deadline, progress),
    );
    let (a, b, c, d, e, f) = results;
    a?;
    b?;
    c?;
    d?;
    e?;
    f?;
    procs::write_file(
        Path::new(config::PODMAN_REGISTRY_CONF),
        config::podman_registry_conf(&registry).as_bytes(),
        0o644,
    )?;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1);
    recorder.update(|s| s.ready_at = now)?;
    Ok(Up {
        kubeconfig: layout.kubeconfig(),
        registry,
        assets: layout.assets.clone(),
        already: false,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The kube-proxy healthz port written into its config.
fn read_port(layout: &Layout, part: &str) -> Result<u16, Error> {
    let path = layout.path("config/ports.json");
    let text = std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?;
    let ports: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::State { path: path.clone(), reason: e.to_string() })?;
    ports[part]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or(Error::State { path, reason: format!("no port for {part}") })
}

fn write_configs(
    layout: &Layout,
    network: &Network,
    registry: &str,
    registry_port: u16,
) -> Result<(), Error> {
    let ports = procs::free_ports(4)?;
    let (kubelet_health, proxy_health, proxy_metrics, registry_debug) =
        (ports[0], ports[1], ports[2], ports[3]);
    let files: Vec<(PathBuf, String, u32)> = vec![
        (layout.path("config/containerd.toml"), config::containerd_toml(layout), 0o644),
        (layout.path(&format!("config/certs.d/{registry}/hosts.toml")), config::registry_hosts_toml(registry), 0o644),
        (layout.path("cni/net.d/10-xtask-devcluster.conflist"), config::cni_conflist(network, layout), 0o644),
        (layout.path("config/resolv.conf"), config::resolv_conf(network), 0o644),
        (layout.path("config/kubelet.yaml"), config::kubelet_yaml(network, layout, kubelet_health), 0o644),
        (layout.path("config/kube-proxy.yaml"), config::kube_proxy_yaml(network, layout, proxy_health, proxy_metrics), 0o644),
        (layout.path("config/registry.yaml"), config::registry_yaml(layout, registry_port, registry_debug), 0o644),
        (layout.kubeconfig(), config::kubeconfig(network, layout, "admin"), 0o600),
        (layout.path("node.kubeconfig"), config::kubeconfig(network, layout, "node"), 0o600),
        (
            layout.path("config/ports.json"),
            serde_json::json!({"kubelet": kubelet_health, "kube-proxy": proxy_health, "registry": registry_port}).to_string(),
            0o644,
        ),
    ];
    for (path, contents, mode) in files {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        }
        procs::write_file(&path, contents.as_bytes(), mode)?;
    }
    Ok(())
}

/// Imports the pause image into containerd's `k8s.io` namespace.
fn import_pause(layout: &Layout) -> Result<(), Error> {
    let program = std::fs::read(layout.bin("pause")).map_err(Error::io("reading", layout.bin("pause")))?;
    let archive = crate::image::pause_archive(config::PAUSE_IMAGE, &program)?;
    let path = layout.path("config/pause.tar");
    procs::write_file(&path, &archive, 0o644)?;
    let sh = Shell::new().map_err(Error::cmd("starting a shell"))?;
    let (socket, ns) = (layout.containerd_socket(), config::CONTAINERD_NAMESPACE);
    cmd!(sh, "ctr --address {socket} --namespace {ns} images import {path}")
        .quiet()
        .ignore_stdout()
        .run()
        .map_err(Error::cmd("importing the pause image into containerd"))
}

/// One part's state, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct PartStatus {
    /// The part.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Whether it runs.
    pub running: bool,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The state directory.
    pub dir: PathBuf,
    /// Whether a cluster is recorded there.
    pub recorded: bool,
    /// Whether it finished starting.
    pub ready: bool,
    /// Each process.
    pub parts: Vec<PartStatus>,
    /// The node's readiness, as the API says (or why it could not be asked).
    pub node: String,
    /// The kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// The registry.
    pub registry: Option<String>,
    /// The assets folder.
    pub assets: Option<PathBuf>,
}

/// The state of the cluster kept in `dir`.
pub async fn status(dir: &Path) -> Result<Status, Error> {
    let network = Network::fixed();
    let Some(state) = State::read(&Layout::new(dir, ""))? else {
        return Ok(Status {
            dir: dir.into(),
            recorded: false,
            ready: false,
            parts: Vec::new(),
            node: "no cluster".into(),
            kubeconfig: None,
            registry: None,
            assets: None,
        });
    };
    let layout = Layout::new(dir, &state.assets);
    let parts: Vec<PartStatus> = state
        .processes
        .iter()
        .map(|p| PartStatus { name: p.name.clone(), pid: p.pid, running: runs(p.pid, &p.program) })
        .collect();
    let node = match client(&layout.kubeconfig()).await {
        Ok(client) => {
            let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client);
            match tokio::time::timeout(Duration::from_secs(5), nodes.get_opt(network.node_name)).await {
                Ok(Ok(Some(n))) => crate::probes::node_status(&n).to_string(),
                Ok(Ok(None)) => "not registered".into(),
                Ok(Err(e)) => format!("API: {e}"),
                Err(_) => "API: no answer within 5s".into(),
            }
        }
        Err(e) => e.to_string(),
    };
    Ok(Status {
        dir: dir.into(),
        recorded: true,
        ready: state.ready_at > 0 && parts.iter().all(|p| p.running),
        parts,
        node,
        kubeconfig: Some(layout.kubeconfig()),
        registry: Some(state.registry),
        assets: Some(state.assets),
    })
}
