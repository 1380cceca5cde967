//! Benchmark: local `xtask infra up <suite>` and `xtask e2e <suite>` cold and warm, i.e. with
//! and without the snapshot cache's templates.
//!
//! Usage: `cargo build -p xtask && cargo run -p infra --example cache_bench -- target/debug/xtask
//! [ROUNDS] [SUITE]` (defaults: 7 rounds, workflowexecution).
//!
//! Four kinds of round, each in its own state directory, medians of ROUNDS each:
//! - `no-cache`: `--no-cache`, the path without templates (initdb, migrations, no snapshot step);
//! - `empty`: an empty cache: initdb, migrations, and both templates kept (a machine's first run);
//! - `day`: only the fresh-cluster template, as on a day's first run or after a migration
//!   changed: a copy instead of initdb, the migrations, the migrated template kept;
//! - `warm`: both templates: a copy of the migrated one, nothing to migrate;
//! - `e2e empty` and `e2e warm`: `e2e <suite>` with an empty cache and with both templates.
//!
//! Process wall time includes xtask's start; the plan's wall time and step durations are what
//! the runner recorded. The snapshot step runs in the background: on `infra up` it is done by a
//! detached keeper that `infra down` waits for (so it shows in `down`), on `e2e` beside the tests.
#![allow(clippy::disallowed_methods, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Round {
    process: Duration,
    /// `infra down` after `infra up` (it waits for the background keeper); the tests on `e2e`.
    after: Duration,
    wall: u64,
    critical: u64,
    steps: Vec<(String, u64)>,
}

fn xtask(xtask: &Path, state: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(xtask).args(args).env("XTASK_STATE_DIR", state).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn up(bin: &Path, state: &Path, suite: &str, extra: &[&str]) -> Round {
    let mut args = vec!["infra", "up", suite, "--keep", "--json"];
    args.extend(extra);
    let t = Instant::now();
    let out = xtask(bin, state, &args);
    let process = t.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = Instant::now();
    xtask(bin, state, &["infra", "down", "--all"]);
    round(&v["report"], process, t.elapsed())
}

fn e2e(bin: &Path, state: &Path, suite: &str) -> Round {
    let t = Instant::now();
    let out = xtask(bin, state, &["e2e", suite, "--json"]);
    let process = t.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    round(&v["setup"], process, Duration::from_millis(v["tests_ms"].as_u64().unwrap()))
}

fn round(r: &serde_json::Value, process: Duration, after: Duration) -> Round {
    let steps = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            let d = s["end_ms"].as_u64()? - s["start_ms"].as_u64()?;
            Some((s["step"].as_str().unwrap().to_string(), d))
        })
        .collect();
    Round {
        process,
        after,
        wall: r["wall_ms"].as_u64().unwrap(),
        critical: r["critical_ms"].as_u64().unwrap(),
        steps,
    }
}

/// Removes the templates `which` picks: `migrated` ones or `all`.
fn prune(bin: &Path, state: &Path, which: &str) {
    let out = xtask(bin, state, &["infra", "cache", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<String> = v["templates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| which == "all" || t["key"]["selection"] != "initdb")
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    if !ids.is_empty() {
        let mut args = vec!["infra", "cache", "prune"];
        args.extend(ids.iter().map(String::as_str));
        xtask(bin, state, &args);
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: cache_bench <xtask binary> [rounds] [suite]";
    let bin = std::path::PathBuf::from(args.next().expect(usage));
    let rounds: usize = args.next().map(|r| r.parse().expect(usage)).unwrap_or(7);
    let suite = args.next().unwrap_or_else(|| "workflowexecution".into());
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    up(&bin, s, &suite, &["--no-cache"]); // the DataStorage binary is built once
    let mut kinds: Vec<(&str, Vec<Round>)> = Vec::new();
    let no_cache = (0..rounds).map(|_| up(&bin, s, &suite, &["--no-cache"])).collect();
    kinds.push(("no-cache", no_cache));
    let empty = (0..rounds)
        .map(|_| {
            prune(&bin, s, "all");
            up(&bin, s, &suite, &[])
        })
        .collect();
    kinds.push(("empty", empty));
    let day = (0..rounds)
        .map(|_| {
            prune(&bin, s, "migrated");
            up(&bin, s, &suite, &[])
        })
        .collect();
    kinds.push(("day", day));
    let warm = (0..rounds).map(|_| up(&bin, s, &suite, &[])).collect();
    kinds.push(("warm", warm));
    let e2e_empty = (0..rounds)
        .map(|_| {
            prune(&bin, s, "all");
            e2e(&bin, s, &suite)
        })
        .collect();
    kinds.push(("e2e empty", e2e_empty));
    let e2e_warm = (0..rounds).map(|_| e2e(&bin, s, &suite)).collect();
    kinds.push(("e2e warm", e2e_warm));

    println!("infra up {suite} (local), {rounds} rounds per kind, medians in ms");
    let names = ["postgres", "migrations", "snapshot", "datastorage"];
    println!(
        "{:<9} {:>8} {:>6} {:>9} {:>6} {:>11}  {}",
        "kind",
        "process",
        "wall",
        "critical",
        "ratio",
        "down|tests",
        names.map(|n| format!("{n:>12}")).join("")
    );
    for (kind, rs) in &kinds {
        let process = median(rs.iter().map(|r| r.process.as_millis() as u64).collect());
        let wall = median(rs.iter().map(|r| r.wall).collect());
        let critical = median(rs.iter().map(|r| r.critical).collect());
        let ratio = wall as f64 / critical as f64;
        let step = |n: &str| {
            let v: Vec<u64> =
                rs.iter().filter_map(|r| r.steps.iter().find(|(s, _)| s == n).map(|(_, d)| *d)).collect();
            if v.is_empty() { format!("{:>12}", "-") } else { format!("{:>12}", median(v)) }
        };
        let after = median(rs.iter().map(|r| r.after.as_millis() as u64).collect());
        println!(
            "{kind:<9} {process:>8} {wall:>6} {critical:>9} {ratio:>6.2} {after:>11}  {}",
            names.map(step).join("")
        );
    }
}
