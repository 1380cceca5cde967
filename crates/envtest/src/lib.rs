//! A Kubernetes API without a cluster: etcd and kube-apiserver from a `KUBEBUILDER_ASSETS`
//! folder, on free loopback ports, started the way controller-runtime's envtest starts them.
//! No controllers and no nodes run: objects are stored and served, authentication (client
//! certificates, ServiceAccount tokens, TokenReview) and authorization (RBAC,
//! SubjectAccessReview) are real.
//!
//! What DataStorage needs on backends without a cluster, as the monorepo's integration tier
//! gives it envtest's kubeconfig: reviews of its clients' tokens.
//!
//! [`ControlPlane::start`] makes the certificates, starts etcd, then kube-apiserver, and returns
//! once `/readyz` says `ok`; [`ControlPlane::stop`] (or dropping it) stops both. Everything it
//! writes is in its directory: `pki/`, `etcd/`, `admin.kubeconfig`, and a log per process.

mod error;
pub mod identity;
pub mod kubeconfig;
pub mod pki;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wait::{BoxFuture, Probe, Status, Waiter};

pub use error::Error;

/// The variable naming the folder with etcd and kube-apiserver (envtest's own).
pub const ASSETS_ENV: &str = "KUBEBUILDER_ASSETS";

/// The ServiceAccount token issuer and audience (what `kubernetes.default.svc` would be).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Where `cargo xtask devcluster build` keeps the folders it builds (each usable as
/// `KUBEBUILDER_ASSETS`): `$XDG_CACHE_HOME/xtask/kubernetes`, else `~/.cache/xtask/kubernetes`.
pub fn built_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("xtask")
        .join("kubernetes")
}

/// How both processes stop: SIGTERM, then SIGKILL after a few seconds.
const STOP: procs::StopPolicy =
    procs::StopPolicy { signal: nix::sys::signal::Signal::SIGTERM, deadline: Duration::from_secs(10) };

/// How many fresh port pairs a start tries when another process takes a chosen one first.
const PORT_ATTEMPTS: usize = 3;

/// The folder with etcd and kube-apiserver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assets {
    dir: PathBuf,
}

impl Assets {
    /// The folder `KUBEBUILDER_ASSETS` names.
    pub fn from_env() -> Result<Self, Error> {
        let dir = std::env::var_os(ASSETS_ENV).filter(|v| !v.is_empty()).ok_or(Error::NoAssets)?;
        Self::at(Path::new(&dir))
    }

    /// The folder `KUBEBUILDER_ASSETS` names, else the newest complete one `cargo xtask
    /// devcluster build` made under [`built_root`].
    pub fn find() -> Result<Self, Error> {
        match Self::from_env() {
            Err(Error::NoAssets) => {}
            found => return found,
        }
        let built = std::fs::read_dir(built_root()).into_iter().flatten().flatten().filter_map(|e| {
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            Self::at(&e.path()).ok().map(|a| (modified, a))
        });
        built.max_by_key(|(modified, _)| *modified).map(|(_, a)| a).ok_or(Error::NoAssets)
    }

    /// For tests: the folder [`Assets::find`] finds; `None` (the test skips, saying so on stderr)
    /// when there is none, unless `XTASK_REQUIRE_CLUSTER=1` makes that a failure (CI sets it).
    pub fn for_tests() -> Option<Self> {
        let required = std::env::var("XTASK_REQUIRE_CLUSTER").is_ok_and(|v| v == "1");
        match Self::find() {
            Ok(assets) => Some(assets),
            Err(e) if !required => {
                eprintln!("SKIPPED: {e}");
                None
            }
            Err(e) => panic!("XTASK_REQUIRE_CLUSTER=1 but {e}"),
        }
    }

