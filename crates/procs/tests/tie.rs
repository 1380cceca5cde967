//! A child tied to our life dies when we are SIGKILLed, even though the thread that asked for it
//! ended long before; a detached child survives.
//!
//! The test re-runs its own binary as the parent to be killed (`tie_helper`, inert unless
//! `PROCS_TIE_HELPER` is set).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use procs::{Tie, command, pid_alive, spawn};

#[test]
fn tie_helper() {
    if std::env::var_os("PROCS_TIE_HELPER").is_none() {
        return;
    }
    // Spawned from a thread that then ends, as tokio's blocking pool threads do. The children
    // are never waited for: the point is what happens to them when this process is killed.
    #[allow(clippy::zombie_processes)]
    let (tied, detached) = std::thread::spawn(|| {
        let mut sleep = command("sleep");
        sleep.arg("1000").stdout(Stdio::null()).stderr(Stdio::null());
        let tied = spawn(sleep, Tie::DieWithUs(Signal::SIGTERM)).unwrap();
        let mut sleep = command("sleep");
        sleep.arg("1000").stdout(Stdio::null()).stderr(Stdio::null());
        let detached = spawn(sleep, Tie::Detached).unwrap();
        (tied.id(), detached.id())
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // libtest has already written "test tie_helper ... " on this line.
    println!("PIDS {tied} {detached}");
    std::thread::sleep(Duration::from_secs(60));
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_tied_child_dies_with_its_sigkilled_parent_and_a_detached_one_lives() {
    let mut helper = command(std::env::current_exe().unwrap());
    helper
        .args(["tie_helper", "--exact", "--nocapture", "--test-threads=1"])
        .env("PROCS_TIE_HELPER", "1")
        .stdout(Stdio::piped());
    let mut helper = spawn(helper, Tie::DieWithUs(Signal::SIGKILL)).unwrap();
    let lines = BufReader::new(helper.stdout.take().unwrap()).lines();
    let pids = lines
        .map_while(Result::ok)
        .find_map(|l| l.split_once("PIDS ").map(|(_, pids)| pids.to_string()))
        .expect("the helper reports its children");
    let (tied, detached) = pids.split_once(' ').unwrap();
    let (tied, detached): (u32, u32) = (tied.parse().unwrap(), detached.parse().unwrap());
    assert!(pid_alive(tied), "the tied child outlived the thread that spawned it");
    assert!(pid_alive(detached));

    kill(Pid::from_raw(helper.id() as i32), Signal::SIGKILL).unwrap();
    helper.wait().unwrap();
    wait_until("the tied child is gone", || !pid_alive(tied));
    assert!(pid_alive(detached), "a detached child outlives its parent");
    kill(Pid::from_raw(detached as i32), Signal::SIGKILL).unwrap();
    wait_until("the detached child is gone", || !pid_alive(detached));
}

#[test]
fn a_missing_program_is_named() {
    for tie in [Tie::Detached, Tie::DieWithUs(Signal::SIGTERM)] {
        let err = spawn(command("/nonexistent/xtask-no-such-program"), tie).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/xtask-no-such-program"), "{err}");
        assert!(err.to_string().contains("No such file"), "{err}");
    }
}
