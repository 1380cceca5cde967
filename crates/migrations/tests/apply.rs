//! The engine against a real PostgreSQL: exactly once, tracked like goose, loud on failure.

mod common;

use common::{Db, Project, down, repair, up, versions};
use migrations::{Error, Selection};

const CREATE_A: &str = "-- +goose Up\nCREATE TABLE a (id int PRIMARY KEY);\n-- +goose Down\nDROP TABLE a;\n";
const CREATE_B: &str = "-- +goose Up\nCREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id));\n-- +goose Down\nDROP TABLE b;\n";

#[tokio::test]
async fn fresh_apply_then_noop_rerun() {
    let db = Db::start();
    let p = Project::new(&[("001_a.sql", CREATE_A), ("002_b.sql", CREATE_B)]);
    let first = up(&db, &p, Selection::All).await.unwrap();
    assert_eq!(versions(&first), vec![1, 2]);
    assert_eq!(db.query("SELECT count(*) FROM b"), "0");

    let second = up(&db, &p, Selection::All).await.unwrap();
    assert!(second.done.is_empty(), "nothing is applied twice");
    assert_eq!(second.plan.already_applied, 2);
    assert_eq!(
        db.query("SELECT string_agg(version_id::text, ',' ORDER BY id) FROM goose_db_version"),
        "0,1,2"
    );
}

#[tokio::test]
async fn version_table_is_exactly_gooses() {
    let db = Db::start();
    let p = Project::new(&[("001_a.sql", CREATE_A)]);
    up(&db, &p, Selection::All).await.unwrap();
    let columns = db.query(
        "SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') || ' ' || is_identity, '; ' ORDER BY ordinal_position) \
         FROM information_schema.columns WHERE table_name = 'goose_db_version'",
    );
    assert_eq!(
        columns,
        "id integer NO  YES; version_id bigint NO  NO; is_applied boolean NO  NO; tstamp timestamp without time zone NO now() NO"
    );
    assert_eq!(
        db.query("SELECT version_id || ':' || is_applied FROM goose_db_version ORDER BY id LIMIT 1"),
        "0:true"
    );
}

#[tokio::test]
async fn failing_statement_rolls_back_its_file_and_stops() {
    let db = Db::start();
    let bad = "-- +goose Up\n\
               CREATE TABLE c (id int PRIMARY KEY);\n\
               INSERT INTO c VALUES (1);\n\
               \n\
               INSERT INTO c\n  VALUES (1);\n\
               CREATE TABLE never (id int);\n\
               -- +goose Down\nDROP TABLE c;\n";
    let p = Project::new(&[("001_a.sql", CREATE_A), ("002_c.sql", bad), ("003_b.sql", CREATE_B)]);
    let err = up(&db, &p, Selection::All).await.unwrap_err();
    let Error::Statement(f) = &err else { panic!("{err}") };
    assert_eq!(f.file, p.file("002_c.sql"));
    assert_eq!(f.version, 2);
    assert_eq!(f.line, 5, "the failing statement starts on line 5");
    assert_eq!(f.statement, "INSERT INTO c\n  VALUES (1)");
    assert_eq!(f.code, "23505");
    assert!(f.message.contains("duplicate key value violates unique constraint"), "{}", f.message);
    assert_eq!(f.detail.as_deref(), Some("Key (id)=(1) already exists."));
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:5: migration 2 (up) failed", p.file("002_c.sql").display())),
        "{text}"
    );
    assert!(text.contains("nothing of this migration was applied"), "{text}");

    assert_eq!(db.query("SELECT to_regclass('c') IS NULL AND to_regclass('never') IS NULL"), "t");
    assert_eq!(db.query("SELECT to_regclass('b') IS NULL"), "t", "nothing after the failure is attempted");
    assert_eq!(db.query("SELECT string_agg(version_id::text, ',' ORDER BY id) FROM goose_db_version"), "0,1");
}

#[tokio::test]
async fn error_position_and_hint_are_reported() {
    let db = Db::start();
    let bad = "-- +goose Up\nCREATE TABLE d (\n  id int,\n  n nosuchtype\n);\n";
    let p = Project::new(&[("001_d.sql", bad)]);
    let Error::Statement(f) = up(&db, &p, Selection::All).await.unwrap_err() else { panic!() };
    assert_eq!((f.line, f.error_line), (2, Some(4)), "statement starts at 2, the bad type is on 4");
    assert_eq!(f.code, "42704");

    let hinted = "-- +goose Up\nSELECT lenght('x');\n";
    let p = Project::new(&[("001_h.sql", hinted)]);
    let Error::Statement(f) = up(&db, &p, Selection::All).await.unwrap_err() else { panic!() };
    assert!(f.hint.as_deref().unwrap_or("").contains("No function matches"), "{f:?}");
}