    /// The folder `dir`, checked to hold both programs.
    pub fn at(dir: &Path) -> Result<Self, Error> {
        use std::os::unix::fs::PermissionsExt;
        for program in ["etcd", "kube-apiserver"] {
            let runnable = std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if !runnable {
                return Err(Error::MissingAsset { dir: dir.to_path_buf(), program });
            }
        }
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn bin(&self, program: &str) -> PathBuf {
        self.dir.join(program)
    }

    /// Whether its kube-apiserver is older than 1.24 (`--version` says `Kubernetes v1.MINOR...`);
    /// a version it cannot read counts as newer.
    fn apiserver_before_1_24(&self) -> bool {
        let out = procs::command(self.bin("kube-apiserver")).arg("--version").output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        minor_version(&text).is_some_and(|minor| minor < 24)
    }
}

/// Told each process's pid and program as soon as it is started, before anything waits on it
/// (a caller records it, so that its teardown finds it whatever happens next).
pub type OnSpawn = Arc<dyn Fn(u32, &'static str) + Send + Sync>;

/// How to start a control plane.
#[derive(Clone)]
pub struct Options {
    /// Where its files go; `None`: a temporary directory, removed on drop.
    pub dir: Option<PathBuf>,
    /// The processes get SIGTERM when this process dies, however it dies.
    pub die_with_us: bool,
    /// The processes run in a process group of their own (a Ctrl-C meant for us does not reach them).
    pub detach: bool,
    /// How long both may take to become ready.
    pub timeout: Duration,
    /// Told of each process started.
    pub on_spawn: Option<OnSpawn>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("dir", &self.dir)
            .field("die_with_us", &self.die_with_us)
            .field("detach", &self.detach)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self { dir: None, die_with_us: true, detach: false, timeout: Duration::from_secs(60), on_spawn: None }
    }
}

/// A started process, shared with the probe that watches it; stopped when the control plane
/// stops or is dropped, also mid-start (a start abandoned on Ctrl-C leaves nothing running).
type Shared = Arc<Mutex<Child>>;

/// A running etcd and kube-apiserver owned by this process.
pub struct ControlPlane {
    dir: procs::Workdir,
    api_port: u16,
    etcd: Option<Shared>,
    apiserver: Option<Shared>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").field("dir", &self.dir.path()).field("url", &self.url()).finish()
    }
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver from `assets` and waits until the API server is ready.
    pub async fn start(assets: &Assets, options: Options) -> Result<Self, Error> {
        let dir = match &options.dir {
            Some(dir) => procs::Workdir::kept(dir)?,
            None => procs::Workdir::temp("envtest-")?,
        };
        let mut plane = Self { dir, api_port: 0, etcd: None, apiserver: None };
        plane.write_pki()?;
        let deadline = Instant::now() + options.timeout;
        let mut attempts = PORT_ATTEMPTS;
        loop {
            attempts -= 1;
            match plane.launch(assets, &options, deadline).await {
                Ok(()) => return Ok(plane),
                Err(e) if attempts > 0 && plane.port_was_taken() => {
                    plane.stop()?;
                    drop(e);
                }
                Err(e) => {
                    let _ = plane.stop();
                    return Err(e);
                }
            }
        }
    }

    fn write_pki(&self) -> Result<(), Error> {
        pki::make(&self.pki(), "envtest-ca", &leaves(&[]))
    }

    fn pki(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    fn log(&self, part: &str) -> PathBuf {
        self.dir.path().join(format!("{part}.log"))
    }

    fn port_was_taken(&self) -> bool {
        ["etcd", "kube-apiserver"]
            .iter()
            .any(|p| procs::port_taken_in(&std::fs::read_to_string(self.log(p)).unwrap_or_default()))
    }

    fn spawn(&self, part: &'static str, argv: &[String], options: &Options) -> Result<Shared, Error> {
        let mut command = procs::command(&argv[0]);
        command.args(&argv[1..]);
        procs::log_output(&mut command, &self.log(part), procs::OpenLog::Truncate)?;
        if options.detach {
            procs::own_process_group(&mut command);
        }
        let child = procs::spawn(command, STOP.tie(options.die_with_us))?;
        if let Some(tell) = &options.on_spawn {
            tell(child.id(), part);
        }
        Ok(Arc::new(Mutex::new(child)))
    }

    async fn launch(&mut self, assets: &Assets, options: &Options, deadline: Instant) -> Result<(), Error> {
        let [client_port, peer_port, api_port] = procs::free_ports(3)?[..] else {
            unreachable!("free_ports(3) gives three ports")
        };
        self.api_port = api_port;
        let data = self.dir.path().join("etcd");
        // A fresh start each time: a data directory of an earlier attempt belongs to it.
        let _ = std::fs::remove_dir_all(&data);
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        // A name of its own: readiness asks the etcd answering on the port for it, so an etcd of
        // another control plane that took the port first is never mistaken for ours.
        let name = format!("envtest-{}-{client_port}", std::process::id());
        let mut etcd_argv = vec![assets.bin("etcd").display().to_string()];
        etcd_argv.extend(etcd_flags(&name, &data, &etcd_url, &etcd_url, peer_port));
        self.etcd = Some(self.spawn("etcd", &etcd_argv, options)?);
        self.ready("etcd", &etcd_argv, member(&etcd_url, &name)?, deadline).await?;

        let mut api_argv = vec![assets.bin("kube-apiserver").display().to_string()];
        api_argv.extend(apiserver_flags(&etcd_url, api_port, &self.pki()));
        api_argv.extend([
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--cert-dir={}", self.dir.path().join("apiserver").display()),
        ]);
        // Before 1.24 an insecure port also listened, on 8080 by default: a second control
        // plane on this machine would fail to take it. Later versions refuse the flag.
        if assets.apiserver_before_1_24() {
            api_argv.push("--insecure-port=0".into());
        }
        procs::write_file(
            &self.kubeconfig(),
            kubeconfig::admin("envtest", &self.url(), &self.pki()).as_bytes(),
            0o600,
        )?;
        let client = self.client().await?;
        self.apiserver = Some(self.spawn("kube-apiserver", &api_argv, options)?);
        // Ready also means usable: the API server makes namespace `default` a moment after
        // /readyz first says ok, and a caller's first object often goes there.
        let ready = Usable::new(client);
        self.ready("kube-apiserver", &api_argv, ready, deadline).await
    }

    /// Waits until `probe` passes while the process of `part` runs; an exit fails at once with
    /// its log. (A failure leaves the process to [`ControlPlane::stop`].)
    async fn ready(
        &self,
        part: &'static str,
        argv: &[String],
        probe: impl Probe + 'static,
        deadline: Instant,
    ) -> Result<(), Error> {
        let child = if part == "etcd" { &self.etcd } else { &self.apiserver };
        let child = child.clone().expect("started before it is waited on");
        let mut probe = wait::ProcessProbe::new(child, argv.join(" "), self.log(part)).until(probe);
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        match Waiter::new(left).wait_for(&mut probe).await {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::NotReady { part, reason: e.to_string() }),
        }
    }

