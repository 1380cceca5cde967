//! Benchmark: `xtask migrate --all` (fresh apply and no-op re-run) against psql baselines.
//!
//! Usage: `cargo build --release -p xtask && cargo run --release -p migrations --example apply_bench -- target/release/xtask [ROUNDS]`
//!
//! Every variant runs as a separate process against the same throwaway server, on a fresh
//! database per round, and the median wall time is reported:
//! - xtask: `xtask migrate --all`, process start to exit;
//! - psql per file: one `psql -v ON_ERROR_STOP=1 -f` per migration's Up section;
//! - psql single session: all Up sections in one `psql -1 -v ON_ERROR_STOP=1` run.
//!
//! psql cannot run `CREATE INDEX CONCURRENTLY` inside `-1`, so for the psql baselines those
//! statements are written as plain `CREATE INDEX` (same result on the empty tables).
#![allow(clippy::disallowed_methods, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use migrations::MigrationSet;
use pgserver::{Binaries, PgServer};

fn main() {
    let mut args = std::env::args().skip(1);
    let xtask = PathBuf::from(args.next().expect("usage: apply_bench <path to xtask binary> [rounds]"));
    let rounds: usize = args.next().map(|r| r.parse().expect("rounds is a number")).unwrap_or(15);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").canonicalize().unwrap();
    let set = MigrationSet::load(&dir).expect("load migrations");
    let pg = PgServer::start().expect("start PostgreSQL");
    let psql = Binaries::locate().unwrap().tool("psql");

    let work = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut all = String::new();
    for m in &set.migrations {
        let mut text = String::new();
        for s in &m.parsed.up.statements {
            text.push_str(&s.sql.replace("INDEX CONCURRENTLY", "INDEX"));
            text.push_str(";\n");
        }
        let path = work.path().join(&m.name);
        std::fs::write(&path, &text).unwrap();
        files.push(path);
        all.push_str(&text);
    }
    let all_path = work.path().join("all.sql");
    std::fs::write(&all_path, all).unwrap();

    let mut n = 0;
    let mut fresh_db = || {
        n += 1;
        let name = format!("bench{n}");
        pg.create_database(&name).unwrap();
        name
    };
    let psql_run = |db: &str, extra: &[&str], file: &Path| {
        let ok = Command::new(&psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &pg.port().to_string()])
            .args(["-U", "postgres", "-d", db])
            .args(extra)
            .arg("-f")
            .arg(file)
            .env("PGPASSWORD", pg.password())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "psql failed on {}", file.display());
    };
    let xtask_run = |db: &str| {
        let out = Command::new(&xtask)
            .args(["migrate", "--all", "--dir"])
            .arg(&dir)
            .env("DATABASE_URL", pg.url(db))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };

    let (mut ours, mut noop, mut per_file, mut single, mut psql_floor) =
        (vec![], vec![], vec![], vec![], vec![]);
    let select1 = work.path().join("select1.sql");
    std::fs::write(&select1, "SELECT 1;\n").unwrap();
    for _ in 0..rounds {
        let db = fresh_db();
        ours.push(time(|| xtask_run(&db)));
        noop.push(time(|| xtask_run(&db)));
        let db = fresh_db();
        per_file.push(time(|| files.iter().for_each(|f| psql_run(&db, &[], f))));
        let db = fresh_db();
        single.push(time(|| psql_run(&db, &["-1"], &all_path)));
        psql_floor.push(time(|| psql_run(&db, &[], &select1)));
    }
    let (ours, noop, per_file, single, floor) =
        (median(ours), median(noop), median(per_file), median(single), median(psql_floor));
    println!(
        "migrations: {} files, {} Up statements; {rounds} rounds; medians",
        set.migrations.len(),
        set.migrations.iter().map(|m| m.parsed.up.statements.len()).sum::<usize>()
    );
    println!("fresh apply, xtask migrate --all        {:>8.1} ms", ms(ours));
    println!(
        "fresh apply, psql once per file         {:>8.1} ms   xtask/this = {:.2}",
        ms(per_file),
        ms(ours) / ms(per_file)
    );
    println!(
        "fresh apply, psql -1 single session     {:>8.1} ms   xtask/this = {:.2}",
        ms(single),
        ms(ours) / ms(single)
    );
    println!("no-op re-run, xtask migrate --all       {:>8.1} ms", ms(noop));
    println!(
        "psql connect + SELECT 1 (floor)         {:>8.1} ms   no-op/this = {:.2}",
        ms(floor),
        ms(noop) / ms(floor)
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
