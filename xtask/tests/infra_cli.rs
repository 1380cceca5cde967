//! `cargo xtask infra` and `e2e` as a user runs them: real processes on loopback, real HTTP,
//! each test with its own state directory.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn xtask(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("XTASK_STATE_DIR", state)
        .output()
        .expect("run xtask")
}

/// Processes whose command line names the state directory: the ones a run started.
/// Processes naming the state directory, or a run's PostgreSQL data kept elsewhere (a tmpfs).
fn leftovers(state: &Path) -> Vec<String> {
    let mut needles = vec![state.to_string_lossy().into_owned()];
    for run in std::fs::read_dir(state.join("runs")).into_iter().flatten().flatten() {
        if let Ok(place) = std::fs::read_to_string(run.path().join("postgres").join(pgserver::DATA_POINTER)) {
            needles.push(place.trim_end().to_string());
        }
    }
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            needles.iter().any(|n| cmd.contains(n)).then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}

fn runs(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("runs"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

/// `GET path` of DataStorage at `base` without a token, trusting `ca` (the suites' own client):
/// the status and the body.
fn datastorage_get(base: &str, ca: Option<&str>, path: &str) -> (u16, serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(workflowexecution_suite::DataStorage::new(base, ca, None).get_without_token(path))
}

/// Tears down whatever a test left running, also when an assertion failed half-way.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = xtask(self.0, &["infra", "down", "--all"]);
    }
}