    /// The API server's loopback port.
    pub fn port(&self) -> u16 {
        self.api_port
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// The administrator's kubeconfig (system:masters; 0600).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// The CA that signed the API server's certificate, for kubeconfigs of other users.
    pub fn ca(&self) -> PathBuf {
        self.pki().join("ca.crt")
    }

    /// The directory holding everything it wrote.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process ids of etcd and kube-apiserver while they run.
    pub fn pids(&self) -> Vec<u32> {
        [&self.etcd, &self.apiserver]
            .into_iter()
            .flatten()
            .map(|c| c.lock().expect("child lock").id())
            .collect()
    }

    /// A client as the administrator.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        kubeconfig::client(&self.kubeconfig()).await
    }

    /// Stops kube-apiserver, then etcd; the directory stays until drop.
    pub fn stop(&mut self) -> Result<(), Error> {
        for (child, part) in [(self.apiserver.take(), "kube-apiserver"), (self.etcd.take(), "etcd")] {
            if let Some(child) = child {
                procs::stop_child(&mut child.lock().expect("child lock"), part, STOP)?;
            }
        }
        Ok(())
    }

    /// Hands both processes over: they keep running after this value is gone, until stopped by pid.
    pub fn keep_running(mut self) -> Vec<u32> {
        let pids = self.pids();
        self.apiserver = None;
        self.etcd = None;
        pids
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The certificates a control plane needs besides its CA: the API server's serving pair
/// (`apiserver`: `localhost`, `kubernetes`, `kubernetes.default`, 127.0.0.1 and `names`, where
/// it is reached by others, such as a container's network alias) and the administrator's client
/// pair (`admin`, group `system:masters`).
pub fn leaves(names: &[&str]) -> Vec<pki::Leaf> {
    let serving = pki::Leaf {
        stem: "apiserver",
        common_name: "kube-apiserver".into(),
        organization: None,
        names: ["localhost", "kubernetes", "kubernetes.default"]
            .iter()
            .chain(names)
            .map(|n| n.to_string())
            .collect(),
        ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        client: false,
    };
    vec![serving, pki::Leaf::client("admin", "envtest-admin", Some("system:masters"))]
}

/// etcd's flags for a single member `name` storing in `data`, serving clients on `listen`
/// (advertised as `advertise`) and its peer port on loopback: the same on this machine and in
/// a container.
pub fn etcd_flags(name: &str, data: &Path, listen: &str, advertise: &str, peer_port: u16) -> Vec<String> {
    vec![
        format!("--name={name}"),
        format!("--data-dir={}", data.display()),
        format!("--listen-client-urls={listen}"),
        format!("--advertise-client-urls={advertise}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
        format!("--initial-cluster={name}=http://127.0.0.1:{peer_port}"),
        "--log-level=warn".into(),
    ]
}

/// kube-apiserver's flags on `secure_port` with etcd at `etcd_url` and the certificates of
/// [`pki::make`] with [`leaves`] in `pki`: the same on this machine and in a container (where
/// they are mounted), and accepted by every version from 1.20 on (no `--insecure-port`, which
/// 1.24 removed; the caller adds where it binds).
pub fn apiserver_flags(etcd_url: &str, secure_port: u16, pki: &Path) -> Vec<String> {
    let pki = |name: &str| pki.join(name).display().to_string();
    vec![
        format!("--etcd-servers={etcd_url}"),
        format!("--secure-port={secure_port}"),
        format!("--tls-cert-file={}", pki("apiserver.crt")),
        format!("--tls-private-key-file={}", pki("apiserver.key")),
        format!("--client-ca-file={}", pki("ca.crt")),
        "--authorization-mode=RBAC".into(),
        format!("--service-account-issuer={ISSUER}"),
        format!("--api-audiences={ISSUER}"),
        format!("--service-account-key-file={}", pki("sa.pub")),
        format!("--service-account-signing-key-file={}", pki("sa.key")),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        // No controllers run: nothing would give a pod its token, so pods are not admitted
        // for one (envtest does the same).
        "--disable-admission-plugins=ServiceAccount".into(),
        "--enable-priority-and-fairness=false".into(),
        "--profiling=false".into(),
    ]
}

/// etcd answering at `etcd_url` as the member called `name`.
fn member(etcd_url: &str, name: &str) -> Result<wait::HttpProbe, Error> {
    wait::HttpProbe::post(&format!("{etcd_url}/v3/cluster/member/list"), serde_json::json!({}))
        .map(|p| p.json_field("/members/0/name", name))
        .map_err(|e| Error::NotReady { part: "etcd", reason: e.to_string() })
}

/// The API server's `/readyz` answering `ok`, asked through a client of it.
pub struct ApiReady(pub kube::Client);

impl Probe for ApiReady {
    fn name(&self) -> String {
        "kube-apiserver /readyz".into()
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            let request = http::Request::get("/readyz").body(Vec::new()).expect("a static request");
            match self.0.request_text(request).await {
                Ok(text) if text.trim() == "ok" => Status::Ready,
                Ok(text) => Status::NotYet(failing_checks(&text)),
                // A 500 from /readyz carries the check list as the error's message: name only the
                // checks still failing.
                Err(kube::Error::Api(status)) => Status::NotYet(failing_checks(&status.message)),
                Err(e) => Status::NotYet(e.to_string()),
            }
        })
    }
}

/// `/readyz` ok and namespace `default` made (controller-runtime's envtest waits the same).
pub struct Usable {
    api: ApiReady,
    namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace>,
}

impl Usable {
    /// The probe, asking through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { api: ApiReady(client.clone()), namespaces: kube::Api::all(client) }
    }
}