#[tokio::test]
async fn edited_applied_file_is_an_error_naming_it() {
    let db = Db::start();
    let p = Project::new(&[("001_a.sql", CREATE_A)]);
    up(&db, &p, Selection::All).await.unwrap();
    p.write("001_a.sql", &CREATE_A.replace("id int", "id bigint"));
    p.write("002_b.sql", CREATE_B);
    let err = up(&db, &p, Selection::All).await.unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { version: 1, .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("001_a.sql") && text.contains("must not be edited"), "{text}");
    assert_eq!(db.query("SELECT to_regclass('b') IS NULL"), "t", "nothing is applied after a checksum error");
}

/// An edited applied file has a way forward that is explicit and recorded: `repair` accepts it
/// as it is now with a reason, runs none of it, and the next run goes on; a second repair, a
/// pending version and an unknown one are refused, saying why.
#[tokio::test]
async fn an_edited_applied_file_is_repaired_with_a_recorded_reason() {
    let db = Db::start();
    let p = Project::new(&[("001_a.sql", CREATE_A)]);
    up(&db, &p, Selection::All).await.unwrap();
    p.write("001_a.sql", &format!("-- a comment, added after it was applied\n{CREATE_A}"));
    p.write("002_b.sql", CREATE_B);
    let err = up(&db, &p, Selection::All).await.unwrap_err();
    assert!(err.to_string().contains("migrate repair 1 --reason"), "the way forward is named: {err}");

    let done = repair(&db, &p, 1, "comment only").await.unwrap();
    assert_eq!((done.version, done.file.as_str()), (1, "001_a.sql"));
    assert_ne!(done.recorded, done.actual);
    assert_eq!(
        db.query("SELECT file_name || ' ' || reason || ' ' || (new_checksum <> recorded_checksum) FROM goose_db_version_repair"),
        "001_a.sql comment only true"
    );
    assert_eq!(db.query("SELECT to_regclass('b') IS NULL"), "t", "a repair runs nothing");
    assert_eq!(versions(&up(&db, &p, Selection::All).await.unwrap()), [2], "the next run goes on");

    let again = repair(&db, &p, 1, "again").await.unwrap_err();
    assert!(matches!(again, Error::NothingToRepair { version: 1, .. }), "{again}");
    p.write("003_c.sql", "-- +goose Up\nCREATE TABLE c (id int);\n");
    let pending = repair(&db, &p, 3, "why").await.unwrap_err();
    assert!(matches!(pending, Error::NotApplied { version: 3 }), "{pending}");
    let unknown = repair(&db, &p, 9, "why").await.unwrap_err();
    assert!(matches!(unknown, Error::UnknownVersion { version: 9 }) && unknown.is_bad_input(), "{unknown}");
    assert_eq!(db.query("SELECT count(*) FROM goose_db_version_repair"), "1", "refusals record nothing");
}

#[tokio::test]
async fn dollar_body_without_statement_begin() {
    let db = Db::start();
    let f = "-- +goose Up\n\
             CREATE FUNCTION add_one(i int) RETURNS int AS $$\n\
             DECLARE r int;\nBEGIN\n  r := i + 1;\n  RETURN r;\nEND;\n$$ LANGUAGE plpgsql;\n\
             SELECT add_one(41);\n\
             -- +goose Down\nDROP FUNCTION add_one(int);\n";
    let p = Project::new(&[("001_f.sql", f)]);
    up(&db, &p, Selection::All).await.unwrap();
    assert_eq!(db.query("SELECT add_one(1)"), "2");
}