#[test]
fn up_keep_status_down() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let up = xtask(state.path(), &["infra", "up", "workflowexecution", "--keep", "--json"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let v: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    let ds = v["env"]["DATASTORAGE_URL"].as_str().unwrap();
    // TLS by default, as in the monorepo's end-to-end runs: the run's own CA, handed over as a file.
    let ca = v["env"]["DATASTORAGE_CA_FILE"].as_str().expect("a CA file beside the URL");
    assert!(ds.starts_with("https://127.0.0.1:"), "{ds}");
    // The real service serves readiness on its API port too, open without a token.
    assert_eq!(datastorage_get(ds, Some(ca), "/readyz"), (200, serde_json::json!({"status": "ready"})));
    // A client that does not trust the run's CA is refused by TLS itself.
    let untrusting = std::panic::catch_unwind(|| datastorage_get(ds, None, "/readyz"));
    assert!(untrusting.is_err(), "a TLS handshake without the run's CA must fail");
    assert!(v["env"]["DATABASE_URL"].as_str().unwrap().starts_with("postgres://slm_user:"));
    let steps: Vec<&str> =
        v["report"]["critical_path"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    // A first run keeps a template beside DataStorage's start; either may end last.
    assert!(matches!(steps.last(), Some(&"datastorage" | &"snapshot")), "{steps:?}");

    let status = xtask(state.path(), &["infra", "status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(s["runs"][0]["state"], "running", "{s}");
    let endpoints = s["runs"][0]["endpoints"].to_string();
    let url = v["env"]["DATABASE_URL"].as_str().unwrap();
    let password = url.strip_prefix("postgres://slm_user:").and_then(|r| r.rsplit_once('@')).unwrap().0;
    assert!(password.len() >= 16, "a generated password: {url}");
    assert!(
        endpoints.contains("***") && !endpoints.contains(password),
        "passwords are not shown: {endpoints}"
    );

    // The exports of the running run, again, for a second shell (stdout is a pipe here).
    let env = xtask(state.path(), &["infra", "env"]);
    assert!(env.status.success(), "{}", String::from_utf8_lossy(&env.stderr));
    let exports = String::from_utf8_lossy(&env.stdout);
    assert!(exports.contains(&format!("export DATABASE_URL='{url}'")), "{exports}");
    assert!(exports.contains(&format!("export XTASK_RUN='{}'", v["run"].as_str().unwrap())), "{exports}");

    let restart = xtask(state.path(), &["infra", "restart", "postgres"]);
    assert!(restart.status.success(), "{}", String::from_utf8_lossy(&restart.stderr));
    let db = v["env"]["DATABASE_URL"].as_str().unwrap();
    let after = xtask(state.path(), &["migrate", "status", "--json", "--database-url", db]);
    assert!(
        after.status.success(),
        "PostgreSQL answers after the restart: {}",
        String::from_utf8_lossy(&after.stderr)
    );
    let versions: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(versions["pending"], 0, "same data after the restart");

    let down = xtask(state.path(), &["infra", "down"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(leftovers(state.path()).is_empty(), "{:?}", leftovers(state.path()));
    assert!(runs(state.path()).is_empty());
}

#[test]
fn a_datastorage_that_never_gets_healthy_is_diagnosed_fast() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let suite = state.path().join("partial.yaml");
    // Only the notification table: DataStorage's /health keeps saying which audit table is missing.
    std::fs::write(
        &suite,
        "name: partial\ncomponents: [postgres, redis, migrations, datastorage]\nmigrations: [notification_audit]\n\
         test: {command: [\"true\"]}\nready_timeout: 20s\n",
    )
    .unwrap();
    let out = xtask(state.path(), &["infra", "up", suite.to_str().unwrap(), "--keep", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failed_step"], "datastorage");
    assert!(v["error"].as_str().unwrap().contains("audit_events"), "the failure names what is missing: {v}");
    // Measured from the step's own start: a first build of DataStorage on a fresh machine comes before it.
    let ds = v["report"]["steps"].as_array().unwrap().iter().find(|s| s["step"] == "datastorage").unwrap();
    let took = ds["end_ms"].as_u64().unwrap() - ds["start_ms"].as_u64().unwrap();
    assert!(took < 60_000, "gave up at the 20 s readiness deadline, not a suite timeout: {took} ms");
    assert!(leftovers(state.path()).is_empty(), "{:?}", leftovers(state.path()));
    let kept = runs(state.path());
    assert_eq!(kept.len(), 1, "logs and diagnosis are kept: {kept:?}");
    let diagnosis =
        std::fs::read_to_string(state.path().join("runs").join(&kept[0]).join("diagnosis.txt")).unwrap();
    assert!(diagnosis.contains("audit_events"), "{diagnosis}");
    // The schema as applied is kept and summarised: the table that is there, not the one missing.
    let evidence = v["evidence"].as_array().unwrap();
    let line = evidence.iter().filter_map(|e| e.as_str()).find(|e| e.starts_with("schema as applied:"));
    assert!(line.is_some_and(|l| l.contains("schema.txt (") && l.contains("migration(s) applied")), "{v}");
    let schema =
        std::fs::read_to_string(state.path().join("runs").join(&kept[0]).join("schema.txt")).unwrap();
    assert!(schema.contains("\ntable public.notification_audit\n"), "{schema}");
    assert!(!schema.contains("table public.audit_events"), "{schema}");
}

#[test]
fn a_failing_suite_exits_3_with_the_schema_it_ran_against_kept() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let suite = state.path().join("failing.yaml");
    std::fs::write(
        &suite,
        "name: failing\ncomponents: [postgres, migrations]\nmigrations: [notification_audit]\n\
         test: {command: [sh, -c, \"echo one spec failed; exit 7\"]}\n",
    )
    .unwrap();
    let out = xtask(state.path(), &["e2e", suite.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("schema as applied: ") && err.contains("migration(s) applied"), "{err}");
    let kept = runs(state.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    let schema =
        std::fs::read_to_string(state.path().join("runs").join(&kept[0]).join("schema.txt")).unwrap();
    assert!(schema.contains("\ntable public.notification_audit\n"), "{schema}");
    assert!(leftovers(state.path()).is_empty(), "{:?}", leftovers(state.path()));
}

#[test]
fn bad_suite_names_file_and_field() {
    let state = tempfile::tempdir().unwrap();
    let suite = state.path().join("bad.yaml");
    std::fs::write(
        &suite,
        "name: bad\ncomponents: [postgres, mysql]\nmigrations: all\ntest: {command: [\"true\"]}\n",
    )
    .unwrap();
    let out = xtask(state.path(), &["infra", "up", suite.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:2:24: error: components[1]: unknown component `mysql`"), "{err}");
    let out = xtask(state.path(), &["infra", "up", "nosuchsuite"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("suites: ") && err.contains("workflowexecution"), "{err}");
    assert!(runs(state.path()).is_empty(), "nothing is started for bad input");
}

/// Ctrl-C (SIGINT to the process group, as a terminal sends it) at random moments of `infra up`
/// and `e2e` (starting, waiting, up and idle, running tests) must leave no process, and so no
/// port, and no run directory behind.
#[test]
fn sigint_at_random_points_leaves_nothing_behind() {
    use std::os::unix::process::CommandExt;
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut rng = seed | 1;
    for round in 0..20 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let args: &[&str] = if round % 2 == 0 {
            &["infra", "up", "workflowexecution"]
        } else {
            &["e2e", "workflowexecution"]
        };
        // Spread over start-up (about a second here), the idle "up" state and the suite's run.
        let delay = Duration::from_millis(rng % 4000);
        let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env("XTASK_STATE_DIR", state.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(delay); // the random moment itself, not a wait for anything
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGINT).unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "round {round} (seed {seed}, {delay:?}): xtask did not exit after SIGINT"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        let what =
            format!("round {round} `{}` (seed {seed}, SIGINT after {delay:?}, {status})", args.join(" "));
        // Interrupted mid-way: 130 and says so. Ctrl-C is also how an `infra up` without --keep
        // ends once up, and an e2e may have passed before it came: then 0, saying which.
        // Before its handlers are installed, the signal's default.
        use std::os::unix::process::ExitStatusExt;
        let interrupted = status.code() == Some(130) && err.to_lowercase().contains("interrupted");
        let ended = status.code() == Some(0)
            && if round % 2 == 0 {
                err.contains("stopped and removed run")
            } else {
                err.contains(": PASSED")
            };
        let too_early = status.signal() == Some(2) && err.is_empty();
        assert!(interrupted || ended || too_early, "{what}: how it ended:\n{err}");
        let left = leftovers(state.path());
        assert!(left.is_empty(), "{what}: left running: {left:?}\n{err}");
        assert!(runs(state.path()).is_empty(), "{what}: run directory left: {:?}\n{err}", runs(state.path()));
    }
}

/// xtask SIGKILLed while an environment without `--keep` is up: no teardown code of ours runs,
/// yet its servers go with it (the parent-death signal), and `infra status` names the run it
/// left as orphaned.
#[test]
fn sigkill_of_infra_up_takes_its_servers_along() {
    use std::io::BufRead;
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["infra", "up", "workflowexecution"])
        .env("XTASK_STATE_DIR", state.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Up once the endpoints are printed (stdout is a pipe, so as `export` lines).
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let up = stdout.lines().map_while(Result::ok).any(|l| l.starts_with("export DATASTORAGE_URL="));
    assert!(up, "infra up printed its endpoints");
    let servers = leftovers(state.path());
    assert_eq!(servers.len(), 5, "postgres, redis, etcd, kube-apiserver and datastorage run: {servers:?}");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !leftovers(state.path()).is_empty() {
        assert!(Instant::now() < deadline, "still running after xtask died: {:?}", leftovers(state.path()));
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = xtask(state.path(), &["infra", "status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("orphaned"), "{text}");
}

#[test]
fn an_image_for_a_component_the_suite_lacks_is_refused_before_anything_starts() {
    let state = tempfile::tempdir().unwrap();
    let out = xtask(state.path(), &["infra", "up", "gateway", "--image", "mysql=docker.io/library/mysql:8"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "bad input: {err}");
    assert!(err.contains("--image mysql=") && err.contains("no component `mysql`"), "{err}");
    assert!(
        err.contains("postgres, redis, migrations, kube-api, datastorage"),
        "the components it has: {err}"
    );
    let out = xtask(state.path(), &["infra", "up", "gateway", "--image", "postgres"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("COMPONENT=IMAGE"), "the expected form is named: {err}");
    assert!(runs(state.path()).is_empty(), "nothing was started: {:?}", runs(state.path()));
}

#[test]
fn an_unreadable_run_is_listed_with_its_file_and_can_be_removed() {
    let state = tempfile::tempdir().unwrap();
    let id = "gateway-20260101-000000-abcd";
    let dir = state.path().join("runs").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("state.json"), "{garbage").unwrap();

    let out = xtask(state.path(), &["infra", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let file = dir.join("state.json");
    assert!(
        text.contains(id) && text.contains("unreadable") && text.contains(&*file.to_string_lossy()),
        "{text}"
    );
    assert!(text.contains("line 1"), "where the file is broken: {text}");
    assert!(text.contains(&format!("infra down {id}")), "how to remove it: {text}");

    let out = xtask(state.path(), &["infra", "status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["runs"][0]["run"], id);
    assert!(json["runs"][0]["state"].as_str().unwrap().starts_with("unreadable: "), "{json}");

    let out = xtask(state.path(), &["infra", "down", id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(runs(state.path()).is_empty());
}

#[test]
fn doctor_names_what_is_missing_and_how_to_get_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["doctor"])
        .env("PG_BINDIR", "/nonexistent/pg")
        .env("REDIS_SERVER", "/nonexistent/redis-server")
        .env("XTASK_CONTAINER_ENGINE", "/nonexistent/podman")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("KIND", "/nonexistent/kind")
        .env("KUBEBUILDER_ASSETS", "/nonexistent/assets")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "no backend can run: {text}");
    for (missing, hint) in [
        ("MISS PostgreSQL server binaries", "apt-get install postgresql"),
        ("MISS redis-server", "apt-get install redis-server"),
        ("MISS container engine `/nonexistent/podman`", "apt-get install podman runc"),
        ("MISS etcd + kube-apiserver", "cargo xtask devcluster build"),
    ] {
        let at = text.find(missing).unwrap_or_else(|| panic!("{missing}: {text}"));
        assert!(text[at..].lines().nth(1).unwrap().contains(hint), "{hint} follows {missing}: {text}");
    }
    assert!(text.contains("backend local: cannot run here"), "{text}");
    assert!(text.contains("backend podman: cannot run here"), "{text}");

    // Every backend is named, with what it lacks and the one thing that fixes it.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["doctor"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("KIND", "/nonexistent/kind")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("not yet built"), "{text}");
    assert!(text.contains("/nonexistent/kubeconfig: no such file"), "{text}");
    assert!(!text.contains("'\""), "a path quoted once: {text}");
    let cluster = text.find("backend cluster: cannot run here").unwrap_or_else(|| panic!("{text}"));
    assert!(text[cluster..].lines().nth(1).unwrap().contains("cargo xtask devcluster up"), "{text}");
    let kind = text.find("backend kind: cannot run here (missing: kind").unwrap_or_else(|| panic!("{text}"));
    assert!(text[kind..].lines().nth(1).is_some_and(|l| l.contains("kind")), "{text}");

    // This machine, as README's test command configures it: the local backend runs, and the
    // engine options in effect are shown.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["doctor", "--json"])
        .env("XTASK_CONTAINER_RUN_ARGS", "--ulimit nofile=1024:1024")
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema"], "xtask.doctor/1");
    let local =
        json["report"]["backends"].as_array().unwrap().iter().find(|b| b["backend"] == "local").unwrap();
    assert_eq!(local["ok"], true, "{json}");
    let args = json["report"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["what"].as_str().unwrap().contains("XTASK_CONTAINER_RUN_ARGS"));
    assert_eq!(args.unwrap()["found"], "--ulimit nofile=1024:1024");
}

#[test]
fn a_datastorage_binary_named_by_flag_runs_from_config_path_alone() {
    // Any DataStorage, as the monorepo's own build would be: here the reference server's binary
    // under another name, given no arguments, so it must find its config through CONFIG_PATH.
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--package", "datastorage-reference-server"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(built.success());
    let program = state.path().join("data-storage");
    std::fs::copy(root.join("target/debug/datastorage-reference-server"), &program).unwrap();
    let flag = format!("datastorage={}", program.display());

    let up =
        xtask(state.path(), &["infra", "up", "workflowexecution", "--binary", &flag, "--keep", "--json"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let v: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    let ds = v["env"]["DATASTORAGE_URL"].as_str().unwrap();
    let ca = v["env"]["DATASTORAGE_CA_FILE"].as_str();
    assert_eq!(datastorage_get(ds, ca, "/readyz"), (200, serde_json::json!({"status": "ready"})));

    let run = &runs(state.path())[0];
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("runs").join(run).join("state.json")).unwrap(),
    )
    .unwrap();
    let pid = saved["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|r| {
            (r["type"] == "process" && r["component"] == "datastorage").then(|| r["pid"].as_u64().unwrap())
        })
        .unwrap_or_else(|| panic!("no datastorage process in {saved}"));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(
        cmdline,
        format!("{}\0", program.display()).into_bytes(),
        "no --config: the real service takes none"
    );
    let environ =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap()).into_owned();
    assert!(
        environ.split('\0').any(|e| e.starts_with("CONFIG_PATH=") && e.ends_with("/config.yaml")),
        "{environ}"
    );

    let down = xtask(state.path(), &["infra", "down"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    // Stopped: gone, or a zombie its new parent (init, once xtask exited) has not reaped yet.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = state.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'));
    assert!(!running, "the named binary's process is stopped too: {state}");
}

#[test]
fn a_missing_datastorage_binary_is_named_before_anything_starts() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let out = xtask(
        state.path(),
        &["infra", "up", "workflowexecution", "--binary", "datastorage=bin/no-such-data-storage", "--json"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "bad input: {err}");
    assert!(err.contains("--binary datastorage=bin/no-such-data-storage: "), "the flag is named: {err}");
    assert!(
        err.contains("No such file or directory (os error 2) (build it first, or fix the path)"),
        "{err}"
    );
    assert!(runs(state.path()).is_empty(), "nothing was started: {:?}", runs(state.path()));
    assert!(leftovers(state.path()).is_empty(), "{:?}", leftovers(state.path()));
}

/// A checkout under a directory the `postgres` account cannot enter (as root, `/root` or any
/// 0700 parent): the environment still comes up, PostgreSQL's data lives where that account
/// can reach it (said in the step's summary), and `infra down` removes it from there too.
#[test]
fn a_checkout_closed_to_the_postgres_account_still_comes_up() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: not root, so PostgreSQL runs as ourselves and reaches the checkout");
        return;
    }
    let closed = tempfile::tempdir().unwrap();
    std::fs::set_permissions(closed.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let state = closed.path().join("checkout/.xtask");
    std::fs::create_dir_all(&state).unwrap();
    let _cleanup = Cleanup(&state);
    let up = xtask(&state, &["infra", "up", "workflowexecution", "--keep", "--json"]);
    let err = String::from_utf8_lossy(&up.stderr);
    assert!(up.status.success(), "{err}");
    let pointer = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .map(|r| r.unwrap().path().join("postgres").join("data-location"))
        .next()
        .unwrap();
    let home = std::path::PathBuf::from(std::fs::read_to_string(&pointer).unwrap());
    assert!(home.join("data/PG_VERSION").exists() && !home.starts_with(closed.path()), "{}", home.display());
    assert!(err.contains("because the server's account cannot enter"), "the summary says why: {err}");

    let down = xtask(&state, &["infra", "down"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(!home.exists(), "{} removed by infra down", home.display());
    assert!(leftovers(&state).is_empty(), "{:?}", leftovers(&state));
}

/// The JUnit file parsed as CI parses it: (classname, name, child element names) per test case,
/// after checking the counts the suite element claims.
fn junit_cases(path: &Path) -> Vec<(String, String, Vec<String>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).expect("a testsuite");
    let cases: Vec<_> = suite.children().filter(|n| n.has_tag_name("testcase")).collect();
    let count = |tag: &str| cases.iter().filter(|c| c.children().any(|n| n.has_tag_name(tag))).count();
    assert_eq!(suite.attribute("tests"), Some(cases.len().to_string().as_str()), "{text}");
    assert_eq!(suite.attribute("failures"), Some(count("failure").to_string().as_str()), "{text}");
    assert_eq!(suite.attribute("errors"), Some(count("error").to_string().as_str()), "{text}");
    cases
        .iter()
        .map(|c| {
            let children = c.children().filter(|n| n.is_element()).map(|n| n.tag_name().name().to_string());
            (
                c.attribute("classname").unwrap().into(),
                c.attribute("name").unwrap().into(),
                children.collect(),
            )
        })
        .collect()
}

/// The setup steps a run reported in its `--json` document, in plan order.
fn setup_steps(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap().to_string()).collect()
}

#[test]
fn e2e_writes_junit_and_timings_whether_the_suite_passes_or_fails() {
    for (name, command, code) in
        [("passing", "exit 0", 0), ("failing", "echo one spec failed >&2; exit 7", 3)]
    {
        let state = tempfile::tempdir().unwrap();
        let _cleanup = Cleanup(state.path());
        let suite = state.path().join(format!("{name}.yaml"));
        std::fs::write(
            &suite,
            format!(
                "name: {name}\ncomponents: [postgres, redis, migrations]\nmigrations: [notification_audit]\n\
                 test: {{command: [sh, -c, \"{command}\"]}}\n"
            ),
        )
        .unwrap();
        let (junit, html) = (state.path().join("out/junit.xml"), state.path().join("t.html"));
        let (junit_arg, html_arg) = (junit.to_str().unwrap(), html.to_str().unwrap());
        let args = ["e2e", suite.to_str().unwrap(), "--json", "--junit", junit_arg, "--timings", html_arg];
        let out = xtask(state.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {err}");
        assert!(err.contains(r#""report":"junit""#) && err.contains(r#""report":"timings""#), "{err}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let steps = setup_steps(&v, "setup");
        assert_eq!(steps, ["postgres", "redis", "migrations", "snapshot"], "{v}");

        let cases = junit_cases(&junit);
        let mut expected: Vec<(String, String)> = steps.iter().map(|s| ("setup".into(), s.clone())).collect();
        expected.push(("suite".into(), name.into()));
        let names: Vec<(String, String)> = cases.iter().map(|(c, n, _)| (c.clone(), n.clone())).collect();
        assert_eq!(names, expected, "one case per setup step, then the suite");
        let failed: Vec<&str> = cases
            .iter()
            .filter(|(_, _, ch)| ch.iter().any(|t| t == "failure"))
            .map(|(_, n, _)| n.as_str())
            .collect();
        assert_eq!(failed, if code == 0 { vec![] } else { vec![name] }, "{cases:?}");
        assert!(
            cases.iter().all(|(_, _, ch)| ch.iter().all(|t| t == "failure")),
            "nothing skipped: {cases:?}"
        );

        let page = std::fs::read_to_string(&html).unwrap();
        for step in &steps {
            assert!(page.contains(&format!("\">{step}<small>")), "{step} has a row: {page}");
        }
        let critical = v["setup"]["critical_path"].as_array().unwrap();
        assert!(!critical.is_empty());
        for step in critical {
            let step = step.as_str().unwrap();
            assert!(
                page.contains(&format!("<div class=\"name crit\" title=\"{step}: ")),
                "{step} is marked: {page}"
            );
        }
        assert!(page.contains(&format!(">tests: {name}<small>")), "{page}");
    }
}

#[test]
fn a_setup_that_fails_still_writes_junit_and_timings() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let (junit, html) = (state.path().join("junit.xml"), state.path().join("t.html"));
    let args = [
        "e2e",
        "workflowexecution",
        "--binary",
        "datastorage=/bin/false",
        "--junit",
        junit.to_str().unwrap(),
        "--timings",
        html.to_str().unwrap(),
    ];
    let out = xtask(state.path(), &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("junit: wrote {}", junit.display())), "{err}");
    let cases = junit_cases(&junit);
    let verdict = |name: &str| {
        &cases.iter().find(|(_, n, _)| n == name).unwrap_or_else(|| panic!("{name}: {cases:?}")).2
    };
    assert_eq!(verdict("datastorage"), &["failure"], "{cases:?}");
    assert_eq!(verdict("postgres"), &[] as &[String], "{cases:?}");
    assert_eq!(
        cases.last().map(|(c, n, ch)| (c.as_str(), n.as_str(), ch.clone())),
        Some(("suite", "workflowexecution", vec!["error".to_string()]))
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<h2>datastorage failed</h2>") && page.contains("class=\"bar failed"), "{page}");
}

/// On a terminal, nothing of xtask's cuts into the tests' own output: no stray `then:` line
/// before it, and the background step (keeping a template) says it started on a line of its own
/// instead of a spinner that ticks while the tests print.
#[test]
fn on_a_terminal_nothing_interleaves_with_the_tests_output() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let command = format!("{} e2e gateway", env!("CARGO_BIN_EXE_xtask"));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("XTASK_STATE_DIR", state.path())
        .output()
        .expect("run script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("then: "), "{text}");
    assert!(text.contains("snapshot: started, in the background"), "a first run keeps a template: {text}");
    let (start, end) = (text.find("running ").unwrap(), text.rfind("test result").unwrap());
    let tests = &text[start..end];
    let spinner = |c: char| ('\u{2800}'..='\u{28ff}').contains(&c);
    assert!(
        !tests.contains("snapshot") && !tests.chars().any(spinner),
        "xtask wrote into the tests' output:\n{tests}"
    );
}

/// A suite with `kube-api` on a machine without etcd and kube-apiserver: refused before anything
/// starts, saying both ways to get them, with no run left.
#[test]
fn without_etcd_and_kube_apiserver_up_says_how_to_get_them_before_starting_anything() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let empty_cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["infra", "up", "workflowexecution", "--keep"])
        .env("XTASK_STATE_DIR", state.path())
        .env("KUBEBUILDER_ASSETS", "")
        .env("XDG_CACHE_HOME", empty_cache.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("kube-api: no etcd and kube-apiserver"), "{err}");
    assert!(err.contains("cargo xtask devcluster build") && err.contains("setup-envtest"), "{err}");
    let runs: Vec<_> = std::fs::read_dir(state.path().join("runs")).into_iter().flatten().collect();
    assert!(runs.is_empty(), "no run left: {runs:?}");
    assert!(leftovers(state.path()).is_empty(), "nothing started: {:?}", leftovers(state.path()));
}
