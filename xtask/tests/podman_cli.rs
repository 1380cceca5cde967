//! `cargo xtask infra` on the podman backend as a user runs it: real containers, and what a
//! killed xtask or a container that will not start leaves behind.
//!
//! Images cannot be pulled on every machine: these tests use the images named by
//! `XTASK_IMAGE_POSTGRES`/`XTASK_IMAGE_REDIS`/`XTASK_IMAGE_ETCD`/`XTASK_IMAGE_KUBE_API`
//! (README's test command sets them through `.ci/with-env` and `.ci/with-cluster`) and are
//! skipped, saying so, without them or without podman.
#![allow(clippy::disallowed_methods)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn xtask(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("XTASK_STATE_DIR", state)
        .output()
        .expect("run xtask")
}

/// Whether this machine can run the tests, saying why not when it cannot.
fn podman_here() -> bool {
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("skipping: podman is not installed");
        return false;
    }
    let images = ["XTASK_IMAGE_POSTGRES", "XTASK_IMAGE_REDIS", "XTASK_IMAGE_ETCD", "XTASK_IMAGE_KUBE_API"];
    if let Some(missing) = images.iter().find(|v| std::env::var_os(v).is_none()) {
        eprintln!("skipping: {missing} is not set (run under .ci/with-env .ci/with-cluster)");
        return false;
    }
    true
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().expect("run podman");
    assert!(out.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every container, network and secret labelled with run `id`, as podman itself lists them.
fn labelled(id: &str) -> Vec<String> {
    let filter = format!("label=xtask.run={id}");
    let mut out: Vec<String> = podman(&["ps", "-a", "--filter", &filter, "--format", "container {{.Names}}"])
        .lines()
        .chain(podman(&["network", "ls", "--filter", &filter, "--format", "network {{.Name}}"]).lines())
        .map(str::to_string)
        .collect();
    // podman 4.3's `secret ls` has no label filter. Other tests remove their secrets meanwhile:
    // one gone between the listing and its inspection was not this run's.
    for name in podman(&["secret", "ls", "--format", "{{.Name}}"]).lines() {
        let inspected = Command::new("podman")
            .args(["secret", "inspect", "--format", "{{index .Spec.Labels \"xtask.run\"}}", name])
            .output()
            .expect("run podman");
        if inspected.status.success() && String::from_utf8_lossy(&inspected.stdout).trim() == id {
            out.push(format!("secret {name}"));
        }
    }
    out
}

/// Removes whatever a test left, also when an assertion failed half-way.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = xtask(self.0, &["infra", "down", "--all"]);
    }
}

/// xtask SIGKILLed with a podman environment up: the containers are the engine's, so they stay;
/// `infra status` says whose they are, even once the run directory is lost too, and
/// `infra down --all` removes every container, network and secret of the run.
#[test]
fn after_xtask_is_killed_down_all_finds_the_leftovers_by_label() {
    if !podman_here() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["infra", "up", "gateway", "--backend", "podman"])
        .env("XTASK_STATE_DIR", state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let id = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("export XTASK_RUN=").map(|v| v.trim_matches('\'').to_string()))
        .expect("infra up printed its endpoints");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    child.wait().unwrap();

    let before = labelled(&id);
    for kind in ["container", "network", "secret"] {
        assert!(before.iter().any(|r| r.starts_with(kind)), "a {kind} of run {id} exists: {before:?}");
    }
    let status = String::from_utf8_lossy(&xtask(state.path(), &["infra", "status"]).stdout).into_owned();
    assert!(status.contains(&id) && status.contains("orphaned"), "{status}");

    std::fs::remove_dir_all(state.path().join("runs").join(&id)).unwrap();
    let status = xtask(state.path(), &["infra", "status"]);
    let text =
        format!("{}{}", String::from_utf8_lossy(&status.stdout), String::from_utf8_lossy(&status.stderr));
    assert!(text.contains(&id), "stray resources are named by run even without its directory: {text}");

    // A run of another checkout (another runs directory) is none of this `down --all`'s business,
    // even without a run directory here: it may be running a suite right now.
    let other = format!("{id}-elsewhere");
    podman(&[
        "network",
        "create",
        "--label",
        &format!("xtask.run={other}"),
        "--label",
        "xtask.home=/elsewhere/.xtask/runs",
        &format!("xtask-{other}"),
    ]);
    let down = xtask(state.path(), &["infra", "down", "--all"]);
    let kept = labelled(&other);
    podman(&["network", "rm", &format!("xtask-{other}")]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(labelled(&id), Vec::<String>::new(), "nothing of run {id} is left");
    assert_eq!(kept, [format!("network xtask-{other}")], "another checkout's run is left alone");
}

