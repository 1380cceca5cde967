//! `cargo xtask infra` on the cluster backend as a user runs it, against a real API server and
//! kubelet: CI's devcluster (`.ci/with-cluster` sets KUBECONFIG, XTASK_DEVCLUSTER_REGISTRY,
//! KUBEBUILDER_ASSETS, the images in its registry, and XTASK_REQUIRE_CLUSTER=1). Without a
//! cluster these skip, saying so, unless XTASK_REQUIRE_CLUSTER=1 makes that a failure.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What a cluster test needs: the kubeconfig, the registry and kubectl.
struct Cluster {
    kubeconfig: PathBuf,
    registry: String,
    kubectl: PathBuf,
}

fn cluster() -> Option<Cluster> {
    let required = std::env::var("XTASK_REQUIRE_CLUSTER").is_ok_and(|v| v == "1");
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(kubeconfig), Some(registry), Some(assets), Some(_), Some(_)) = (
        var("KUBECONFIG"),
        var("XTASK_DEVCLUSTER_REGISTRY"),
        var("KUBEBUILDER_ASSETS"),
        var("XTASK_IMAGE_POSTGRES"),
        var("XTASK_IMAGE_REDIS"),
    ) else {
        assert!(!required, "XTASK_REQUIRE_CLUSTER=1 but the devcluster's variables are not all set");
        eprintln!("SKIPPED: no devcluster (run under .ci/with-env .ci/with-cluster)");
        return None;
    };
    Some(Cluster { kubeconfig: kubeconfig.into(), registry, kubectl: Path::new(&assets).join("kubectl") })
}

impl Cluster {
    /// `xtask ARGS` with the cluster backend's flags after them.
    fn xtask(&self, state: &Path, args: &[&str]) -> Output {
        self.command(state, args).output().expect("run xtask")
    }

    fn command(&self, state: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
        c.args(args).env("XTASK_STATE_DIR", state);
        if matches!(args.first(), Some(&"e2e")) || args.get(1) == Some(&"up") {
            c.args(["--backend", "cluster", "--kubeconfig"])
                .arg(&self.kubeconfig)
                .args(["--registry", &self.registry]);
        }
        c
    }

    /// The names kubectl lists for `args` (e.g. `get ns -l x=y -o name`).
    fn kubectl(&self, args: &[&str]) -> Vec<String> {
        let out = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }

    /// Whether `kubectl ARGS` succeeds (`auth can-i` answers with its status).
    fn kubectl_status(&self, args: &[&str]) -> bool {
        Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap()
            .status
            .success()
    }

    /// `authenticated username` of a TokenReview of `token`, which goes by stdin, never argv.
    fn token_review(&self, token: &str) -> String {
        use std::io::Write;
        let review = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        });
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["create", "-f", "-", "-o", "jsonpath={.status.authenticated} {.status.user.username}"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(review.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "TokenReview: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The run's namespace while it exists and is not being deleted.
    fn namespace_live(&self, run: &str) -> bool {
        let phase = self.kubectl(&[
            "get",
            "ns",
            "-l",
            &format!("xtask.run={run}"),
            "-o",
            "jsonpath={.items[*].status.phase}",
        ]);
        phase.iter().any(|p| p.contains("Active"))
    }
}

/// The one run in `state` (by `infra status --json`).
fn only_run(c: &Cluster, state: &Path) -> String {
    let out = c.xtask(state, &["infra", "status", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("status --json");
    let runs = doc["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 1, "{doc}");
    runs[0]["run"].as_str().or(runs[0]["id"].as_str()).expect("a run id").to_string()
}

/// Writes `kubeconfig` to `to` with its server moved to a loopback port nothing listens on
/// (a cluster that is gone); `to` may be `kubeconfig` itself.
fn with_closed_server(kubeconfig: &Path, to: &Path) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = std::fs::read_to_string(kubeconfig).unwrap();
    let gone: Vec<String> = config
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("server:") {
                format!("    server: https://127.0.0.1:{closed}")
            } else {
                l.into()
            }
        })
        .collect();
    std::fs::write(to, gone.join("\n")).unwrap();
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Removes whatever a test left, also when an assertion failed half-way.
struct Cleanup<'a>(&'a Cluster, &'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.xtask(self.1, &["infra", "down", "--all", "--force"]);
    }
}

