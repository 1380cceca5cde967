//! Per-run passwords never leak: not on stderr, not in `status`, not in files others can read,
//! not in any child's command line, not in the errors of a URL that carries one. Each password
//! is taken from the run's own (0600) state and searched for everywhere else.
#![allow(clippy::disallowed_methods)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn xtask(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("XTASK_STATE_DIR", state)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run xtask")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every password a URL of `env` carries (`scheme://user:password@`), and Redis' (`redis://:pw@`).
fn passwords(env: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    env.values()
        .filter_map(|v| v.as_str())
        .filter_map(|url| {
            let rest = url.split_once("://")?.1;
            let userinfo = rest.rsplit_once('@')?.0;
            Some(userinfo.split_once(':')?.1.to_string())
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// Files under `dir` that users other than the owner can read, with their contents.
fn readable_by_others(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).into_iter().filter_map(Result::ok) {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() && meta.permissions().mode() & 0o004 != 0 {
            out.push((entry.path().display().to_string(), std::fs::read(entry.path()).unwrap_or_default()));
        }
    }
    out
}

/// The command lines of every process naming `needle`.
fn command_lines(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmd| cmd.contains(needle))
        .collect()
}

#[test]
fn a_local_runs_passwords_appear_nowhere_but_its_state_and_its_exports() {
    passwords_appear_nowhere_but_the_state_and_the_exports("local");
}

/// The same on podman: containers get their passwords from mounted files and podman's secret
/// store, never from their environment or command line.
#[test]
fn a_podman_runs_passwords_appear_nowhere_but_its_state_and_its_exports() {
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("skipping: podman is not installed");
        return;
    }
    if std::env::var_os("XTASK_IMAGE_POSTGRES").is_none() || std::env::var_os("XTASK_IMAGE_REDIS").is_none() {
        eprintln!("skipping: XTASK_IMAGE_POSTGRES/REDIS are not set (run under .ci/with-env)");
        return;
    }
    passwords_appear_nowhere_but_the_state_and_the_exports("podman");
}