/// DataStorage in a container reviews every token with the run's own Kubernetes API, itself two
/// containers (etcd, kube-apiserver) on the run's network: the test's token is accepted and a
/// call without one gets 401; DataStorage finds the API by its kubeconfig, mounted with its
/// token as files, never in its environment or arguments; the API's port is published on
/// loopback only; `down` removes both containers with the rest.
#[test]
fn datastorage_in_a_container_reviews_tokens_with_the_runs_own_api() {
    if !podman_here() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let up = xtask(state.path(), &["infra", "up", "gateway", "--backend", "podman", "--keep", "--json"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let v: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    let env = |name: &str| v["env"][name].as_str().unwrap_or_else(|| panic!("{name} in {v}")).to_string();
    let id = v["run"].as_str().unwrap().to_string();
    let (url, ca) = (env("DATASTORAGE_URL"), env("DATASTORAGE_CA_FILE"));
    let token_file = env("DATASTORAGE_TOKEN_FILE");
    let token = std::fs::read_to_string(&token_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{token_file}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = workflowexecution_suite::DataStorage::new(&url, Some(&ca), Some(token.trim().to_string()));
    let correlation = format!("podman-auth-{}", std::process::id());
    let event = workflowexecution_suite::event(
        "workflow.started",
        "success",
        &correlation,
        "podman-auth",
        serde_json::json!({}),
    );
    let (status, body) = runtime.block_on(client.write_batch(&[event]));
    assert_eq!(status, 201, "the test's token is accepted: {body}");
    let path = format!("/api/v1/audit/events?correlation_id={correlation}");
    let (status, body) = runtime.block_on(client.get_without_token(&path));
    assert_eq!(status, 401, "{body}");

    let containers = podman(&["ps", "--filter", &format!("label=xtask.run={id}"), "--format", "{{.Names}}"]);
    for name in ["kube-api", "kube-api-etcd", "datastorage"] {
        let want = format!("xtask-{id}-{name}");
        assert!(containers.lines().any(|l| l == want), "{want} runs: {containers}");
    }
    let ports = podman(&["port", &format!("xtask-{id}-kube-api")]);
    assert!(ports.lines().all(|l| l.contains("-> 127.0.0.1:")), "loopback only: {ports}");
    let ds = podman(&["inspect", &format!("xtask-{id}-datastorage")]);
    assert!(ds.contains("KUBECONFIG=/etc/kube-api/kubeconfig"), "{ds}");
    assert!(ds.contains("POD_NAMESPACE=kubernaut-system"), "{ds}");
    assert!(!ds.contains(token.trim()), "no token in the container's configuration");

    let down = xtask(state.path(), &["infra", "down", &id]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(labelled(&id), Vec::<String>::new(), "nothing of run {id} is left");
}

/// An etcd image that is neither here nor pullable fails kube-api's step, naming the image and
/// the variable that names another; nothing of the run is left.
#[test]
fn an_etcd_image_that_cannot_be_had_is_named_with_the_variable_to_change() {
    if !podman_here() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let missing = "localhost/xtask-test/no-such-etcd:0";
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["infra", "up", "gateway", "--backend", "podman"])
        .env("XTASK_STATE_DIR", state.path())
        .env("XTASK_IMAGE_ETCD", missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("kube-api") && err.contains(missing), "{err}");
    assert!(err.contains("hint: name an etcd image this machine has with XTASK_IMAGE_ETCD"), "{err}");
    let runs: Vec<_> =
        std::fs::read_dir(state.path().join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    let id = runs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(labelled(&id), Vec::<String>::new(), "nothing of run {id} is left");
}

/// A container that exits during start-up fails the step at once (not at the readiness
/// deadline), names the exit code and the container's own last words, keeps its log in the run
/// directory, and removes the containers.
#[test]
fn a_container_that_exits_is_diagnosed_and_its_log_kept() {
    if !podman_here() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    // The PostgreSQL image as DataStorage: its entrypoint exits at once. DataStorage's container
    // runs without capabilities (as its pod does), so the entrypoint's last words are its failed
    // switch to the postgres user.
    let wrong = format!("datastorage={}", std::env::var("XTASK_IMAGE_POSTGRES").unwrap());
    let out = xtask(state.path(), &["infra", "up", "gateway", "--backend", "podman", "--image", &wrong]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // Failed by the exit itself, not at the readiness deadline (how long that took depends on
    // the machine's load, so it is not what is checked).
    assert!(!err.contains("not ready after"), "failed at once, not at a deadline: {err}");
    assert!(err.contains("datastorage"), "{err}");
    assert!(err.contains("exited: exit code 1"), "{err}");
    let last_words = "su: can't set groups: Operation not permitted";
    assert!(err.contains(last_words), "the container's last log lines are shown: {err}");

    let runs: Vec<_> =
        std::fs::read_dir(state.path().join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "the failed run's directory is kept: {runs:?}");
    let log = std::fs::read_to_string(runs[0].join("datastorage/container.log")).unwrap();
    assert!(log.contains("exit code 1") && log.contains(last_words), "{log}");
    let diagnosis = std::fs::read_to_string(runs[0].join("diagnosis.txt")).unwrap();
    assert!(diagnosis.contains("datastorage"), "{diagnosis}");
    let id = runs[0].file_name().unwrap().to_string_lossy().into_owned();
    let containers: Vec<String> = labelled(&id).into_iter().filter(|r| r.starts_with("container")).collect();
    assert_eq!(containers, Vec::<String>::new(), "the failed run's containers are removed");
}

/// The host port podman published for the running DataStorage container of the run under
/// `state`, once it exists.
fn datastorage_port(state: &Path) -> Option<u16> {
    // Only this test's own run: its runs directory is in every resource's home label.
    let home = std::fs::canonicalize(state.join("runs")).ok()?;
    let ports = podman(&[
        "ps",
        "--filter",
        "label=xtask.component=datastorage",
        "--filter",
        &format!("label=xtask.home={}", home.display()),
        "--format",
        "{{.Ports}}",
    ]);
    // e.g. "127.0.0.1:34001->8080/tcp"
    let host = ports.lines().next()?.split("->").next()?;
    host.rsplit(':').next()?.parse().ok()
}

/// POSTs one audit batch with a bare HTTP/1.0 request; `None` when nothing answers yet.
fn post_batch(port: u16, body: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "POST /api/v1/audit/events/batch HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

/// Seed 002: the team's compose file started DataStorage next to PostgreSQL, and its first audit
/// writes failed with 500s against a database without tables. Here a client writes from the
/// moment DataStorage's container exists. The run's timeline shows PostgreSQL ready (it answered
/// a query) before migrations began and migrations done before DataStorage started; PostgreSQL's
/// own clock says the last migration was recorded before podman's says DataStorage started; no
/// write gets a 5xx, and every accepted event is stored.
#[test]
fn seed_002_datastorage_starts_only_after_migrations_and_no_write_fails() {
    if !podman_here() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    // The suite as it is, but on plain HTTP and without authentication: the writer below posts
    // from the moment the container exists, before the run has published the CA and the token
    // a client would need.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let original = std::fs::read_to_string(root.join("manifests/suites/workflowexecution.yaml")).unwrap();
    assert!(original.contains("kube-api, "), "the suite lists kube-api: {original}");
    let suite = state.path().join("workflowexecution.yaml");
    std::fs::write(&suite, format!("{}\ntls: false\n", original.replacen("kube-api, ", "", 1))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["infra", "up", suite.to_str().unwrap(), "--backend", "podman", "--json"])
        .env("XTASK_STATE_DIR", state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let state = state.path().to_path_buf();
        std::thread::spawn(move || {
            let correlation = format!("seed-002-{}", std::process::id());
            let body = serde_json::json!([{
                "version": "1.0",
                "event_type": "workflowexecution.workflow.started",
                "event_timestamp": "2025-12-13T02:00:00Z",
                "event_category": "workflowexecution",
                "event_action": "started",
                "event_outcome": "success",
                "correlation_id": correlation,
                "event_data": {
                    "event_type": "workflowexecution.workflow.started",
                    "workflow_id": "kubectl-restart-deployment",
                    "workflow_version": "v1.0.0",
                    "target_resource": "payment/deployment/payment-api",
                    "phase": "Running",
                    "container_image": "ghcr.io/kubernaut/kubectl-actions:v1.28",
                    "execution_name": "seed-002",
                },
            }])
            .to_string();
            let (mut statuses, mut port) = (Vec::new(), None);
            let until = Instant::now() + Duration::from_secs(300);
            // Until told to stop, and then until one write was answered (a loaded machine may
            // not have let this thread run since DataStorage came up).
            while (!stop.load(std::sync::atomic::Ordering::Relaxed) || statuses.is_empty())
                && Instant::now() < until
            {
                port = port.or_else(|| datastorage_port(&state));
                if let Some(status) = port.and_then(|p| post_batch(p, &body)) {
                    statuses.push(status);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (correlation, statuses)
        })
    };

    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let up: serde_json::Value = serde_json::from_str(&line).expect("infra up --json printed its result");
    assert_eq!(up["ok"], true, "infra up failed: {} {}", up["error"], up["report"]);
    let id = up["run"].as_str().unwrap().to_string();
    let step = |name: &str| {
        let s = up["report"]["steps"].as_array().unwrap().iter().find(|s| s["step"] == name).unwrap();
        (s["start_ms"].as_u64().unwrap(), s["end_ms"].as_u64().unwrap())
    };
    let (postgres, migrations, datastorage) = (step("postgres"), step("migrations"), step("datastorage"));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (correlation, statuses) = writer.join().unwrap();

    let started_ns: i128 =
        podman(&["inspect", "--format", "{{.State.StartedAt.UnixNano}}", &format!("xtask-{id}-datastorage")])
            .trim()
            .parse()
            .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (migrated_ns, stored) = rt.block_on(async {
        let (client, conn) =
            tokio_postgres::connect(up["env"]["DATABASE_URL"].as_str().unwrap(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        let migrated: f64 = client
            .query_one(
                "SELECT extract(epoch FROM max(recorded_at))::float8 FROM goose_db_version_checksum",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let stored: i64 = client
            .query_one("SELECT count(*) FROM audit_events WHERE correlation_id = $1", &[&correlation])
            .await
            .unwrap()
            .get(0);
        ((migrated * 1e9) as i128, stored)
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    assert!(child.wait().unwrap().success());

    assert!(
        postgres.1 <= migrations.0,
        "migrations began before PostgreSQL was ready: {}",
        up["report"]["steps"]
    );
    assert!(
        migrations.1 <= datastorage.0,
        "DataStorage started before migrations were done: {}",
        up["report"]["steps"]
    );
    assert!(
        started_ns > migrated_ns,
        "DataStorage started {} ms before the last migration was recorded",
        (migrated_ns - started_ns) / 1_000_000
    );
    let failed: Vec<&u16> = statuses.iter().filter(|s| **s >= 500).collect();
    assert!(failed.is_empty(), "writes failed during start-up: {failed:?} of {statuses:?}");
    let accepted = statuses.iter().filter(|s| **s == 201 || **s == 202).count() as i64;
    assert!(accepted > 0, "some writes were made: {statuses:?}");
    assert_eq!(stored, accepted, "every accepted event is stored");
}
