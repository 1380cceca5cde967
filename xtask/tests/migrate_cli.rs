//! `cargo xtask migrate` as a user runs it: real binary, real PostgreSQL, exit codes and output.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Output};

use pgserver::PgServer;

fn xtask(args: &[&str], url: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args).env_remove("DATABASE_URL");
    if let Some(url) = url {
        cmd.env("DATABASE_URL", url);
    }
    cmd.output().expect("run xtask")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (n, t) in files {
        std::fs::write(dir.path().join(n), t).unwrap();
    }
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn all_twice_then_status() {
    let pg = PgServer::start().unwrap();
    pg.create_database("app").unwrap();
    let url = pg.url("app");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let count = std::fs::read_dir(&repo)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".sql"))
        .count();

    let first = xtask(&["migrate", "--all"], Some(&url));
    let (out, err) = text(&first);
    assert!(first.status.success(), "{out}{err}");
    assert!(out.contains(&format!("applied {count} migration(s)")), "{out}");
    assert!(!err.contains(pg.password()), "the password is never echoed: {err}");
    assert!(err.contains("postgres://postgres:***@127.0.0.1"), "{err}");

    let second = xtask(&["migrate", "--all"], Some(&url));
    let (out, _) = text(&second);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(out.trim(), format!("nothing to apply: all {count} selected migration(s) already applied"));

    let status = xtask(&["migrate", "status", "--json"], Some(&url));
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let rows = v["versions"].as_array().unwrap();
    assert_eq!(rows.len(), count);
    assert!(rows.iter().all(|r| r["state"] == "applied" && r["applied_at"].is_string()), "{v}");
    assert_eq!(v["pending"], 0);
}

#[test]
fn failure_exits_1_with_file_line_and_json_details() {
    let pg = PgServer::start().unwrap();
    pg.create_database("app").unwrap();
    let url = pg.url("app");
    let dir = folder(&[
        ("001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n"),
        ("002_bad.sql", "-- +goose Up\nCREATE TABLE b (id int);\nALTER TABLE a ADD COLUMN id int;\n"),
    ]);
    let o = xtask(&["migrate", "--all", "--dir", s(dir.path())], Some(&url));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("002_bad.sql:3: error: migration 2 (up) failed"), "{err}");
    assert!(err.contains("error 42701: column \"id\" of relation \"a\" already exists"), "{err}");

    let o = xtask(&["migrate", "--all", "--json", "--dir", s(dir.path())], Some(&url));
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["failure"]["code"], "42701");
    assert_eq!(v["failure"]["line"], 3);
    assert_eq!(v["schema"], "xtask.migrate/1");
    assert_eq!(v["diagnostics"][0]["line"], 3, "{v}");
    assert_eq!(pg.psql("app", "SELECT to_regclass('b') IS NULL").unwrap().trim(), "t");
}

/// Where PostgreSQL points inside a statement, the diagnostic points too: line and column of
/// the file, as editors and GitHub's annotations read them.
#[test]
fn a_failing_statement_is_reported_at_the_line_and_column_postgres_points_at() {
    let pg = PgServer::start().unwrap();
    pg.create_database("app").unwrap();
    let url = pg.url("app");
    let dir = folder(&[(
        "001_a.sql",
        "-- +goose Up\nCREATE TABLE a (id int);\n  SELECT id,\n         nosuch FROM a;\n",
    )]);
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["migrate", "--all", "--dir", s(dir.path()), "--database-url", &url])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let file = dir.path().join("001_a.sql");
    let f = file.display();
    assert!(err.contains(&format!("{f}:4:10: error: migration 1 (up) failed\n")), "{err}");
    assert!(err.contains("error 42703: column \"nosuch\" does not exist"), "{err}");
    let annotation = format!(
        "::error file={},line=4,col=10::migration 1 (up) failed%0A",
        f.to_string().replace(':', "%3A")
    );
    assert!(out.contains(&annotation), "GitHub annotation on stdout: {out}");
}