fn passwords_appear_nowhere_but_the_state_and_the_exports(backend: &str) {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = xtask(self.0, &["infra", "down", "--all"]);
        }
    }
    let _cleanup = Cleanup(s);
    let up = xtask(s, &["infra", "up", "workflowexecution", "--keep", "--json", "--backend", backend]);
    assert!(up.status.success(), "{}", text(&up));
    let doc: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    let env = doc["env"].as_object().unwrap();
    let run = doc["run"].as_str().unwrap();
    let state_file = s.join("runs").join(run).join("state.json");
    assert_eq!(std::fs::metadata(&state_file).unwrap().permissions().mode() & 0o777, 0o600);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    let mut secrets = passwords(env);
    secrets.extend(saved["postgres_superuser_password"].as_str().map(str::to_string));
    let least = if backend == "local" { 3 } else { 2 };
    assert!(secrets.len() >= least, "database user, (superuser,) Redis passwords: {secrets:?}");
    let database_url = env["DATABASE_URL"].as_str().unwrap().to_string();

    let mut seen: Vec<(String, String)> =
        vec![("infra up stderr".into(), String::from_utf8_lossy(&up.stderr).into())];
    for args in [
        &["infra", "status"][..],
        &["infra", "status", "--json"],
        &["infra", "restart", "postgres"],
        &["doctor"],
    ] {
        let o = xtask(s, args);
        seen.push((args.join(" "), text(&o)));
    }
    // `infra env` on a terminal (it prints the passwords only into a pipe, for `eval`).
    let on_terminal = Command::new("script")
        .args(["-qec", &format!("{} infra env", env!("CARGO_BIN_EXE_xtask")), "/dev/null"])
        .env("XTASK_STATE_DIR", s)
        .output()
        .expect("run script");
    assert!(text(&on_terminal).contains("passwords hidden"), "{}", text(&on_terminal));
    seen.push(("infra env on a terminal".into(), text(&on_terminal)));
    // Errors of commands given a URL with the password in it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("001_a.sql"), "-- +goose Up\nSELECT nosuch;\n").unwrap();
    let d = dir.path().to_str().unwrap();
    let wrong_port = database_url.replace("@127.0.0.1:", "@127.0.0.1:1");
    for args in [
        vec!["migrate", "status", "--database-url", &database_url],
        vec!["migrate", "--all", "--dir", d, "--database-url", &database_url],
        vec!["migrate", "--all", "--dir", d, "--database-url", &database_url, "--json"],
        vec!["migrate", "--all", "--dir", d, "--database-url", &wrong_port],
    ] {
        let o = xtask(s, &args);
        seen.push((args.join(" ").replace(&database_url, "URL"), text(&o)));
    }
    for (path, bytes) in readable_by_others(s) {
        seen.push((path, String::from_utf8_lossy(&bytes).into()));
    }
    // The run's PostgreSQL data may live outside the state directory (a tmpfs); its pointer says where.
    let pointer = state_file.parent().unwrap().join("postgres").join(pgserver::DATA_POINTER);
    let elsewhere = std::fs::read_to_string(pointer).map(|p| p.trim_end().to_string()).ok();
    if let Some(place) = &elsewhere {
        assert!(!command_lines(place).is_empty(), "the server names its data directory");
        for (path, bytes) in readable_by_others(Path::new(place)) {
            seen.push((path, String::from_utf8_lossy(&bytes).into()));
        }
    }
    let more = elsewhere.iter().flat_map(|p| command_lines(p));
    for cmd in command_lines(s.to_str().unwrap()).into_iter().chain(command_lines(run)).chain(more) {
        seen.push(("a child's command line".into(), cmd));
    }
    if backend == "podman" {
        // What anyone allowed to ask the engine sees: each container's config and log.
        let ids = Command::new("podman")
            .args(["ps", "-a", "-q", "--filter", &format!("label=xtask.run={run}")])
            .output()
            .unwrap();
        let ids: Vec<String> =
            String::from_utf8_lossy(&ids.stdout).split_whitespace().map(String::from).collect();
        assert!(ids.len() >= 3, "the run's containers: {ids:?}");
        for id in &ids {
            for args in [vec!["inspect", id.as_str()], vec!["logs", id.as_str()]] {
                let o = Command::new("podman").args(&args).output().unwrap();
                seen.push((format!("podman {}", args.join(" ")), text(&o)));
            }
        }
    }
    let down = xtask(s, &["infra", "down"]);
    seen.push(("infra down".into(), text(&down)));

    let mut leaks = Vec::new();
    for (what, content) in &seen {
        for secret in &secrets {
            if content.contains(secret.as_str()) {
                leaks.push(format!("{what}: shows a password"));
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
    assert!(seen.len() > 12, "everything was looked at: {}", seen.len());
}

/// On a terminal, `infra up` shows its endpoints with the passwords hidden.
#[test]
fn a_terminal_sees_no_password() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let cmd = format!("{} infra up workflowexecution --keep", env!("CARGO_BIN_EXE_xtask"));
    let shown = Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("XTASK_STATE_DIR", s).output();
    let Ok(shown) = shown else {
        eprintln!("skipped: no `script` command to give xtask a terminal");
        return;
    };
    let screen = text(&shown);
    let runs: Vec<_> = std::fs::read_dir(s.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs[0].join("state.json")).unwrap()).unwrap();
    let _ = xtask(s, &["infra", "down", "--all"]);
    assert!(shown.status.success(), "{screen}");
    assert!(screen.contains("endpoints (passwords hidden)"), "{screen}");
    let env = saved["env"].as_object().unwrap();
    let secrets = passwords(env);
    assert!(!secrets.is_empty(), "{saved}");
    for secret in secrets {
        assert!(!screen.contains(&secret), "the terminal shows a password:\n{screen}");
    }
}
