//! Concurrent runs: each migration applied exactly once, and no deadlock against
//! `CREATE INDEX CONCURRENTLY` while another run waits for the lock.

mod common;

use std::time::Duration;

use common::{Db, Project, versions};
use migrations::{Event, Options, Selection};

/// Each Up appends a row to `runs`, so a migration applied twice would show up as a duplicate.
fn counting(n: usize) -> Vec<(String, String)> {
    let mut files = vec![(
        "001_runs.sql".to_string(),
        "-- +goose Up\nCREATE TABLE runs (version int NOT NULL);\nINSERT INTO runs VALUES (1);\n".to_string(),
    )];
    for v in 2..=n {
        files.push((
            format!("{v:03}_step.sql"),
            format!("-- +goose Up\nSELECT pg_sleep(0.02);\nINSERT INTO runs VALUES ({v});\n"),
        ));
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_concurrent_runs_apply_each_migration_once() {
    let db = Db::start();
    let files = counting(12);
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let p = Project::new(&refs);
    let set = p.set();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (url, set) = (db.url.clone(), set.clone());
        tasks.push(tokio::spawn(async move {
            let client = migrations::connect(&url).await.unwrap();
            migrations::up(&client, &set, &Selection::All, &Options::default(), &mut |_| {}).await.unwrap()
        }));
    }
    let mut applied: Vec<i64> = Vec::new();
    for t in tasks {
        applied.extend(versions(&t.await.unwrap()));
    }
    applied.sort();
    assert_eq!(applied, (1..=12).collect::<Vec<_>>(), "every version applied by exactly one run");
    assert_eq!(db.query("SELECT count(*) || '/' || count(DISTINCT version) FROM runs"), "12/12");
    assert_eq!(db.query("SELECT count(*) FROM goose_db_version WHERE version_id > 0"), "12");
}

/// Polls `sql` (a boolean query) until it is true; fails naming `what` after 20 s.
async fn until(client: &migrations::Connection, sql: &str, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !client.query_one(sql, &[]).await.unwrap().get::<_, bool>(0) {
        assert!(std::time::Instant::now() < deadline, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_index_build_while_another_run_waits_for_the_lock() {
    let db = Db::start();
    let p = Project::new(&[
        (
            "001_t.sql",
            "-- +goose Up\nCREATE TABLE t (a int);\nINSERT INTO t SELECT generate_series(1, 20000);\n",
        ),
        (
            "002_idx.sql",
            // A gate the test holds: the first run stops here, holding the migration lock,
            // until the second is seen waiting for it.
            "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT pg_advisory_lock(4242);\nSELECT pg_advisory_unlock(4242);\n\
             CREATE INDEX CONCURRENTLY t_a ON t (a);\n",
        ),
    ]);
    let set = p.set();
    let gate = db.client().await;
    gate.query_one("SELECT pg_advisory_lock(4242)", &[]).await.unwrap();
    let first_client = db.client().await;
    let first_set = set.clone();
    let first = tokio::spawn(async move {
        migrations::up(&first_client, &first_set, &Selection::All, &Options::default(), &mut |_| {}).await
    });
    let watcher = db.client().await;
    until(
        &watcher,
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted)",
        "the first run waits at the gate inside 002, holding the migration lock",
    )
    .await;

    let second_client = db.client().await;
    let second_pid: i32 = second_client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    // A waiter that blocked inside a transaction would hold a snapshot the index build waits for:
    // the first run would then hang until this deadline and the second would time out.
    let options = Options { lock_timeout: Duration::from_secs(60) };
    let second_set = set.clone();
    let second = tokio::spawn(async move {
        migrations::up(&second_client, &second_set, &Selection::All, &options, &mut |_: Event| {}).await
    });
    // The second run is provably waiting: its session has tried the migration lock and holds
    // no transaction open while it waits.
    until(
        &watcher,
        &format!(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {second_pid} \
             AND query LIKE '%pg_try_advisory_lock%' AND state = 'idle')"
        ),
        "the second run polls for the migration lock, outside a transaction",
    )
    .await;
    gate.query_one("SELECT pg_advisory_unlock(4242)", &[]).await.unwrap();

    let both = async { (first.await.unwrap().unwrap(), second.await.unwrap().unwrap()) };
    let (first, second) = tokio::time::timeout(Duration::from_secs(60), both).await.expect("no deadlock");
    assert_eq!(versions(&first), vec![1, 2]);
    assert!(second.done.is_empty());
    assert_eq!(second.plan.already_applied, 2);
    assert_eq!(db.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_a'::regclass"), "t");
}

#[tokio::test]
async fn lock_timeout_names_the_holder() {
    let db = Db::start();
    let p = Project::new(&[("001_a.sql", "-- +goose Up\nSELECT 1;\n")]);
    let holder = db.client().await;
    holder.batch_execute("SET application_name = 'someone-else'").await.unwrap();
    holder.query_one("SELECT pg_advisory_lock($1)", &[&migrations::store::LOCK_KEY]).await.unwrap();
    let client = db.client().await;
    let options = Options { lock_timeout: Duration::from_millis(300) };
    let err = migrations::up(&client, &p.set(), &Selection::All, &options, &mut |_| {}).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("timed out") && text.contains("someone-else"), "{text}");
    assert_eq!(
        db.query("SELECT to_regclass('goose_db_version') IS NULL"),
        "t",
        "nothing was done without the lock"
    );
}