#[tokio::test]
async fn down_and_reup() {
    let db = Db::start();
    let p = Project::new(&[("001_a.sql", CREATE_A), ("002_b.sql", CREATE_B)]);
    up(&db, &p, Selection::All).await.unwrap();

    let one = down(&db, &p, None).await.unwrap();
    assert_eq!(versions(&one), vec![2], "a plain down rolls back the newest version");
    assert_eq!(db.query("SELECT to_regclass('b') IS NULL AND to_regclass('a') IS NOT NULL"), "t");

    up(&db, &p, Selection::All).await.unwrap();
    let all = down(&db, &p, Some(0)).await.unwrap();
    assert_eq!(versions(&all), vec![2, 1]);
    assert_eq!(db.query("SELECT string_agg(version_id::text, ',') FROM goose_db_version"), "0");

    let again = up(&db, &p, Selection::All).await.unwrap();
    assert_eq!(versions(&again), vec![1, 2]);
}

#[tokio::test]
async fn down_without_down_section_is_refused_before_anything_runs() {
    let db = Db::start();
    let p =
        Project::new(&[("001_a.sql", CREATE_A), ("002_x.sql", "-- +goose Up\nCREATE TABLE x (i int);\n")]);
    up(&db, &p, Selection::All).await.unwrap();
    let err = down(&db, &p, Some(0)).await.unwrap_err();
    assert!(matches!(err, Error::NoDown { version: 2, .. }), "{err}");
    assert_eq!(db.query("SELECT to_regclass('a') IS NOT NULL"), "t");
}

#[tokio::test]
async fn no_transaction_runs_statement_by_statement_and_records_only_on_success() {
    let db = Db::start();
    let table = "-- +goose Up\nCREATE TABLE t (a int, b int);\n-- +goose Down\nDROP TABLE t;\n";
    let idx = "-- +goose NO TRANSACTION\n-- +goose Up\n\
               CREATE INDEX CONCURRENTLY t_a ON t (a);\n\
               CREATE INDEX CONCURRENTLY t_b ON t (nosuchcolumn);\n\
               -- +goose Down\nDROP INDEX CONCURRENTLY IF EXISTS t_b;\nDROP INDEX CONCURRENTLY IF EXISTS t_a;\n";
    let p = Project::new(&[("001_t.sql", table), ("002_idx.sql", idx)]);
    let err = up(&db, &p, Selection::All).await.unwrap_err();
    let Error::Statement(f) = &err else { panic!("{err}") };
    assert_eq!((f.line, f.applied_before_failure), (4, Some(1)));
    assert!(err.to_string().contains("its first 1 statement(s) were applied and remain"), "{err}");
    assert_eq!(db.query("SELECT to_regclass('t_a') IS NOT NULL"), "t");
    assert_eq!(db.query("SELECT count(*) FROM goose_db_version WHERE version_id = 2"), "0");

    p.write(
        "002_idx.sql",
        &idx.replace("CONCURRENTLY t_a", "CONCURRENTLY IF NOT EXISTS t_a").replace("nosuchcolumn", "b"),
    );
    let report = up(&db, &p, Selection::All).await.unwrap();
    assert_eq!(versions(&report), vec![2]);
    assert_eq!(db.query("SELECT count(*) FROM pg_indexes WHERE tablename = 't'"), "2");
}