/// `--keep` leaves the run up on the cluster; DataStorage runs as its own ServiceAccount and the
/// tests' token is one the cluster authenticates and the client role admits; `restart postgres`
/// brings PostgreSQL back in place; `down` removes the run's namespace with everything in it, and
/// the garbage collector the cluster-wide roles the namespace owns.
#[test]
fn a_kept_run_restarts_postgres_and_down_removes_its_namespace() {
    let Some(c) = cluster() else { return };
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(&c, state.path());
    let up = c.xtask(state.path(), &["infra", "up", "gateway", "--keep"]);
    assert!(up.status.success(), "{}", text(&up));
    let run = only_run(&c, state.path());
    assert!(c.namespace_live(&run), "the run's namespace exists");
    let ns = format!("xtask-{run}");
    let deployments = c.kubectl(&["get", "deploy", "-n", &ns, "-o", "name"]);
    assert!(deployments.contains(&"deployment.apps/postgres".to_string()), "{deployments:?}");

    let account = c.kubectl(&[
        "get",
        "deploy/datastorage",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.template.spec.serviceAccountName}",
    ]);
    assert_eq!(account, ["data-storage-sa"]);
    // TLS on its API port (the suite's default): the pair from its Secret, the CA for clients.
    let tls = c.kubectl(&["get", "secret/datastorage-tls", "-n", &ns, "-o", "jsonpath={.type}"]);
    assert_eq!(tls, ["kubernetes.io/tls"]);
    let ca = c.kubectl(&["get", "configmap/inter-service-ca", "-n", &ns, "-o", "jsonpath={.data.ca\\.crt}"]);
    assert!(ca.first().is_some_and(|l| l.starts_with("-----BEGIN CERTIFICATE-----")), "{ca:?}");
    let binding = format!("data-storage-auth-middleware-{ns}");
    let owner = c.kubectl(&[
        "get",
        "clusterrolebinding",
        &binding,
        "-o",
        "jsonpath={.metadata.ownerReferences[0].name}",
    ]);
    assert_eq!(owner.first(), Some(&ns), "the run's namespace owns its cluster-wide binding");
    let env = c.xtask(state.path(), &["infra", "env", &run]);
    let exports = String::from_utf8_lossy(&env.stdout).to_string();
    let token_file = exports
        .lines()
        .find_map(|l| l.strip_prefix("export DATASTORAGE_TOKEN_FILE="))
        .map(|v| PathBuf::from(v.trim_matches('\'')))
        .unwrap_or_else(|| panic!("no token file in:\n{exports}"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    let review = c.token_review(&std::fs::read_to_string(&token_file).unwrap());
    let user = format!("system:serviceaccount:{ns}:gateway-e2e-sa");
    assert_eq!(review, format!("true {user}"), "the cluster authenticates the tests' token");
    let can = |who: &str| {
        c.kubectl_status(&[
            "auth",
            "can-i",
            "create",
            "services/data-storage-service",
            "-n",
            &ns,
            "--as",
            who,
        ])
    };
    assert!(can(&user), "{user} is bound to the client role");
    assert!(!can(&format!("system:serviceaccount:{ns}:default")), "an unbound account is not");

    let restart = c.xtask(state.path(), &["infra", "restart", "postgres"]);
    assert!(restart.status.success(), "{}", text(&restart));

    let down = c.xtask(state.path(), &["infra", "down", &run]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(!c.namespace_live(&run), "the namespace is gone or going");
    assert!(!state.path().join("runs").join(&run).exists());
    // Cluster-wide objects are deleted by `down` itself, not left to the garbage collector
    // (which can take minutes on a busy cluster).
    for kind in ["clusterrolebinding", "clusterrole"] {
        let left = c.kubectl(&["get", kind, "-l", &format!("xtask.run={run}"), "-o", "name"]);
        assert!(left.is_empty(), "the run's {kind}s outlive `down`: {left:?}");
    }
}

/// xtask interrupted (SIGINT) or killed (SIGKILL) while the environment comes up: afterwards
/// `infra down --all` finds the run and removes its namespace.
#[test]
fn after_sigint_or_sigkill_mid_up_down_all_removes_the_namespace() {
    let Some(c) = cluster() else { return };
    for signal in [nix::sys::signal::Signal::SIGINT, nix::sys::signal::Signal::SIGKILL] {
        let state = tempfile::tempdir().unwrap();
        let _cleanup = Cleanup(&c, state.path());
        let mut child = c
            .command(state.path(), &["infra", "up", "gateway", "--keep"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Mid-up: once the run's namespace exists (its objects are being applied).
        let started = Instant::now();
        let run = loop {
            let runs = std::fs::read_dir(state.path().join("runs")).into_iter().flatten().flatten();
            let ids: Vec<String> = runs.map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            if let Some(id) = ids.iter().find(|id| c.namespace_live(id)) {
                break id.clone();
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no namespace within a minute");
            std::thread::sleep(Duration::from_millis(100));
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let _ = child.wait();
        let down = c.xtask(state.path(), &["infra", "down", "--all"]);
        assert!(down.status.success(), "after {signal}: {}", text(&down));
        assert!(!c.namespace_live(&run), "after {signal}: the namespace is gone or going");
    }
}

/// A cluster that does not answer: `up` fails at once naming it; `down` then says what it could
/// not reach and how to forget it, and `down --force` does, naming what may remain.
#[test]
fn an_unreachable_cluster_never_wedges_down() {
    let Some(c) = cluster() else { return };
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("gone.kubeconfig");
    with_closed_server(&c.kubeconfig, &path);
    let gone = Cluster { kubeconfig: path, registry: c.registry.clone(), kubectl: c.kubectl.clone() };

    let started = Instant::now();
    let up = gone.xtask(state.path(), &["infra", "up", "gateway"]);
    assert_eq!(up.status.code(), Some(1), "{}", text(&up));
    assert!(started.elapsed() < Duration::from_secs(60), "failed fast: {:?}", started.elapsed());
    let said = text(&up);
    assert!(
        said.contains("Connection refused") && said.contains("gone.kubeconfig"),
        "names the cause and the kubeconfig: {said}"
    );

    // The namespace was recorded before it was asked for, so the run stays until it is removed.
    let down = gone.xtask(state.path(), &["infra", "down", "--all"]);
    let said = text(&down);
    assert_eq!(down.status.code(), Some(1), "{said}");
    assert!(said.contains("deleting namespace") && said.contains("Connection refused"), "{said}");
    assert!(said.contains("infra down") && said.contains("--force"), "offers the way out: {said}");
    assert!(!said.contains("kind:"), "a cluster run is not labelled kind: {said}");

    let forced = gone.xtask(state.path(), &["infra", "down", "--all", "--force"]);
    let said = text(&forced);
    assert!(forced.status.success(), "{said}");
    assert!(said.contains("forgotten, may still exist: namespace xtask-gateway-"), "{said}");
    let left: Vec<_> = std::fs::read_dir(state.path().join("runs")).into_iter().flatten().flatten().collect();
    assert!(left.is_empty(), "no run is left to wedge later calls: {left:?}");
    let again = gone.xtask(state.path(), &["infra", "down", "--all"]);
    assert!(again.status.success(), "{}", text(&again));
}

/// The kind backend with a TEST DOUBLE of the `kind` CLI (`.ci/kind-double`; kind itself
/// cannot run here): the double drives the devcluster instead of creating a node, so all but
/// kind is real: the kubeconfig written by `create cluster --kubeconfig`, DataStorage's image
/// saved by podman and loaded into the node's containerd (`load image-archive`), the node's
/// images listed (`docker exec ... crictl images`), the namespace, the suite, and `delete`.
#[test]
fn the_kind_backend_runs_a_suite_through_a_kind_double_on_the_devcluster() {
    let Some(c) = cluster() else { return };
    let state = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let double = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/kind-double");
    for name in ["kind", "docker"] {
        std::os::unix::fs::symlink(&double, bin.path().join(name)).unwrap();
    }
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let records = state.path().join("double");
    // Images an earlier run loaded are taken off the node, so this run has to load its own.
    let node = |args: &[&str]| {
        let out = Command::new("ctr")
            .args(["--address", "/run/xtask-devcluster/containerd.sock", "--namespace", "k8s.io"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for image in node(&["images", "ls", "-q"]).lines().filter(|i| i.starts_with("localhost/xtask/")) {
        node(&["images", "rm", image]);
    }
    let e2e = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["e2e", "gateway", "--backend", "kind"])
        .env("XTASK_STATE_DIR", state.path())
        .env("PATH", &path)
        .env("KIND", bin.path().join("kind"))
        .env("XTASK_KIND_PROVIDER", "docker")
        .env("KIND_DOUBLE_DIR", &records)
        .env("KIND_DOUBLE_KUBECONFIG", &c.kubeconfig)
        .output()
        .unwrap();
    assert!(e2e.status.success(), "{}", text(&e2e));
    assert!(text(&e2e).contains("suite gateway on kind: PASSED"), "{}", text(&e2e));
    let calls = std::fs::read_to_string(records.join("calls")).unwrap();
    for call in [
        "kind get clusters",
        "kind create cluster --name xtask-gateway",
        "docker exec xtask-gateway-control-plane crictl images",
        "kind load image-archive",
        "kind delete cluster --name xtask-gateway",
    ] {
        assert!(calls.contains(call), "`{call}` was not called:\n{calls}");
    }
    let clusters: Vec<_> = std::fs::read_dir(records.join("clusters")).unwrap().collect();
    assert!(clusters.is_empty(), "the cluster was deleted after the run");
}

/// A cluster that disappears under a kept run (here: its kubeconfig now names a port nothing
/// listens on): `status` still answers, `down` says what it could not reach and how to forget
/// it, and `down --force` does.
#[test]
fn a_cluster_that_disappears_under_a_kept_run_never_wedges_down() {
    let Some(c) = cluster() else { return };
    let state = tempfile::tempdir().unwrap();
    let copy = state.path().join("vanishing.kubeconfig");
    std::fs::copy(&c.kubeconfig, &copy).unwrap();
    let vanishing =
        Cluster { kubeconfig: copy.clone(), registry: c.registry.clone(), kubectl: c.kubectl.clone() };
    let up = vanishing.xtask(state.path(), &["infra", "up", "gateway", "--keep"]);
    assert!(up.status.success(), "{}", text(&up));
    let run = only_run(&c, state.path());

    with_closed_server(&copy, &copy);

    let started = Instant::now();
    let status = vanishing.xtask(state.path(), &["infra", "status"]);
    assert!(started.elapsed() < Duration::from_secs(60), "status answers: {:?}", started.elapsed());
    assert!(text(&status).contains(&run), "{}", text(&status));

    let down = vanishing.xtask(state.path(), &["infra", "down", &run]);
    let said = text(&down);
    assert_eq!(down.status.code(), Some(1), "{said}");
    assert!(said.contains("Connection refused") && said.contains("--force"), "{said}");
    let forced = vanishing.xtask(state.path(), &["infra", "down", &run, "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(text(&forced).contains("forgotten, may still exist"), "{}", text(&forced));
    assert!(!state.path().join("runs").join(&run).exists());

    // The namespace is still on the real cluster: this test removes it itself.
    c.kubectl(&["delete", "ns", &format!("xtask-{run}"), "--wait=false"]);
}