#[test]
fn bad_input_exits_2_naming_the_files() {
    let dir =
        folder(&[("001_a.sql", "-- +goose Up\nSELECT 1;\n"), ("1_again.sql", "-- +goose Up\nSELECT 2;\n")]);
    let o = xtask(&["migrate", "--all", "--dir", s(dir.path()), "--dry-run"], None);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let d = dir.path().display();
    assert!(
        err.contains(&format!("{d}/1_again.sql: error: version 1 is also used by {d}/001_a.sql")),
        "{err}"
    );

    let o = xtask(&["migrate", "--all"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no database: pass --database-url"));

    let o = xtask(&["migrate"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("say what to apply"));

    let o = xtask(&["migrate", "--tables", "nosuchtable", "--dry-run"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no migration touches table nosuchtable"));
}

#[test]
fn lint_reports_every_problem_with_file_and_line() {
    let dir = folder(&[
        ("001_ok.sql", "-- +goose Up\nCREATE TABLE t (a int);\n-- +goose Down\nDROP TABLE t;\n"),
        (
            "002_concurrently.sql",
            "-- +goose Up\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n-- +goose Down\nDROP INDEX t_a;\n",
        ),
        ("003_down_typo.sql", "-- +goose Up\nSELECT 1;\n-- +goose Down\nDROPP TABLE t;\n"),
        ("004_block.sql", "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n"),
        ("005_noup.sql", "CREATE TABLE x (i int);\n"),
        ("006_annot.sql", "-- +goose Up\n-- +goose ENVSUBST ON\nSELECT 1;\n-- +goose Down\nSELECT 1;\n"),
        ("6_dup.sql", "-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 1;\n"),
    ]);
    let o = xtask(&["migrate", "lint", "--dir", s(dir.path())], None);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    let d = dir.path().display();
    for expected in [
        format!(
            "{d}/002_concurrently.sql:2: error: Up: CREATE INDEX CONCURRENTLY cannot run inside a transaction"
        ),
        format!(
            "{d}/003_down_typo.sql:4:1: error: Down: SQL does not parse: syntax error at or near \"DROPP\""
        ),
        format!("{d}/004_block.sql:2: error: '-- +goose StatementBegin' has no matching"),
        format!("{d}/005_noup.sql:1: warning: no goose annotations: applied whole as its Up section"),
        format!("{d}/006_annot.sql:2: warning: '-- +goose ENVSUBST ON' is not a goose annotation"),
        "error: version 6 is also used by".to_string(),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    let clean =
        folder(&[("001_ok.sql", "-- +goose Up\nCREATE TABLE t (a int);\n-- +goose Down\nDROP TABLE t;\n")]);
    let o = xtask(&["migrate", "lint", "--dir", s(clean.path()), "--json"], None);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn repository_migrations_lint_clean() {
    let o = xtask(&["migrate", "lint"], None);
    let (out, _) = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.ends_with("0 error(s), 0 warning(s)\n"), "{out}");
}

#[test]
fn down_dry_run_then_down() {
    let pg = PgServer::start().unwrap();
    pg.create_database("app").unwrap();
    let url = pg.url("app");
    let dir = folder(&[
        ("001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n-- +goose Down\nDROP TABLE a;\n"),
        ("002_b.sql", "-- +goose Up\nCREATE TABLE b (id int);\n-- +goose Down\nDROP TABLE b;\n"),
    ]);
    assert!(xtask(&["migrate", "--all", "--dir", s(dir.path())], Some(&url)).status.success());
    let o = xtask(&["migrate", "down", "--to", "0", "--dry-run", "--dir", s(dir.path())], Some(&url));
    let (out, _) = text(&o);
    assert!(out.contains("would roll back 2 migration(s)"), "{out}");
    assert_eq!(
        pg.psql("app", "SELECT count(*) FROM goose_db_version WHERE version_id > 0").unwrap().trim(),
        "2"
    );
    let o = xtask(&["migrate", "down", "--dir", s(dir.path())], Some(&url));
    assert_eq!(text(&o).0.trim(), "rolled back 1 migration(s): 002_b.sql");
}

#[test]
fn dry_run_refuses_an_edited_applied_file_like_a_real_run() {
    let pg = PgServer::start().unwrap();
    pg.create_database("app").unwrap();
    let url = pg.url("app");
    let dir = folder(&[("001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n")]);
    assert!(xtask(&["migrate", "--all", "--dir", s(dir.path())], Some(&url)).status.success());
    std::fs::write(dir.path().join("001_a.sql"), "-- +goose Up\nCREATE TABLE a (id bigint);\n").unwrap();
    for args in [&["migrate", "--all", "--dry-run"][..], &["migrate", "--all"][..]] {
        let mut argv = args.to_vec();
        argv.extend(["--dir", s(dir.path())]);
        let o = xtask(&argv, Some(&url));
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("001_a.sql") && err.contains("must not be edited"), "{args:?}: {err}");
    }
}

/// The way forward from an edited applied file, as a user takes it: the refusal names `migrate
/// repair`; a repair without a reason is refused (exit 2); `--dry-run` says what it would
/// record and records nothing; the repair records it, and `--all` goes on.
#[test]
fn repair_accepts_an_edited_applied_file_with_a_reason() {
    let pg = PgServer::start().unwrap();
    pg.create_database("app").unwrap();
    let url = pg.url("app");
    let dir = folder(&[("001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n")]);
    let d = s(dir.path());
    assert!(xtask(&["migrate", "--all", "--dir", d], Some(&url)).status.success());
    std::fs::write(
        dir.path().join("001_a.sql"),
        "-- +goose Up\n-- owner: audit team\nCREATE TABLE a (id int);\n",
    )
    .unwrap();
    let refused = xtask(&["migrate", "--all", "--dir", d], Some(&url));
    assert!(text(&refused).1.contains("cargo xtask migrate repair 1 --reason TEXT"), "{}", text(&refused).1);

    let no_reason = xtask(&["migrate", "repair", "1", "--reason", " ", "--dir", d], Some(&url));
    assert_eq!(no_reason.status.code(), Some(2), "{}", text(&no_reason).1);
    let dry =
        xtask(&["migrate", "repair", "1", "--reason", "comment only", "--dry-run", "--dir", d], Some(&url));
    assert!(
        dry.status.success() && text(&dry).0.starts_with("would record the repair of version 1"),
        "{:?}",
        text(&dry)
    );
    assert!(
        !xtask(&["migrate", "--all", "--dir", d], Some(&url)).status.success(),
        "a dry run records nothing"
    );

    let done =
        xtask(&["migrate", "repair", "1", "--reason", "comment only", "--json", "--dir", d], Some(&url));
    assert!(done.status.success(), "{}", text(&done).1);
    let doc: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(
        (doc["schema"].as_str(), doc["repair"]["version"].as_i64()),
        (Some("xtask.migrate-repair/1"), Some(1))
    );
    assert!(xtask(&["migrate", "--all", "--dir", d], Some(&url)).status.success(), "the next run goes on");
    let again = xtask(&["migrate", "repair", "1", "--reason", "again", "--dir", d], Some(&url));
    assert_eq!(again.status.code(), Some(2), "nothing to repair: {}", text(&again).1);
}

/// The monorepo's folder as it is: plain SQL files next to goose ones, applied by `--all`;
/// lint, status and the dry run say goose itself would refuse the plain ones; a transactional
/// CONCURRENTLY stops the run at its file and line, as a file error (exit 2).
#[test]
fn a_folder_mixing_plain_and_goose_files_applies_and_stops_at_a_transactional_concurrently() {
    let pg = PgServer::start().unwrap();
    pg.create_database("app").unwrap();
    let url = pg.url("app");
    let dir = folder(&[
        ("001_audit.sql", "CREATE TABLE audit (id int, kind text);\n"),
        (
            "002_catalog.sql",
            "-- +goose Up\nCREATE TABLE catalog (id int);\n-- +goose Down\nDROP TABLE catalog;\n",
        ),
    ]);
    let d = s(dir.path());
    let dry = xtask(&["migrate", "--all", "--dir", d, "--dry-run"], None);
    let (out, err) = text(&dry);
    assert!(dry.status.success(), "{out}{err}");
    assert!(
        out.contains(
            "001_audit.sql  [1 statement(s), no goose annotations: applied whole, goose would refuse it]"
        ),
        "{out}"
    );

    let lint = xtask(&["migrate", "lint", "--dir", d], None);
    let (out, _) = text(&lint);
    assert_eq!(lint.status.code(), Some(0), "warnings only: {out}");
    assert!(out.contains(&format!("{d}/001_audit.sql:1: warning: no goose annotations")), "{out}");
    assert!(out.contains("make '-- +goose Up' its first line"), "{out}");

    let all = xtask(&["migrate", "--all", "--dir", d], Some(&url));
    let (out, err) = text(&all);
    assert!(all.status.success(), "{out}{err}");
    assert!(out.contains("applied 2 migration(s)"), "{out}");
    let status = xtask(&["migrate", "status", "--dir", d], Some(&url));
    let (out, _) = text(&status);
    assert!(out.contains("applied") && out.contains("no goose annotations: applied whole"), "{out}");

    std::fs::write(
        dir.path().join("003_index.sql"),
        "SELECT 1;\nCREATE INDEX CONCURRENTLY audit_kind ON audit (kind);\n",
    )
    .unwrap();
    let stop = xtask(&["migrate", "--all", "--dir", d], Some(&url));
    let (out, err) = text(&stop);
    assert_eq!(stop.status.code(), Some(2), "{out}{err}");
    assert!(
        err.contains(&format!(
            "{d}/003_index.sql:2: error: Up: CREATE INDEX CONCURRENTLY cannot run inside a transaction"
        )),
        "{err}"
    );
    // The file has no annotations: the advice names both lines it needs.
    assert!(
        err.contains("needs both '-- +goose NO TRANSACTION' and '-- +goose Up' as its first lines"),
        "{err}"
    );
    assert_eq!(pg.psql("app", "SELECT max(version_id) FROM goose_db_version").unwrap().trim(), "2");
    // Its rehearsal refuses it the same way, without a database.
    let dry = xtask(&["migrate", "--all", "--dry-run", "--dir", d], None);
    let (out, err) = text(&dry);
    assert_eq!(dry.status.code(), Some(2), "{out}{err}");
    assert!(err.contains("003_index.sql:2: error: Up: CREATE INDEX CONCURRENTLY"), "{err}");
}