#[tokio::test]
async fn no_transaction_recording_failure_is_rolled_back_and_releases_the_lock() {
    let db = Db::start();
    // Applies fine, then makes its own checksum row impossible, so only the recording fails.
    let poison = "-- +goose NO TRANSACTION\n-- +goose Up\n\
                  ALTER TABLE goose_db_version_checksum ADD CONSTRAINT no_v1 CHECK (version_id <> 1);\n";
    let p = Project::new(&[("001_poison.sql", poison)]);
    let client = db.client().await;
    let err = migrations::up(&client, &p.set(), &Selection::All, &Default::default(), &mut |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("recording version 1 (001_poison.sql)"), "{err}");
    // The session is out of the aborted transaction and no longer holds the lock.
    client.batch_execute("SELECT 1").await.expect("the session is usable again");
    assert_eq!(db.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"), "0");
    assert_eq!(db.query("SELECT count(*) FROM goose_db_version WHERE version_id = 1"), "0");
}

#[tokio::test]
async fn unset_envsubst_variable_names_file_and_line() {
    let db = Db::start();
    let f = "-- +goose Up\n-- +goose ENVSUB ON\nCREATE TABLE ${XTASK_TEST_SURELY_UNSET_TABLE} (i int);\n";
    let p = Project::new(&[("001_e.sql", f)]);
    let Error::Statement(s) = up(&db, &p, Selection::All).await.unwrap_err() else { panic!() };
    assert_eq!(s.line, 3);
    assert!(s.message.contains("XTASK_TEST_SURELY_UNSET_TABLE is not set"), "{}", s.message);
}

#[tokio::test]
async fn unreachable_server_is_reported_without_the_password() {
    let port = procs::free_port().unwrap();
    let url = format!("postgres://app:topsecret@127.0.0.1:{port}/app");
    let err = migrations::connect(&url).await.unwrap_err().to_string();
    assert!(err.contains("cannot connect to postgres://app:***@127.0.0.1"), "{err}");
    assert!(!err.contains("topsecret"), "{err}");
}

#[tokio::test]
async fn status_lists_every_version() {
    let db = Db::start();
    let p = Project::new(&[("001_a.sql", CREATE_A)]);
    up(&db, &p, Selection::All).await.unwrap();
    p.write("002_b.sql", CREATE_B);
    let client = db.client().await;
    let status = migrations::status::status(&client, &p.set()).await.unwrap();
    let states: Vec<(i64, &str, bool)> =
        status.rows.iter().map(|r| (r.version, r.state, r.applied_at.is_some())).collect();
    assert_eq!(states, vec![(1, "applied", true), (2, "pending", false)]);
    assert_eq!(status.pending(), 1);
}

/// The monorepo's folder as it is: plain SQL files (applied whole, as its `psql` helper did)
/// beside goose files, tracked and checksummed alike; and a transactional CONCURRENTLY that
/// stops the run at its file and line before any of that file runs.
#[tokio::test]
async fn plain_sql_files_apply_whole_beside_goose_files_and_concurrently_stops_precisely() {
    let db = Db::start();
    let p = Project::new(&[
        (
            "001_plain.sql",
            "-- audit events, as psql -f applied them\nCREATE TABLE events (id int);\nINSERT INTO events VALUES (1);\n",
        ),
        ("002_goose.sql", "-- +goose Up\nCREATE TABLE runs (id int);\n-- +goose Down\nDROP TABLE runs;\n"),
        ("003_plain.sql", "ALTER TABLE events ADD COLUMN kind text;\n"),
    ]);
    let report = up(&db, &p, Selection::All).await.unwrap();
    assert_eq!(versions(&report), [1, 2, 3]);
    assert_eq!(db.query("SELECT string_agg(version_id::text, ',' ORDER BY version_id) FROM goose_db_version WHERE version_id > 0"), "1,2,3");
    assert_eq!(db.query("SELECT count(*) FROM goose_db_version_checksum"), "3");
    assert_eq!(db.query("SELECT count(*) FROM events WHERE kind IS NULL"), "1");
    // Exactly once, and an edit to an applied plain file is caught like any other.
    assert!(versions(&up(&db, &p, Selection::All).await.unwrap()).is_empty());
    p.write("003_plain.sql", "ALTER TABLE events ADD COLUMN kind varchar(10);\n");
    let err = up(&db, &p, Selection::All).await.unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { version: 3, .. }), "{err}");
    p.write("003_plain.sql", "ALTER TABLE events ADD COLUMN kind text;\n");
    // A plain file has no Down: rolling it back is refused before anything runs.
    let err = down(&db, &p, Some(0)).await.unwrap_err();
    assert!(matches!(err, Error::NoDown { version: 3, .. }), "{err}");

    p.write("004_plain.sql", "CREATE TABLE later (id int);\n");
    p.write(
        "005_index.sql",
        "CREATE TABLE flags (id int);\n\nCREATE INDEX CONCURRENTLY events_kind ON events (kind);\n",
    );
    p.write("006_after.sql", "-- +goose Up\nCREATE TABLE after (id int);\n");
    let err = up(&db, &p, Selection::All).await.unwrap_err();
    let Error::NeedsNoTransaction { file, line, what, .. } = &err else { panic!("{err}") };
    assert_eq!(
        (file.file_name().unwrap().to_str().unwrap(), *line, *what),
        ("005_index.sql", 3, "CREATE INDEX CONCURRENTLY")
    );
    // A plain file: the advice names both lines it needs, not one that leads to the next error.
    assert!(err.to_string().contains("needs both '-- +goose NO TRANSACTION' and '-- +goose Up'"), "{err}");
    assert_eq!(
        db.query("SELECT to_regclass('later') IS NULL AND to_regclass('flags') IS NULL AND to_regclass('after') IS NULL"),
        "t",
        "every pending file is checked before the first runs: nothing was applied"
    );
    assert_eq!(db.query("SELECT max(version_id) FROM goose_db_version"), "3");
}

