//! Benchmark: `xtask infra up <suite>` wall time against its critical path and against the same
//! steps run one after another.
//!
//! Usage: `cargo build -p xtask && cargo run -p infra --example up_bench -- target/debug/xtask
//! [ROUNDS] [SUITE] [BACKEND]` (defaults: 7 rounds, workflowexecution, local). The podman backend
//! takes its images and engine options from the environment (`.ci/with-env` on this machine).
//!
//! Each round brings the suite up with `--keep --json` in a fresh state directory, reads the
//! recorded step durations, and tears it down; then the same with the hidden `--sequential`
//! flag (one step at a time). Medians are reported. Process wall time includes xtask's start.
#![allow(clippy::disallowed_methods, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn up(xtask: &Path, suite: &str, backend: &str, sequential: bool) -> (Duration, u64, u64, u64) {
    let state = tempfile::tempdir().unwrap();
    let mut args = vec!["infra", "up", suite, "--backend", backend, "--keep", "--json"];
    if sequential {
        args.push("--sequential");
    }
    let t = Instant::now();
    let out = Command::new(xtask).args(&args).env("XTASK_STATE_DIR", state.path()).output().unwrap();
    let wall = t.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["report"];
    let down = Command::new(xtask)
        .args(["infra", "down", "--all"])
        .env("XTASK_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert!(down.status.success());
    (
        wall,
        r["wall_ms"].as_u64().unwrap(),
        r["critical_ms"].as_u64().unwrap(),
        r["sequential_ms"].as_u64().unwrap(),
    )
}

fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: up_bench <xtask binary> [rounds] [suite] [backend]";
    let xtask = std::path::PathBuf::from(args.next().expect(usage));
    let rounds: usize = args.next().map(|r| r.parse().expect(usage)).unwrap_or(7);
    let suite = args.next().unwrap_or_else(|| "workflowexecution".into());
    let backend = args.next().unwrap_or_else(|| "local".into());
    up(&xtask, &suite, &backend, false); // warm: the DataStorage binary or image is built once
    let par: Vec<_> = (0..rounds).map(|_| up(&xtask, &suite, &backend, false)).collect();
    let seq: Vec<_> = (0..rounds).map(|_| up(&xtask, &suite, &backend, true)).collect();
    let process = median(par.iter().map(|r| r.0).collect());
    let wall = median(par.iter().map(|r| r.1).collect());
    let critical = median(par.iter().map(|r| r.2).collect());
    let sum = median(par.iter().map(|r| r.3).collect());
    let seq_wall = median(seq.iter().map(|r| r.1).collect());
    // The critical path measured on uncontended steps (one at a time), so the parallel run's
    // wall time is compared with something it did not itself produce.
    let seq_critical = median(seq.iter().map(|r| r.2).collect());
    let seq_process = median(seq.iter().map(|r| r.0).collect());
    println!("infra up {suite} --backend {backend}, {rounds} rounds, medians");
    println!("process wall time (parallel)            {:>7.0} ms", process.as_secs_f64() * 1000.0);
    println!("plan wall time (parallel)               {wall:>7} ms");
    println!(
        "critical path, same run's durations     {critical:>7} ms   wall/critical = {:.2}",
        wall as f64 / critical as f64
    );
    println!(
        "critical path, sequential run's steps   {seq_critical:>7} ms   wall/critical = {:.2}",
        wall as f64 / seq_critical as f64
    );
    println!("sum of all step durations (parallel)    {sum:>7} ms");
    println!(
        "plan wall time, steps one after another {seq_wall:>7} ms   parallel/sequential = {:.2}",
        wall as f64 / seq_wall as f64
    );
    println!("process wall time (sequential)          {:>7.0} ms", seq_process.as_secs_f64() * 1000.0);
}
