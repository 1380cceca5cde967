//! The binary as a test environment starts it: config from `CONFIG_PATH`, logs on stderr at the
//! configured level without a secret in them, a clean exit on SIGTERM.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, blocking, event, eventually};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_from_config_path_and_stops_on_sigterm() {
    let env = blocking(|| Env::new(|_| {}));
    env.migrate().await;
    let config_path = env.dir.path().join("config.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_datastorage-reference-server"))
        .arg("--auth=off")
        .env("CONFIG_PATH", &config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the server");

    let server = &env.loaded.config.server;
    let base = format!("http://127.0.0.1:{}", server.port);
    let health = format!("http://127.0.0.1:{}", server.health_port);
    let http = workflowexecution_suite::http_client();
    eventually(Duration::from_secs(30), "GET /readyz on the health port answers 200", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited early: {status}");
        }
        let (http, health) = (&http, &health);
        async move {
            match http.get(format!("{health}/readyz")).send().await {
                Ok(r) if r.status().as_u16() == 200 => Ok(()),
                Ok(r) => Err(format!("{}: {}", r.status(), r.text().await.unwrap_or_default())),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    let r = http
        .post(format!("{base}/api/v1/audit/events/batch"))
        .json(&json!([event("bin", "workflow.started", "success")]))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    common::contract::check("POST", common::BATCH, status, content_type.as_deref(), &body);
    // Where the service has them: readiness on the API port too, liveness and metrics on theirs.
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let live: serde_json::Value =
        http.get(format!("{health}/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(live["status"], "healthy", "{live}");
    assert!(chrono::DateTime::parse_from_rfc3339(live["timestamp"].as_str().unwrap()).is_ok(), "{live}");
    let metrics = http
        .get(format!("http://127.0.0.1:{}/metrics", server.metrics_port))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"datastorage_http_requests_total{route="/api/v1/audit/events/batch",code="201"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("datastorage_dlq_depth 0"), "{metrics}");
    assert_eq!(http.get(format!("{base}/metrics")).send().await.unwrap().status().as_u16(), 404);

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = eventually(Duration::from_secs(30), "the server exits after SIGTERM", || {
        let exited = child.try_wait().unwrap().ok_or_else(|| "still running".to_string());
        async move { exited }
    })
    .await;
    assert!(status.success(), "{status}");

    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(stdout.is_empty(), "logs go to stderr: {stdout}");
    let lines: Vec<serde_json::Value> =
        stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "datastorage reference server listening"),
        "{stderr}"
    );
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "debug level from the config: {stderr}");
    assert!(!stderr.contains(&env.db_password), "the database password is never logged");
    assert!(!stderr.contains(env.redis.password().unwrap()), "the Redis password is never logged");
}

#[test]
fn a_bad_config_file_is_reported_with_its_path_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "server:\n  host: 127.0.0.1\n  prot: 8080\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_datastorage-reference-server"))
        .arg("--config")
        .arg(&path)
        .env_remove("CONFIG_PATH")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad config is bad input");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The compilers' line format, which editors and CI link to the file.
    let at = format!("{}:3:3: error: server.prot: not a key DataStorage reads", path.display());
    assert!(stderr.contains(&at), "{stderr}");
}

/// The server's exit and stderr for a rendered config, started as a test environment would.
fn run_once(env: &Env, args: &[&str], kubeconfig: Option<&str>) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_datastorage-reference-server"));
    command
        .args(args)
        .env("CONFIG_PATH", env.dir.path().join("config.yaml"))
        .env_remove("KUBERNETES_SERVICE_HOST");
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env_remove("KUBECONFIG"),
    };
    let out = command.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_kubernetes_client_it_does_not_start() {
    let env = blocking(|| Env::new(|_| {}));
    let (code, stderr) = blocking(|| run_once(&env, &[], None));
    assert_eq!(code, Some(1), "as the service: no client, exit 1: {stderr}");
    assert!(stderr.contains("KUBECONFIG is not set"), "{stderr}");
    assert!(stderr.contains("--auth off"), "says how to run without: {stderr}");

    let (code, stderr) = blocking(|| run_once(&env, &[], Some("/nonexistent/kubeconfig")));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/kubeconfig"), "names the file: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_signing_pair_it_does_not_start() {
    let env = blocking(|| Env::new(|_| {}));
    let key = env.dir.path().join("signing/tls.key");
    std::fs::remove_file(&key).unwrap();
    let (code, stderr) = blocking(|| run_once(&env, &["--auth=off"], None));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&key.display().to_string()), "names the missing file: {stderr}");
}
