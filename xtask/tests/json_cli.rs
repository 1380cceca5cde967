//! Every `--json` document and progress stream, as its shape: keys, value types, and the values
//! a reader switches on (`schema`, `event`, `severity`, `ok`). The snapshots under `snapshots/`
//! are the reference for each versioned schema: a change to a shape shows in review, and one
//! that is not additive needs the schema's version raised.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Output};

use pgserver::PgServer;
use serde_json::{Map, Value};

/// Keys whose values are part of the shape: what a reader dispatches on.
const LITERAL: [&str; 5] = ["schema", "event", "severity", "outcome", "type"];

/// The shape of a document: objects keep their keys, arrays the distinct shapes of their
/// elements, and scalars become their type, except for the keys in [`LITERAL`].
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let kept = LITERAL.contains(&k.as_str()) && (v.is_string() || v.is_boolean());
                    (k.clone(), if kept { v.clone() } else { shape(v) })
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => {
            let mut shapes: Vec<Value> = Vec::new();
            for s in items.iter().map(shape) {
                if !shapes.contains(&s) {
                    shapes.push(s);
                }
            }
            Value::Array(shapes)
        }
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => "null".into(),
    }
}

/// `ok` is part of the shape too: the documents of success and failure differ.
fn shape_of_document(v: &Value) -> Value {
    let mut s = shape(v);
    s["ok"] = v["ok"].clone();
    s
}

fn xtask(state: &Path, args: &[&str], url: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args).env("XTASK_STATE_DIR", state).env_remove("DATABASE_URL").env_remove("GITHUB_ACTIONS");
    if let Some(url) = url {
        cmd.env("DATABASE_URL", url);
    }
    cmd.output().expect("run xtask")
}

/// The single JSON document on stdout, checked to name `schema`.
fn document(o: &Output, schema: &str) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    let v: Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: one document: {out}{err}"));
    assert_eq!(v["schema"], schema, "{v}");
    v
}

/// The distinct shapes of the JSON lines on stderr, each checked to name `schema`.
fn events(o: &Output, schema: &str) -> Value {
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .inspect(|v| assert_eq!(v["schema"], schema, "{v}"))
        .collect();
    assert!(!lines.is_empty(), "progress events on stderr: {err}");
    shape(&Value::Array(lines))
}

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn migrate_documents_and_events() {
    let state = tempfile::tempdir().unwrap();
    let pg = PgServer::start().unwrap();
    pg.create_database("app").unwrap();
    let url = pg.url("app");
    let dir = folder(&[
        ("001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n-- +goose Down\nDROP TABLE a;\n"),
        ("002_b.sql", "-- +goose Up\nCREATE TABLE b (id int);\n"),
    ]);
    let d = dir.path().to_str().unwrap();
    let s = state.path();

    let plan = xtask(s, &["migrate", "--all", "--dry-run", "--json", "--dir", d], None);
    insta::assert_json_snapshot!("migrate_plan", shape_of_document(&document(&plan, "xtask.migrate-plan/1")));

    let up = xtask(s, &["migrate", "--all", "--json", "--dir", d], Some(&url));
    assert!(up.status.success());
    insta::assert_json_snapshot!("migrate", shape_of_document(&document(&up, "xtask.migrate/1")));
    insta::assert_json_snapshot!("migrate_events", events(&up, "xtask.migrate-event/1"));

    let status = xtask(s, &["migrate", "status", "--json", "--dir", d], Some(&url));
    insta::assert_json_snapshot!(
        "migrate_status",
        shape_of_document(&document(&status, "xtask.migrate-status/1"))
    );

    let lint = xtask(s, &["migrate", "lint", "--json", "--dir", d], None);
    assert!(lint.status.success(), "warnings only");
    insta::assert_json_snapshot!("migrate_lint", shape_of_document(&document(&lint, "xtask.migrate-lint/1")));

    let down = xtask(s, &["migrate", "down", "--json", "--dir", d], Some(&url));
    assert_eq!(down.status.code(), Some(2), "002 has no Down section");
    insta::assert_json_snapshot!(
        "migrate_down_error",
        shape_of_document(&document(&down, "xtask.migrate-down/1"))
    );

    std::fs::write(dir.path().join("003_bad.sql"), "-- +goose Up\nSELECT nosuch FROM a;\n").unwrap();
    let failed = xtask(s, &["migrate", "--all", "--json", "--dir", d], Some(&url));
    assert_eq!(failed.status.code(), Some(1));
    insta::assert_json_snapshot!("migrate_error", shape_of_document(&document(&failed, "xtask.migrate/1")));
}