/// A connection the server ends (an administrator, a restart, an OOM kill) makes every later
/// call fail with tokio-postgres' bare "connection closed"; the error then also says why the
/// connection ended, as the driver saw it.
#[tokio::test]
async fn a_lost_connection_is_reported_with_the_reason_it_ended() {
    let db = Db::start();
    let project = Project::new(&[("001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n")]);
    let client = db.client().await;
    client.simple_query("SELECT 1").await.unwrap();
    db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cargo-xtask-migrate'");
    let set = migrations::MigrationSet::load(project.dir.path()).unwrap();
    let mut closed = None;
    for _ in 0..100 {
        // The termination reaches the client asynchronously; a deadline, not a sleep.
        match migrations::status::status(&client, &set).await {
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Err(e) => {
                closed = Some(e);
                break;
            }
        }
    }
    let first = client.explain(closed.expect("the terminated connection fails within 2 s")).await;
    // Either the call met the server's FATAL message itself, or it arrived while the client
    // was idle, ended the connection, and the call met "connection closed": explained, both say it.
    assert!(
        first.to_string().contains("terminating connection due to administrator command"),
        "the server's reason is reported: {first}"
    );
    let later = migrations::status::status(&client, &set).await.unwrap_err();
    assert!(later.to_string().contains("connection closed"), "tokio-postgres alone says: {later}");
    let e = client.explain(later).await;
    let text = e.to_string();
    assert!(
        matches!(e, Error::ConnectionLost { .. }),
        "{text}; first: {first:?}; lost: {:?}; closed: {}",
        client.lost(),
        client.is_closed()
    );
    assert!(text.contains("connection closed\nthe connection to the database had ended: "), "{text}");
}

/// A rollback whose Down does not parse is refused before any of it runs, as `lint` refuses
/// it, rather than half-way with PostgreSQL's error.
#[tokio::test]
async fn a_down_that_does_not_parse_is_refused_before_anything_rolls_back() {
    let db = Db::start();
    let broken = "-- +goose Up\nCREATE TABLE c (id int);\n-- +goose Down\nDROP TABL c;\n";
    let p = Project::new(&[("001_a.sql", CREATE_A), ("002_c.sql", broken)]);
    assert_eq!(versions(&up(&db, &p, Selection::All).await.unwrap()), [1, 2]);
    let err = down(&db, &p, Some(0)).await.unwrap_err();
    let Error::Unparsable { file, line, column, direction, message } = &err else { panic!("{err}") };
    assert_eq!(
        (file.file_name().unwrap().to_str().unwrap(), *line, *column, *direction),
        ("002_c.sql", 4, 6, "Down"),
        "at TABL, where PostgreSQL would say"
    );
    assert!(message.contains("syntax error"), "{message}");
    assert!(err.is_bad_input(), "{err}");
    assert_eq!(
        db.query("SELECT to_regclass('c') IS NOT NULL AND to_regclass('a') IS NOT NULL"),
        "t",
        "nothing rolled back"
    );
}

/// `lint` places a statement that does not parse where PostgreSQL places it at run time (the
/// token the parser stopped at, several lines into the statement), not at the statement's
/// first line; in the Up section and, with `down`, in the Down section.
#[tokio::test]
async fn lint_places_a_syntax_error_where_postgresql_does() {
    let db = Db::start();
    let broken = "-- +goose Up\nCREATE TABLE e (\n  id int,\n  n text\n  m text\n);\n";
    let p = Project::new(&[("001_e.sql", broken)]);
    let Error::Statement(at_run_time) = up(&db, &p, Selection::All).await.unwrap_err() else { panic!() };
    assert_eq!((at_run_time.error_line, at_run_time.error_column), (Some(5), Some(3)), "{at_run_time:?}");
    let findings = migrations::lint::lint(p.path()).unwrap();
    let errors: Vec<_> =
        findings.iter().filter(|f| f.severity == migrations::lint::Severity::Error).collect();
    assert_eq!(errors.len(), 1, "{findings:?}");
    assert_eq!((errors[0].line, errors[0].column), (at_run_time.error_line, at_run_time.error_column));
    assert!(errors[0].message.contains("syntax error at or near \"m\""), "{}", errors[0].message);
}