impl Probe for Usable {
    fn name(&self) -> String {
        "kube-apiserver /readyz and namespace default".into()
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            match self.api.check().await {
                Status::Ready => {}
                other => return other,
            }
            match self.namespaces.get_opt("default").await {
                Ok(Some(_)) => Status::Ready,
                Ok(None) => Status::NotYet("namespace default not made yet".into()),
                Err(e) => Status::NotYet(e.to_string()),
            }
        })
    }
}

/// The minor version in `Kubernetes v1.MINOR.PATCH...`.
fn minor_version(text: &str) -> Option<u32> {
    let rest = text.trim().strip_prefix("Kubernetes v1.")?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The failing checks of a `/readyz` check list (`[-]name failed: ...` lines), or its text.
pub fn failing_checks(text: &str) -> String {
    let failing: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("[-]"))
        .map(|l| l.split(" failed").next().unwrap_or(l))
        .collect();
    if failing.is_empty() { text.trim().to_string() } else { format!("not yet: {}", failing.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assets_folder_without_kube_apiserver_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let etcd = dir.path().join("etcd");
        std::fs::write(&etcd, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&etcd, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = Assets::at(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no executable kube-apiserver"), "{e}");
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
    }

    #[test]
    fn the_minor_version_is_read_from_version_output() {
        assert_eq!(minor_version("Kubernetes v1.20.2\n"), Some(20));
        assert_eq!(minor_version("Kubernetes v1.33.1-dirty"), Some(33));
        assert_eq!(minor_version("kube-apiserver version unknown"), None);
    }

    #[test]
    fn readyz_progress_names_only_the_failing_checks() {
        let text = "[+]ping ok\n[+]etcd ok\n[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\n\
                    [-]poststarthook/scheduling/bootstrap-system-priority-classes failed: reason withheld\n\
                    [+]shutdown ok\nreadyz check failed";
        assert_eq!(
            failing_checks(text),
            "not yet: poststarthook/rbac/bootstrap-roles, poststarthook/scheduling/bootstrap-system-priority-classes"
        );
        assert_eq!(failing_checks("connection refused"), "connection refused");
    }
}
