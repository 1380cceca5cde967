//! Bad input, tried as a user would: each case gets a clear error naming the file, line or
//! field, the documented exit status, and leaves nothing behind (no run directory, no process,
//! no database change). TESTING.md's table lists these cases by name; a test checks that it
//! lists every one.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Output};

use pgserver::PgServer;

/// One bad input: files written into a fresh folder `{dir}`, the command, what it must answer.
struct Case {
    /// What is wrong, as TESTING.md names it.
    name: &'static str,
    /// Files of the case, relative to `{dir}`.
    files: &'static [(&'static str, &'static str)],
    /// The arguments after `cargo xtask`; `{dir}` is the case's folder, `{url}` a real database.
    args: &'static [&'static str],
    /// The exit status.
    code: i32,
    /// What the error output must say (file, line, field); `{dir}` as above.
    says: &'static [&'static str],
}

/// The cases that need no running database unless they name `{url}`.
const CASES: &[Case] = &[
    // Migration files.
    Case {
        name: "migration: misspelt Up annotation",
        files: &[("m/001_a.sql", "-- +goose Upp\nCREATE TABLE a (id int);\n")],
        args: &["migrate", "--all", "--dry-run", "--dir", "{dir}/m"],
        code: 2,
        says: &["{dir}/m/001_a.sql:2: error: SQL before '-- +goose Up'", "line 1 reads '-- +goose Upp'"],
    },
    Case {
        name: "migration: statement without its semicolon",
        files: &[("m/001_a.sql", "-- +goose Up\nCREATE TABLE a (id int)\n-- +goose Down\nDROP TABLE a;\n")],
        args: &["migrate", "--all", "--dry-run", "--dir", "{dir}/m"],
        code: 2,
        says: &["{dir}/m/001_a.sql:2: error: statement is not terminated by ';'"],
    },
    Case {
        name: "migration: unterminated dollar quote",
        files: &[("m/001_a.sql", "-- +goose Up\nSELECT 1;\nDO $$ BEGIN\nEND;\n")],
        args: &["migrate", "--all", "--dry-run", "--dir", "{dir}/m"],
        code: 2,
        says: &["{dir}/m/001_a.sql:3: error: dollar-quoted body is never closed"],
    },
    Case {
        name: "migration: StatementBegin without StatementEnd",
        files: &[("m/001_a.sql", "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n")],
        args: &["migrate", "--all", "--dry-run", "--dir", "{dir}/m"],
        code: 2,
        says: &["{dir}/m/001_a.sql:2: error: '-- +goose StatementBegin' has no matching"],
    },
    Case {
        name: "migration: two files with one version",
        files: &[("m/001_a.sql", "-- +goose Up\nSELECT 1;\n"), ("m/1_b.sql", "-- +goose Up\nSELECT 2;\n")],
        args: &["migrate", "--all", "--dry-run", "--dir", "{dir}/m"],
        code: 2,
        says: &["{dir}/m/1_b.sql: error: version 1 is also used by {dir}/m/001_a.sql"],
    },
    Case {
        name: "migration: version 0",
        files: &[("m/000_a.sql", "-- +goose Up\nSELECT 1;\n")],
        args: &["migrate", "--all", "--dry-run", "--dir", "{dir}/m"],
        code: 2,
        says: &["{dir}/m/000_a.sql: error: version 0 is reserved by goose"],
    },
    Case {
        name: "migration: version beyond 64 bits",
        files: &[("m/99999999999999999999_a.sql", "-- +goose Up\nSELECT 1;\n")],
        args: &["migrate", "--all", "--dry-run", "--dir", "{dir}/m"],
        code: 2,
        says: &[
            "99999999999999999999_a.sql: error: version 99999999999999999999 does not fit a 64-bit integer",
        ],
    },
    Case {
        name: "migration: CONCURRENTLY inside a transaction",
        files: &[("m/001_a.sql", "-- +goose Up\nCREATE INDEX CONCURRENTLY i ON t (a);\n")],
        args: &["migrate", "lint", "--dir", "{dir}/m"],
        code: 2,
        says: &["{dir}/m/001_a.sql:2: error: Up: CREATE INDEX CONCURRENTLY cannot run inside a transaction"],
    },
    Case {
        name: "migration: SQL that does not parse (lint)",
        files: &[("m/001_a.sql", "-- +goose Up\nCREATE TABL a (id int);\n")],
        args: &["migrate", "lint", "--dir", "{dir}/m"],
        code: 2,
        says: &["{dir}/m/001_a.sql:2:8: error: Up: SQL does not parse: syntax error at or near \"TABL\""],
    },
    Case {
        name: "migration: folder that does not exist",
        files: &[],
        args: &["migrate", "--all", "--dry-run", "--dir", "{dir}/nowhere"],
        code: 2,
        says: &["migrations folder {dir}/nowhere not found"],
    },
    Case {
        name: "migration: --tables names a table no file touches",
        files: &[("m/001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n")],
        args: &["migrate", "--tables", "nosuch", "--dry-run", "--dir", "{dir}/m"],
        code: 2,
        says: &["no migration touches table nosuch; tables the migrations know: a"],
    },
    Case {
        name: "migration: failing statement",
        files: &[("m/001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\nSELECT nosuch\n  FROM a;\n")],
        args: &["migrate", "--all", "--dir", "{dir}/m", "--database-url", "{url}"],
        code: 1,
        says: &[
            "{dir}/m/001_a.sql:3:8: error: migration 1 (up) failed",
            "error 42703: column \"nosuch\" does not exist",
        ],
    },
    Case {
        name: "migration: ENVSUB variable not set",
        files: &[(
            "m/001_a.sql",
            "-- +goose Up\n-- +goose ENVSUB ON\nCREATE TABLE ${XTASK_TEST_UNSET_VAR} (id int);\n",
        )],
        args: &["migrate", "--all", "--dir", "{dir}/m", "--database-url", "{url}"],
        code: 1,
        says: &["{dir}/m/001_a.sql:3: error: migration 1 (up) failed", "XTASK_TEST_UNSET_VAR"],
    },
    Case {
        name: "migration: down --to a version without a file",
        files: &[("m/001_a.sql", "-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 1;\n")],
        args: &["migrate", "down", "--to", "7", "--dir", "{dir}/m", "--database-url", "{url}"],
        code: 2,
        says: &["no migration has version 7"],
    },
    // Suite files.
    Case {
        name: "suite: test command that does not exist",
        files: &[("s.yaml", "name: s\ncomponents: [redis]\ntest: {command: [no-such-test-runner, run]}\n")],
        args: &["e2e", "{dir}/s.yaml"],
        code: 2,
        says: &["suite s: test.command: `no-such-test-runner` is not a program on PATH"],
    },
    Case {
        name: "flag: --junit naming a folder",
        files: &[("s.yaml", "name: s\ncomponents: [redis]\ntest: {command: [\"true\"]}\n")],
        args: &["e2e", "{dir}/s.yaml", "--junit", "{dir}"],
        code: 2,
        says: &["--junit {dir}: is a folder; give a file in it"],
    },
    Case {
        name: "flag: --image on the local backend",
        files: &[],
        args: &["infra", "up", "gateway", "--image", "postgres=docker.io/library/postgres:16"],
        code: 2,
        says: &["--image postgres=...: images are for container backends", "--binary COMPONENT=PATH"],
    },
    Case {
        name: "suite: misspelt migration table",
        files: &[(
            "s.yaml",
            "name: s\ncomponents: [postgres, migrations]\nmigrations: [audit_events, audit_evnets]\ntest: {command: [\"true\"]}\n",
        )],
        args: &["e2e", "{dir}/s.yaml"],
        code: 2,
        says: &[
            "{dir}/s.yaml:3:28: error: migrations[1]: no migration in",
            "touches table `audit_evnets`; they know: audit_events,",
        ],
    },
    Case {
        name: "suite: a list given as a word",
        files: &[("s.yaml", "name: s\ncomponents: postgres\ntest: {command: [\"true\"]}\n")],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:2:13: error: components: expected a list, e.g. `[a, b]`"],
    },
    Case {
        name: "suite: a test command that is not a list",
        files: &[("s.yaml", "name: s\ncomponents: [postgres]\ntest: {command: true}\n")],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:3:17: error: test.command: expected a list"],
    },
    Case {
        name: "suite: images given as a list",
        files: &[("s.yaml", "name: s\ncomponents: [postgres]\nimages: [x]\ntest: {command: [\"true\"]}\n")],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:3:9: error: images: expected a map of `key: value`"],
    },
    Case {
        name: "suite: unknown component",
        files: &[("s.yaml", "name: s\ncomponents: [postgres, mysql]\ntest: {command: [\"true\"]}\n")],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:2:24: error: components[1]: unknown component `mysql` (known: "],
    },
    Case {
        name: "suite: component listed twice",
        files: &[(
            "s.yaml",
            "name: s\ncomponents:\n  - postgres\n  - postgres\ntest: {command: [\"true\"]}\n",
        )],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:4:5: error: components[1]: `postgres` is listed twice"],
    },
    Case {
        name: "suite: a component without what it needs",
        files: &[(
            "s.yaml",
            "name: s\ncomponents: [migrations]\nmigrations: all\ntest: {command: [\"true\"]}\n",
        )],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:2:1: error: components: `migrations` needs `postgres`; add it to the list"],
    },
    Case {
        name: "suite: name differs from the file name",
        files: &[("s.yaml", "name: other\ncomponents: [postgres]\ntest: {command: [\"true\"]}\n")],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:1:1: error: name: `other` does not match the file name `s.yaml`"],
    },
    Case {
        name: "suite: misspelt field",
        files: &[(
            "s.yaml",
            "name: s\ncomponents: [postgres]\nready_timout: 30s\ntest: {command: [\"true\"]}\n",
        )],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:3:1: error: unknown field `ready_timout`"],
    },
    Case {
        name: "suite: duration that does not parse",
        files: &[(
            "s.yaml",
            "name: s\ncomponents: [postgres]\nready_timeout: thirty\ntest: {command: [\"true\"]}\n",
        )],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:3:16: error: ", "thirty"],
    },
    Case {
        name: "suite: empty test command",
        files: &[("s.yaml", "name: s\ncomponents: [postgres]\ntest:\n  command: []\n")],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:4:3: error: test.command: empty"],
    },
    Case {
        name: "suite: image for a component it does not have",
        files: &[(
            "s.yaml",
            "name: s\ncomponents: [postgres]\nimages: {redis: redis:7}\ntest: {command: [\"true\"]}\n",
        )],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:3:10: error: images.redis: the suite has no component `redis`"],
    },
    Case {
        name: "suite: another program for a component that runs its own",
        files: &[(
            "s.yaml",
            "name: s\ncomponents: [postgres]\nbinaries: {postgres: /bin/true}\ntest: {command: [\"true\"]}\n",
        )],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:3:12: error: binaries.postgres: `postgres` runs its own program"],
    },
    Case {
        name: "suite: migrations neither `all` nor a list",
        files: &[(
            "s.yaml",
            "name: s\ncomponents: [postgres, migrations]\nmigrations: some\ntest: {command: [\"true\"]}\n",
        )],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:3:1: error: migrations: `some` is neither `all` nor a list of tables"],
    },
    Case {
        name: "suite: migrations written as a map",
        files: &[(
            "s.yaml",
            "name: s\ncomponents: [postgres, migrations]\nmigrations: {tables: [audit_events]}\ntest: {command: [\"true\"]}\n",
        )],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &[
            "{dir}/s.yaml:3:1: error: migrations: write `all` or a list of tables, e.g. `migrations: [audit_events]`",
        ],
    },
    Case {
        name: "suite: controller section without the component",
        files: &[(
            "s.yaml",
            "name: s\ncomponents: [postgres]\ncontroller: {image: c:1, manifests: [m.yaml], deployment: d, container: c}\ntest: {command: [\"true\"]}\n",
        )],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:3:1: error: controller: the suite does not list the `controller` component"],
    },
    Case {
        name: "suite: not YAML",
        files: &[("s.yaml", "name: s\ncomponents: [postgres\ntest: {command: [\"true\"]}\n")],
        args: &["infra", "up", "{dir}/s.yaml"],
        code: 2,
        says: &["{dir}/s.yaml:"],
    },
    Case {
        name: "suite: no such suite",
        files: &[],
        args: &["e2e", "nosuchsuite"],
        code: 2,
        says: &["no suite `nosuchsuite`", "suites: gateway, workflowexecution"],
    },
    // Command-line flags.
    Case {
        name: "flag: migrate without --all or --tables",
        files: &[],
        args: &["migrate"],
        code: 2,
        says: &["say what to apply: --all, or --tables a,b"],
    },
    Case {
        name: "flag: --all with --tables",
        files: &[],
        args: &["migrate", "--all", "--tables", "a"],
        code: 2,
        says: &["--all", "cannot be used with", "--tables"],
    },
    Case {
        name: "flag: --lock-timeout not a number",
        files: &[],
        args: &["migrate", "--all", "--lock-timeout", "soon"],
        code: 2,
        says: &["invalid value 'soon' for '--lock-timeout <SECONDS>'"],
    },
    Case {
        name: "flag: --image without COMPONENT=",
        files: &[],
        args: &["infra", "up", "workflowexecution", "--image", "postgres"],
        code: 2,
        says: &["`postgres` is not COMPONENT=IMAGE"],
    },
    Case {
        name: "flag: --image for a component the suite lacks",
        files: &[],
        args: &["infra", "up", "workflowexecution", "--image", "mysql=mysql:8"],
        code: 2,
        says: &["--image mysql=...: suite workflowexecution has no component `mysql`"],
    },
    Case {
        name: "flag: --binary for a component that runs its own program",
        files: &[],
        args: &["infra", "up", "workflowexecution", "--binary", "postgres=/bin/true"],
        code: 2,
        says: &["--binary postgres=...: `postgres` runs its own program; only datastorage takes another"],
    },
    Case {
        name: "missing binary: --binary names no file",
        files: &[],
        args: &["infra", "up", "workflowexecution", "--binary", "datastorage={dir}/no-such-program"],
        code: 2,
        says: &["--binary datastorage={dir}/no-such-program: ", "No such file or directory"],
    },
    Case {
        name: "missing binary: --binary names a file that cannot run",
        files: &[("not-executable", "just text\n")],
        args: &["infra", "up", "workflowexecution", "--binary", "datastorage={dir}/not-executable"],
        code: 2,
        says: &["--binary datastorage={dir}/not-executable: "],
    },
    Case {
        name: "flag: unknown backend",
        files: &[],
        args: &["infra", "up", "workflowexecution", "--backend", "docker"],
        code: 2,
        says: &["invalid value 'docker' for '--backend <BACKEND>'", "local, podman, kind, cluster"],
    },
    Case {
        name: "flag: infra down with no run",
        files: &[],
        args: &["infra", "down"],
        code: 2,
        says: &["no runs under "],
    },
    Case {
        name: "flag: infra status of an unknown run",
        files: &[],
        args: &["infra", "status", "nosuchrun"],
        code: 2,
        says: &["no run `nosuchrun` under "],
    },
    Case {
        name: "flag: --render without --dry-run",
        files: &[],
        args: &["infra", "up", "workflowexecution", "--render", "{dir}/out"],
        code: 2,
        says: &["--dry-run"],
    },
    // URLs, hosts and passwords.
    Case {
        name: "url: not a database URL",
        files: &[("m/001_a.sql", "-- +goose Up\nSELECT 1;\n")],
        args: &[
            "migrate",
            "--all",
            "--dir",
            "{dir}/m",
            "--database-url",
            "postgres://u:hunter2@h:notaport/db",
        ],
        code: 1,
        says: &["cannot connect to postgres://u:***@h:notaport/db"],
    },
    Case {
        name: "url: unreachable host",
        files: &[("m/001_a.sql", "-- +goose Up\nSELECT 1;\n")],
        args: &[
            "migrate",
            "--all",
            "--dir",
            "{dir}/m",
            "--database-url",
            "postgres://u:hunter2@127.0.0.1:1/db",
        ],
        code: 1,
        // Each cause once (the driver repeats its own: "error connecting to server: error ...").
        says: &[
            "cannot connect to postgres://u:***@127.0.0.1:1/db: error connecting to server: Connection refused",
        ],
    },
    Case {
        name: "url: another database's scheme",
        files: &[("m/001_a.sql", "-- +goose Up\nSELECT 1;\n")],
        args: &["migrate", "--all", "--dir", "{dir}/m", "--database-url", "mysql://u:hunter2@127.0.0.1:1/db"],
        code: 2,
        says: &[
            "--database-url mysql://u:***@127.0.0.1:1/db: the scheme is `mysql`; expected postgres:// or postgresql://",
        ],
    },
    Case {
        name: "url: wrong password",
        files: &[("m/001_a.sql", "-- +goose Up\nSELECT 1;\n")],
        args: &["migrate", "--all", "--dir", "{dir}/m", "--database-url", "{wrong-url}"],
        code: 1,
        says: &["cannot connect to postgres://postgres:***@127.0.0.1:", "password authentication failed"],
    },
    Case {
        name: "url: no database given",
        files: &[("m/001_a.sql", "-- +goose Up\nSELECT 1;\n")],
        args: &["migrate", "--all", "--dir", "{dir}/m"],
        code: 2,
        says: &["no database: pass --database-url"],
    },
];

fn xtask(state: &Path, args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("XTASK_STATE_DIR", state)
        .env_remove("DATABASE_URL")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("XTASK_TEST_UNSET_VAR")
        .output()
        .expect("run xtask")
}

/// Every case, each in a folder of its own, against one throwaway PostgreSQL.
#[test]
fn every_bad_input_is_named_refused_and_leaves_nothing() {
    let pg = PgServer::start().unwrap();
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let db = format!("case{i}");
        pg.create_database(&db).unwrap();
        let url = pg.url(&db);
        let wrong = url.replacen(pg.password(), "not-the-password", 1);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let fill = |s: &str| s.replace("{dir}", &d).replace("{wrong-url}", &wrong).replace("{url}", &url);
        for (name, text) in case.files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        let state = dir.path().join("state");
        let args: Vec<String> = case.args.iter().map(|a| fill(a)).collect();
        let out = xtask(&state, &args);
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let mut wrong_about = Vec::new();
        if out.status.code() != Some(case.code) {
            wrong_about.push(format!("exit {:?}, not {}", out.status.code(), case.code));
        }
        for s in case.says {
            if !text.contains(&fill(s)) {
                wrong_about.push(format!("does not say {:?}", fill(s)));
            }
        }
        for secret in [pg.password(), "hunter2", "not-the-password"] {
            if text.contains(secret) {
                wrong_about.push(format!("shows a password ({secret})"));
            }
        }
        // Nothing partial: no run was created, no migration recorded.
        if state.join("runs").exists() && std::fs::read_dir(state.join("runs")).unwrap().next().is_some() {
            wrong_about.push("left a run directory".into());
        }
        let recorded = pg
            .psql(&db, "SELECT count(*) FROM pg_tables WHERE tablename IN ('goose_db_version', 'a')")
            .unwrap();
        if case.code != 0 && case.args.contains(&"--all") && recorded.trim() == "2" {
            wrong_about.push("applied something".into());
        }
        if !wrong_about.is_empty() {
            failures.push(format!("{}: {}\n{text}", case.name, wrong_about.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} case(s) wrong:\n\n{}", failures.len(), failures.join("\n\n"));
}

/// TESTING.md's table names every case here, with its exit status.
#[test]
fn testing_md_lists_every_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let doc = std::fs::read_to_string(root.join("TESTING.md")).unwrap();
    for case in CASES {
        let row = format!("| {} | {} |", case.name, case.code);
        assert!(doc.contains(&row), "TESTING.md lacks the row starting {row:?}");
    }
}

/// A full disk (a 1 MiB tmpfs as the state directory): `infra up` fails naming the cause,
/// exit 1, with nothing left running.
#[test]
fn a_full_disk_is_named_and_nothing_is_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let s = state.to_str().unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", s]).output();
    if !mounted.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount<'a>(&'a str);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).output();
        }
    }
    let _unmount = Unmount(s);
    let suite = dir.path().join("disk.yaml");
    std::fs::write(&suite, "name: disk\ncomponents: [postgres]\ntest: {command: [\"true\"]}\n").unwrap();
    // The cluster's data in the run directory, on the full disk, not on a tmpfs of its own.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["infra", "up", &suite.display().to_string()])
        .env("XTASK_STATE_DIR", &state)
        .env(pgserver::DATA_DIR_ENV, pgserver::DATA_IN_SERVER_DIR)
        .output()
        .expect("run xtask");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "the cause is named: {err}");
    // Processes whose command line names the state directory: what the run started.
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmd| cmd.contains(s))
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
}

/// A read-only state directory (a read-only bind mount: root writes through file modes): `infra
/// up` fails at once, saying so once, with the path it could not write.
#[test]
fn a_read_only_state_directory_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let s = state.to_str().unwrap();
    let bound = Command::new("mount").args(["--bind", s, s]).output();
    if !bound.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot bind-mount here (needs root)");
        return;
    }
    struct Unmount<'a>(&'a str);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).output();
        }
    }
    let _unmount = Unmount(s);
    let ro = Command::new("mount").args(["-o", "remount,ro,bind", s]).output().unwrap();
    assert!(ro.status.success(), "{}", String::from_utf8_lossy(&ro.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["infra", "up", "gateway"])
        .env("XTASK_STATE_DIR", &state)
        .output()
        .expect("run xtask");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("under {s}/runs")) && err.contains("Read-only file system"), "{err}");
    assert_eq!(err.matches("Read-only file system").count(), 1, "said once: {err}");
}
