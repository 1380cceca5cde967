//! The snapshot cache as a user meets it: a first local run keeps a migrated template (in the
//! background, once the run is ready; `infra down` waits for it), later runs start from copies
//! of it with passwords of their own, `--no-cache` bypasses it, runs at once share it, and a
//! keeper killed half-way leaves no half of a template.
#![allow(clippy::disallowed_methods)]

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

/// `infra up --keep --json`: the document, or a panic with what went wrong.
fn up(state: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["infra", "up", "workflowexecution", "--keep", "--json"];
    args.extend(extra);
    let out = xtask(state, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn summary<'a>(doc: &'a serde_json::Value, step: &str) -> &'a str {
    doc["report"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .and_then(|s| s["summary"].as_str())
        .unwrap_or_else(|| panic!("no step {step} with a summary in {doc}"))
}

fn templates(state: &Path) -> Vec<serde_json::Value> {
    let out = xtask(state, &["infra", "cache", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "xtask.cache-list/1");
    v["templates"].as_array().unwrap().clone()
}

fn migrated(state: &Path) -> Vec<serde_json::Value> {
    templates(state).into_iter().filter(|t| t["key"]["selection"] != "initdb").collect()
}

/// The run's background keeper (pid, log), from the single run's state.
fn keeper(state: &Path) -> (u32, std::path::PathBuf) {
    let runs: Vec<_> = std::fs::read_dir(state.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let text = std::fs::read_to_string(runs[0].join("state.json")).unwrap();
    let s: serde_json::Value = serde_json::from_str(&text).unwrap();
    let r = s["resources"].as_array().unwrap().iter().find(|r| r["type"] == "background");
    let r = r.unwrap_or_else(|| panic!("no background keeper recorded: {s}"));
    (r["pid"].as_u64().unwrap() as u32, r["log"].as_str().unwrap().into())
}

/// What the run's background keeper said once it is done (it logs into the run directory).
fn keeper_said(state: &Path) -> String {
    let (pid, log) = keeper(state);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Path::new(&format!("/proc/{pid}")).exists() && !zombie(pid) {
        assert!(Instant::now() < deadline, "the keeper still runs after 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::read_to_string(log).unwrap()
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').unwrap().1.starts_with(" Z"))
}

fn outcome<'a>(doc: &'a serde_json::Value, step: &str) -> &'a str {
    let steps = doc["report"]["steps"].as_array().unwrap();
    steps.iter().find(|s| s["step"] == step).and_then(|s| s["outcome"].as_str()).unwrap()
}

fn down(state: &Path) {
    let out = xtask(state, &["infra", "down", "--all"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = xtask(self.0, &["infra", "down", "--all"]);
    }
}

/// The password in a `postgres://user:password@host/db` URL.
fn password(url: &str) -> &str {
    url.split_once("://").unwrap().1.rsplit_once('@').unwrap().0.split_once(':').unwrap().1
}

#[test]
fn a_second_run_starts_from_the_first_runs_template_with_passwords_of_its_own() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let cold = up(state.path(), &[]);
    assert!(summary(&cold, "migrations").ends_with("applied"), "{}", summary(&cold, "migrations"));
    assert_eq!(outcome(&cold, "snapshot"), "background", "the run was ready without it");
    // `infra down` right away waits for the keeper: the template is whole afterwards.
    down(state.path());
    // The state directory is 0700 (a tempdir), closed to the server's account: both are kept.
    let all = templates(state.path());
    assert_eq!(all.iter().filter(|t| t["key"]["selection"] == "initdb").count(), 1, "{all:?}");
    let kept = migrated(state.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    let id = kept[0]["id"].as_str().unwrap().to_string();
    assert!(kept[0]["bytes"].as_u64().unwrap() > 1_000_000);
    assert_eq!(
        kept[0]["key"]["migrations"].as_array().unwrap().len(),
        9,
        "the key names every migration applied"
    );

    let mut urls = Vec::new();
    for _ in 0..2 {
        let warm = up(state.path(), &[]);
        assert!(
            summary(&warm, "postgres").contains(&format!("from snapshot {id}")),
            "{}",
            summary(&warm, "postgres")
        );
        assert_eq!(summary(&warm, "migrations"), format!("nothing to apply: from snapshot {id}"));
        let url = warm["env"]["DATABASE_URL"].as_str().unwrap().to_string();
        // The tracking tables are the real ones: the tool itself finds nothing left to apply.
        let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["migrate", "status", "--json", "--database-url", &url])
            .env("XTASK_STATE_DIR", state.path())
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        let s: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let rows = s["versions"].as_array().unwrap();
        assert_eq!(rows.len(), 9, "{s}");
        assert!(rows.iter().all(|r| r["state"] == "applied"), "{s}");
        urls.push(url);
    }
    assert_ne!(password(&urls[0]), password(&urls[1]), "each run has its own password");
    // The first run's password opens nothing in the second run's server.
    let stale = urls[1].replace(password(&urls[1]), password(&urls[0]));
    let refused = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["migrate", "status", "--database-url", &stale])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("password authentication failed"));
    assert_eq!(migrated(state.path()).len(), 1, "no second template of the same key");
}

#[test]
fn no_cache_bypasses_the_cache_and_a_different_selection_is_a_different_template() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let plain = up(state.path(), &["--no-cache"]);
    let steps: Vec<&str> =
        plain["report"]["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(!steps.contains(&"snapshot"), "{steps:?}");
    assert!(templates(state.path()).is_empty());
    down(state.path());

    up(state.path(), &[]);
    down(state.path());
    // The same suite with a --tables selection: another key, so no hit and a second template.
    let suite = state.path().join("subset.yaml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/suites/workflowexecution.yaml"),
    )
    .unwrap()
    .replace("migrations: all", "migrations: [audit_events]")
    .replace("name: workflowexecution", "name: subset");
    std::fs::write(&suite, text).unwrap();
    let out = xtask(state.path(), &["infra", "up", suite.to_str().unwrap(), "--keep", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let subset: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!summary(&subset, "postgres").contains("from snapshot"), "{}", summary(&subset, "postgres"));
    assert!(
        summary(&subset, "postgres").contains("from fresh-cluster template"),
        "{}",
        summary(&subset, "postgres")
    );
    down(state.path());
    let kept = migrated(state.path());
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.iter().any(|t| t["key"]["selection"] == "tables:audit_events"), "{kept:?}");

    let pruned = xtask(state.path(), &["infra", "cache", "prune", "--json"]);
    assert!(pruned.status.success());
    let p: serde_json::Value = serde_json::from_slice(&pruned.stdout).unwrap();
    assert_eq!(p["removed"].as_array().unwrap().len(), 3, "two migrated templates and the fresh one: {p}");
    assert!(templates(state.path()).is_empty());
    let unknown = xtask(state.path(), &["infra", "cache", "prune", "feedfacefeedface"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no template `feedfacefeedface`"));
}

#[test]
fn two_cold_runs_at_once_keep_one_template() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["infra", "up", "workflowexecution", "--keep", "--json"])
            .env("XTASK_STATE_DIR", state.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&a, &b] {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    down(state.path());
    let kept = migrated(state.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    let names: Vec<String> = std::fs::read_dir(state.path().join("cache/postgres"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".incoming-")), "nothing half-written is left: {names:?}");
}

#[test]
fn a_keeper_killed_while_keeping_a_template_leaves_none_half_written() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    up(state.path(), &[]);
    let (pid, log) = keeper(state.path());
    // The template is being made once the keeper says it migrates its private cluster.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("migrating a private cluster") {
        assert!(Instant::now() < deadline, "no template was started within 60 s");
        assert!(!zombie(pid) && Path::new(&format!("/proc/{pid}")).exists(), "the keeper ended first");
        std::thread::sleep(Duration::from_millis(2));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    keeper_said(state.path());
    assert!(migrated(state.path()).is_empty(), "a killed keeper keeps no template");
    // What it left is cleaned by the next keeper, which keeps a whole template.
    down(state.path());
    up(state.path(), &[]);
    let said = keeper_said(state.path());
    assert!(said.contains("kept template "), "{said}");
    down(state.path());
    assert_eq!(migrated(state.path()).len(), 1);
    let pruned = xtask(state.path(), &["infra", "cache", "prune"]);
    assert!(pruned.status.success());
    let names: Vec<String> = std::fs::read_dir(state.path().join("cache/postgres"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock")
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_template_that_will_not_start_is_replaced_and_the_run_comes_up_all_the_same() {
    let state = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(state.path());
    up(state.path(), &[]);
    down(state.path());
    let kept = migrated(state.path());
    let id = kept[0]["id"].as_str().unwrap().to_string();
    // Without its control file no server starts on a copy of it.
    let control = state.path().join("cache/postgres").join(&id).join("data/global/pg_control");
    std::fs::remove_file(&control).unwrap();

    let doc = up(state.path(), &[]);
    let pg = summary(&doc, "postgres");
    assert!(pg.contains(&format!("not used: from snapshot {id}")), "the broken template is named: {pg}");
    assert!(pg.contains("from fresh-cluster template"), "the next origin served: {pg}");
    assert_eq!(summary(&doc, "migrations"), "9 applied");
    assert_eq!(outcome(&doc, "snapshot"), "background", "a new template is kept");
    down(state.path());
    let kept = migrated(state.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(control.exists(), "kept anew under the same key");

    let warm = up(state.path(), &[]);
    let pg = summary(&warm, "postgres");
    assert!(pg.contains(&format!("from snapshot {id}")) && !pg.contains("not used"), "{pg}");
}