#[test]
fn infra_documents_without_a_run() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let plan = xtask(s, &["infra", "up", "workflowexecution", "--dry-run", "--json"], None);
    assert!(plan.status.success());
    insta::assert_json_snapshot!("plan", shape_of_document(&document(&plan, "xtask.plan/2")));

    let status = xtask(s, &["infra", "status", "--json"], None);
    insta::assert_json_snapshot!("status_empty", shape(&document(&status, "xtask.status/1")));

    let down = xtask(s, &["infra", "down", "--json"], None);
    assert_eq!(down.status.code(), Some(2), "no run to take down");
    insta::assert_json_snapshot!("down_error", shape_of_document(&document(&down, "xtask.down/1")));

    let suite = s.join("broken.yaml");
    std::fs::write(&suite, "name: broken\ncomponents: [postgres, mysql]\ntest: {command: [\"true\"]}\n")
        .unwrap();
    let bad = xtask(s, &["e2e", suite.to_str().unwrap(), "--json"], None);
    assert_eq!(bad.status.code(), Some(2));
    let v = document(&bad, "xtask.e2e/1");
    assert_eq!(
        (v["diagnostics"][0]["line"].as_u64(), v["diagnostics"][0]["column"].as_u64()),
        (Some(2), Some(24))
    );
    insta::assert_json_snapshot!("e2e_bad_input", shape_of_document(&v));

    let doctor = xtask(s, &["doctor", "--json"], None);
    let v = document(&doctor, "xtask.doctor/1");
    // What this machine has varies; the keys do not.
    let keys: Vec<&String> = v["report"].as_object().unwrap().keys().collect();
    insta::assert_json_snapshot!("doctor_keys", keys);
}

#[test]
fn a_run_from_up_to_down() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = xtask(self.0, &["infra", "down", "--all"], None);
        }
    }
    let _cleanup = Cleanup(s);
    let suite = s.join("small.yaml");
    // The suite prints on stdout; that goes to xtask's stderr, leaving stdout one document.
    std::fs::write(
        &suite,
        "name: small\ncomponents: [postgres, redis]\ntest: {command: [sh, -c, \"echo from the suite\"]}\n",
    )
    .unwrap();
    let suite = suite.to_str().unwrap();

    let up = xtask(s, &["infra", "up", suite, "--keep", "--json"], None);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let doc = document(&up, "xtask.up/1");
    insta::assert_json_snapshot!("up", shape_of_document(&doc));
    insta::assert_json_snapshot!("up_events", events(&up, "xtask.up-event/1"));
    let run = doc["run"].as_str().unwrap().to_string();

    let status = xtask(s, &["infra", "status", "--json"], None);
    insta::assert_json_snapshot!("status", shape(&document(&status, "xtask.status/1")));

    let restart = xtask(s, &["infra", "restart", "redis", "--json"], None);
    assert!(restart.status.success(), "{}", String::from_utf8_lossy(&restart.stderr));
    let v = document(&restart, "xtask.restart/1");
    assert_eq!((v["run"].as_str(), v["component"].as_str()), (Some(run.as_str()), Some("redis")));
    insta::assert_json_snapshot!("restart", shape_of_document(&v));

    let down = xtask(s, &["infra", "down", &run, "--json"], None);
    assert!(down.status.success());
    let v = document(&down, "xtask.down/1");
    assert_eq!(v["removed"][0]["run"], run.as_str());
    insta::assert_json_snapshot!("down", shape_of_document(&v));

    let e2e = xtask(s, &["e2e", suite, "--json"], None);
    assert!(e2e.status.success(), "{}", String::from_utf8_lossy(&e2e.stderr));
    let v = document(&e2e, "xtask.e2e/1");
    assert_eq!(v["verdict"], "PASSED");
    assert!(String::from_utf8_lossy(&e2e.stderr).contains("from the suite\n"));
    insta::assert_json_snapshot!("e2e", shape_of_document(&v));
}
