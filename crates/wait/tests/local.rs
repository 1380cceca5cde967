//! TCP, HTTP and process probes against real sockets and processes, and the wait loop itself.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wait::{BoxFuture, Detail, HttpProbe, Probe, Spawn, Status, TcpProbe, WaitError, Waiter, wait_for};

const PATIENCE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    procs::free_port().unwrap()
}

#[tokio::test]
async fn tcp_is_ready_once_something_listens() {
    let port = free_port();
    let mut probe = TcpProbe::new(format!("127.0.0.1:{port}"));
    let Status::NotYet(reason) = probe.check().await else { panic!("nothing listens yet") };
    assert!(reason.contains("Connection refused"), "{reason}");
    let waiting = tokio::spawn(async move { wait_for(&mut probe, PATIENCE).await });
    let _listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    waiting.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_timeout_lists_what_is_missing_and_diagnoses_it() {
    let port = free_port();
    let mut probe = TcpProbe::new(format!("127.0.0.1:{port}"));
    let err = wait_for(&mut probe, Duration::from_millis(150)).await.unwrap_err();
    let WaitError::TimedOut { pending, .. } = &err else { panic!("{err:?}") };
    assert!(
        pending.starts_with(&format!(
            "tcp 127.0.0.1:{port}: connecting to 127.0.0.1:{port}: Connection refused"
        )),
        "{pending}"
    );
    let d = err.diagnosis();
    assert_eq!(d.verdict, "timed out");
    assert!(d.waited_ms >= 150);
    let text = d.to_string();
    assert!(text.starts_with("wait timed out after "), "{text}");
    assert!(text.contains(&format!("- tcp 127.0.0.1:{port}: not ready: connecting")), "{text}");
    let json: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap();
    assert_eq!(json["probes"][0]["status"]["state"], "not_yet");
}

/// Answers 503 while `state` is 0, then 200 with `{"status":"ok","schema":{"ready":<state == 2>}}`.
async fn health_server(state: Arc<AtomicU8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let state = state.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /health?full=1 HTTP/1.1"));
                let (status, body) = match state {
                    0 => ("503 Service Unavailable", r#"{"status":"starting"}"#.to_string()),
                    s => ("200 OK", format!(r#"{{"status":"ok","schema":{{"ready":{}}}}}"#, s == 2)),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/health?full=1")
}

#[tokio::test]
async fn http_waits_for_the_status_and_the_json_field() {
    let state = Arc::new(AtomicU8::new(0));
    let url = health_server(state.clone()).await;
    let mut probe = HttpProbe::get(&url).unwrap().json_field("/schema/ready", true);
    assert_eq!(
        probe.check().await,
        Status::NotYet(r#"answered 503 Service Unavailable (want 200 OK): {"status":"starting"}"#.into())
    );
    state.store(1, Ordering::SeqCst);
    assert_eq!(probe.check().await, Status::NotYet("/schema/ready is false (want true)".into()));
    let waiting = tokio::spawn(async move { wait_for(&mut probe, PATIENCE).await });
    state.store(2, Ordering::SeqCst);
    waiting.await.unwrap().unwrap();

    let mut plain = HttpProbe::get(&url).unwrap();
    assert_eq!(plain.check().await, Status::Ready);
    let mut missing = HttpProbe::get(&url).unwrap().json_field("/version", "1.2");
    assert!(missing.check().await.reason().unwrap().starts_with("/version is missing from {"));
    let mut refused = HttpProbe::get(&format!("http://127.0.0.1:{}/", free_port())).unwrap();
    assert!(refused.check().await.reason().unwrap().contains("Connection refused"));
    assert!(HttpProbe::get("https://example.com/").unwrap_err().to_string().contains("only http://"));
}

#[tokio::test]
async fn a_crashing_process_fails_with_its_exit_status_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let process = Spawn::new("sh", dir.path().join("svc.log"))
        .args(["-c", "echo starting; echo boom >&2; exit 3"])
        .start()
        .unwrap();
    // It would be ready when its port answers; it exits first.
    let mut probe = process.probe().until(TcpProbe::new(format!("127.0.0.1:{}", free_port())));
    let err = wait_for(&mut probe, PATIENCE).await.unwrap_err();
    let WaitError::Failed { reason, .. } = &err else { panic!("{err:?}") };
    assert_eq!(reason, "process exited (exit status: 3); last log lines:\nstarting\nboom");
    let d = err.diagnosis();
    let Detail::Process(report) = &d.probes[0].details[0] else { panic!("{d:?}") };
    assert_eq!(report.exit_status.as_deref(), Some("exit status: 3"));
    assert_eq!(report.command, "sh -c echo starting; echo boom >&2; exit 3");
    assert_eq!(report.log_tail, "starting\nboom");
    let text = d.to_string();
    assert!(text.contains("process `sh -c echo starting; echo boom >&2; exit 3`"), "{text}");
    assert!(text.contains("  | boom"), "{text}");
    assert!(d.to_json().contains(r#""kind": "process""#));
}

#[tokio::test]
async fn a_killed_process_reports_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let process = Spawn::new("sh", dir.path().join("svc.log")).args(["-c", "kill -9 $$"]).start().unwrap();
    let mut probe = process.probe().until(TcpProbe::new(format!("127.0.0.1:{}", free_port())));
    let reason = wait_for(&mut probe, PATIENCE).await.unwrap_err().to_string();
    assert!(
        reason.contains("process exited (signal: 9 (SIGKILL)); last log lines:\n(log is empty)"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_running_process_is_ready_when_its_readiness_probe_passes() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let spawn = Spawn::new("sleep", dir.path().join("sleep.log")).arg("30");
    assert_eq!(spawn.argv(), ["sleep", "30"]);
    let process = spawn.start().unwrap();
    let mut probe = process.probe().until(TcpProbe::new(addr.clone()));
    assert_eq!(probe.name(), format!("tcp {addr} (process sleep, pid {})", process.pid()));
    wait_for(&mut probe, PATIENCE).await.unwrap();
    assert_eq!(process.try_wait().unwrap(), None);
    drop(process);
}

#[test]
fn a_missing_program_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = Spawn::new("/nonexistent/svc", dir.path().join("log")).start().unwrap_err();
    assert!(err.to_string().starts_with("starting /nonexistent/svc: No such file"), "{err}");
}

/// A probe that plays back a script of statuses, repeating the last one.
struct Scripted {
    name: &'static str,
    script: Vec<Status>,
    checks: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(name: &'static str, script: Vec<Status>) -> (Self, Arc<AtomicUsize>) {
        let checks = Arc::new(AtomicUsize::new(0));
        (Self { name, script, checks: checks.clone() }, checks)
    }
}

impl Probe for Scripted {
    fn name(&self) -> String {
        self.name.into()
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        let n = self.checks.fetch_add(1, Ordering::SeqCst);
        let status = self.script[n.min(self.script.len() - 1)].clone();
        Box::pin(async move { status })
    }

    fn diagnose(&mut self) -> BoxFuture<'_, Vec<Detail>> {
        Box::pin(async { vec![Detail::Note { text: "scripted evidence".into() }] })
    }
}

#[tokio::test]
async fn progress_is_reported_with_the_current_reasons() {
    let (mut slow, _) = Scripted::new("datastorage", vec![Status::NotYet("2/3 pods ready".into())]);
    let (mut quick, _) = Scripted::new("redis", vec![Status::Ready]);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = lines.clone();
    let err = Waiter::new(Duration::from_millis(300))
        .progress_every(Duration::from_millis(50))
        .on_progress(move |p| seen.lock().unwrap().push(p.to_string()))
        .wait_all(&mut [&mut slow, &mut quick])
        .await
        .unwrap_err();
    let lines = lines.lock().unwrap();
    assert!(lines.len() >= 2, "{lines:?}");
    assert_eq!(lines[0], "waiting 0s: datastorage: 2/3 pods ready", "the ready probe is not listed");
    let d = err.diagnosis();
    assert_eq!(d.probes.len(), 1, "only the pending probe is diagnosed: {d:?}");
    assert!(matches!(&d.probes[0].details[0], Detail::Note { text } if text == "scripted evidence"));
}

#[tokio::test]
async fn a_failure_ends_the_wait_at_once_and_only_the_failed_probe_is_diagnosed() {
    let (mut pending, _) = Scripted::new("never", vec![Status::NotYet("still starting".into())]);
    let (mut broken, checks) = Scripted::new(
        "broken",
        vec![Status::NotYet("a".into()), Status::NotYet("b".into()), Status::Failed("gone".into())],
    );
    let err = Waiter::new(PATIENCE).wait_all(&mut [&mut pending, &mut broken]).await.unwrap_err();
    assert_eq!(err.to_string(), "broken failed: gone");
    assert_eq!(checks.load(Ordering::SeqCst), 3);
    let d = err.diagnosis();
    assert!(d.probes[0].details.is_empty() && !d.probes[1].details.is_empty(), "{d:?}");
}

#[tokio::test]
async fn the_backoff_starts_short_and_is_capped() {
    // With a 2 ms start doubling to a 50 ms cap, 10 NotYet answers take about 2+4+8+16+32+5*50 ms.
    let mut script = vec![Status::NotYet("warming up".into()); 10];
    script.push(Status::Ready);
    let (mut probe, checks) = Scripted::new("warm", script);
    let report = Waiter::new(PATIENCE).wait_for(&mut probe).await.unwrap();
    assert_eq!(checks.load(Ordering::SeqCst), 11);
    assert!(report.elapsed >= Duration::from_millis(300), "the cap was not respected: {report:?}");
    assert!(report.elapsed < Duration::from_secs(3), "the backoff grew past its cap: {report:?}");
}

fn sh(script: &str, log: &std::path::Path) -> std::process::Child {
    let mut cmd = procs::command("sh");
    cmd.args(["-c", script]);
    procs::log_output(&mut cmd, log, procs::OpenLog::Truncate).unwrap();
    procs::spawn(cmd, procs::Tie::Detached).unwrap()
}

#[test]
fn a_child_that_exits_before_it_is_ready_is_handed_back_reaped_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("svc.log");
    let child = sh("echo cannot bind >&2; exit 4", &log);
    let taken = sh("echo 'bind: Address already in use' >&2; exit 1", &dir.path().join("taken.log"));
    let never = TcpProbe::new(format!("127.0.0.1:{}", free_port()));
    let (_, outcome) =
        Waiter::new(PATIENCE).wait_child_blocking(taken, "svc", &dir.path().join("taken.log"), never);
    assert!(outcome.unwrap_err().port_taken());
    let never = TcpProbe::new(format!("127.0.0.1:{}", free_port()));
    let (child, outcome) = Waiter::new(PATIENCE).wait_child_blocking(child, "svc", &log, never);
    assert!(child.is_none(), "nothing left to stop");
    let err = outcome.unwrap_err();
    let wait::ChildNotReady::Exited { status, .. } = &err else { panic!("{err:?}") };
    assert_eq!(status.code(), Some(4));
    assert_eq!(err.to_string(), "svc exited (exit status: 4); last log lines:\ncannot bind");
    assert!(!err.port_taken());
}

/// Server launchers are called from async tests too: the blocking wait must not need, or
/// disturb, the caller's runtime.
#[tokio::test]
async fn a_blocking_wait_works_inside_a_runtime_and_keeps_a_ready_child_running() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("svc.log");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ready = TcpProbe::new(listener.local_addr().unwrap().to_string());
    let child = sh("sleep 30", &log);
    let (child, outcome) = Waiter::new(PATIENCE).wait_child_blocking(child, "sleep", &log, ready);
    outcome.unwrap();
    let mut child = child.expect("handed back");
    assert_eq!(child.try_wait().unwrap(), None, "still running");
    let policy = procs::StopPolicy { signal: nix::sys::signal::Signal::SIGTERM, deadline: PATIENCE };
    procs::stop_child(&mut child, "sleep", policy).unwrap();
}

#[test]
fn a_child_still_running_when_the_wait_gives_up_is_handed_back_running() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("svc.log");
    let child = sh("sleep 30", &log);
    let never = TcpProbe::new(format!("127.0.0.1:{}", free_port()));
    let (child, outcome) =
        Waiter::new(Duration::from_millis(100)).wait_child_blocking(child, "sleep", &log, never);
    let err = outcome.unwrap_err();
    assert!(err.to_string().starts_with("sleep did not become ready within"), "{err}");
    let mut child = child.expect("handed back while it runs");
    assert_eq!(child.try_wait().unwrap(), None);
    let policy = procs::StopPolicy { signal: nix::sys::signal::Signal::SIGTERM, deadline: PATIENCE };
    procs::stop_child(&mut child, "sleep", policy).unwrap();
}

/// A server that answers 503 naming a missing table once, then accepts and never answers.
async fn answers_once_then_hangs() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        let mut held = Vec::new();
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            if first {
                first = false;
                let mut buf = vec![0; 4096];
                let _ = sock.read(&mut buf).await;
                let body = "schema_incomplete: audit_events";
                let reply = format!(
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            } else {
                held.push(sock);
            }
        }
    });
    format!("http://{addr}/readyz")
}

#[tokio::test]
async fn a_check_still_running_at_the_deadline_does_not_hide_the_last_answer() {
    let url = answers_once_then_hangs().await;
    let mut probe = HttpProbe::get(&url).unwrap();
    // Each check may take 5 s, so the second one (after a pause of milliseconds) still runs at
    // the deadline.
    let err = Waiter::new(Duration::from_millis(500)).wait_for(&mut probe).await.unwrap_err();
    let WaitError::TimedOut { pending, .. } = &err else { panic!("{err:?}") };
    assert!(pending.contains("schema_incomplete: audit_events"), "the last real answer: {pending}");

    // A probe whose first check never answers says so, not "not checked yet".
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}/readyz", listener.local_addr().unwrap());
    let mut probe = HttpProbe::get(&silent).unwrap();
    let err = Waiter::new(Duration::from_millis(300)).wait_for(&mut probe).await.unwrap_err();
    let WaitError::TimedOut { pending, .. } = &err else { panic!("{err:?}") };
    assert!(pending.contains("no answer within"), "{pending}");
    drop(listener);
}
