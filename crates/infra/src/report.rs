//! Reports of a run for people and tools: the step summary with a text timeline, shell exports,
//! status rows, log tails, and what the report files (JUnit, timings) are made from.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::runner::{Outcome, RunReport};
use crate::session::TestOutcome;
use crate::state::{Resource, RunState, pid_alive};

/// How wide, in characters, the terminal timeline's time axis is.
pub const TIMELINE_WIDTH: usize = 50;

/// Every step with its duration and outcome, the critical path against wall time, then a
/// timeline of the steps.
pub fn summary(report: &RunReport) -> String {
    let mut s = String::from("steps:\n");
    for r in &report.steps {
        let d = match (r.start_ms, r.end_ms) {
            (Some(a), Some(b)) => format!(
                "{:>6.1}s  ({:.1}s .. {:.1}s)",
                (b - a) as f64 / 1000.0,
                a as f64 / 1000.0,
                b as f64 / 1000.0
            ),
            _ => "      -".to_string(),
        };
        s.push_str(&format!("  {:<18} {d}  {:?}\n", r.step, r.outcome));
    }
    s.push_str(&format!(
        "critical path: {} = {:.1}s; wall {:.1}s; the same steps one after another: {:.1}s\n",
        report.critical_path.join(" -> "),
        report.critical_ms as f64 / 1000.0,
        report.wall_ms as f64 / 1000.0,
        report.sequential_ms as f64 / 1000.0
    ));
    s.push_str(&timeline(report, TIMELINE_WIDTH));
    s
}

/// One row per step on a shared time axis `width` characters wide, so where the time went and
/// what overlapped shows in a terminal: `█` a step on the critical path, `=` any other that
/// became ready, `~` a background step, `X` the step that failed, `-` a step stopped half-way.
/// Empty when no step ran.
pub fn timeline(report: &RunReport, width: usize) -> String {
    let width = width.max(1);
    let span = report.steps.iter().filter_map(|r| r.end_ms).max().unwrap_or(0).max(report.wall_ms);
    if span == 0 || report.steps.iter().all(|r| r.start_ms.is_none()) {
        return String::new();
    }
    let cols = width as u128;
    let name_w = report.steps.iter().map(|r| r.step.chars().count()).max().unwrap_or(0);
    let mut s = format!(
        "timeline (one column = {:.2}s; * on the critical path, ~ in the background):\n",
        span as f64 / 1000.0 / width as f64
    );
    for r in &report.steps {
        let critical = report.critical_path.contains(&r.step);
        let mut bar = vec![' '; width];
        if let (Some(a), Some(b)) = (r.start_ms, r.end_ms) {
            // Floor the start and ceil the end so a short step still shows as one column.
            let from = ((a * cols / span) as usize).min(width - 1);
            let to = (b * cols).div_ceil(span).clamp(from as u128 + 1, cols) as usize;
            let fill = match r.outcome {
                Outcome::Failed => 'X',
                Outcome::Stopped => '-',
                _ if r.background => '~',
                _ if critical => '█',
                _ => '=',
            };
            bar[from..to].fill(fill);
        }
        let bar: String = bar.into_iter().collect();
        let mark = if critical { '*' } else { ' ' };
        s.push_str(&format!("  {mark} {:<name_w$} |{bar}|\n", r.step));
    }
    let end = format!("{:.1}s", span as f64 / 1000.0);
    s.push_str(&format!("    {:<name_w$}  0s{end:>w$}\n", "", w = width.saturating_sub(2)));
    s
}

/// How the suite's own tests went, for the files written after a run (JUnit, timings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tests {
    /// `infra up`: a run without tests.
    NotPart,
    /// They ran after setup: how they ended, how long they took, the diagnosis when they failed.
    Ran {
        /// How the test command ended.
        outcome: TestOutcome,
        /// How long it ran.
        took: Duration,
        /// The last log lines of every component, when they did not pass.
        diagnosis: Option<String>,
    },
    /// The environment did not come up, so they never ran: why.
    SetupFailed(String),
    /// Interrupted before they started.
    Interrupted,
}

/// A run as the report files see it: which suite, where, its steps and its tests.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// The suite's name.
    pub suite: &'a str,
    /// The backend it ran on.
    pub backend: &'a str,
    /// The run's id, when a run directory was made.
    pub run: Option<&'a str>,
    /// How the setup steps went.
    pub setup: &'a RunReport,
    /// How the tests went.
    pub tests: &'a Tests,
}

/// Writes `contents` to `path` through a temporary file in the same directory and a rename, so
/// a reader (a CI dashboard, a browser) never sees half a file; makes the directory if needed.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let written = std::fs::write(&tmp, contents).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A value quoted for a POSIX shell.
pub fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

/// `export NAME='value'` lines for the run's endpoints and id, for `eval` in a shell.
pub fn exports(state: &RunState) -> String {
    let mut out = String::new();
    for (k, v) in &state.env {
        out.push_str(&format!("export {k}={}\n", shell_quote(v)));
        // The token itself is read by the shell that evals this: it is never printed.
        if k == crate::state::TOKEN_FILE_VAR {
            out.push_str(&format!("export {}=\"$(cat {})\"\n", crate::state::TOKEN_VAR, shell_quote(v)));
        }
    }
    out.push_str(&format!("export XTASK_RUN={}\n", shell_quote(&state.id)));
    out
}

/// For a run on a cluster: the `kubectl port-forward` commands that give its endpoints the same
/// loopback ports once the xtask that forwarded them is gone (after `--keep`), so the URLs it
/// printed keep working. Empty for other backends.
pub fn reach(state: &RunState) -> Vec<String> {
    let Some((ns, kubeconfig, context)) = state.namespace() else {
        return Vec::new();
    };
    let context = context.map(|c| format!(" --context {}", shell_quote(c))).unwrap_or_default();
    let kubeconfig = shell_quote(&kubeconfig.display().to_string());
    state
        .endpoints
        .values()
        // The cluster's own API is reached directly, not through a forward.
        .filter(|e| !matches!(e.kind, crate::model::EndpointKind::KubeApi { .. }))
        .map(|e| {
            format!(
                "kubectl --kubeconfig {kubeconfig}{context} -n {ns} port-forward service/{} {}:{} &",
                e.inside.host, e.host.port, e.inside.port
            )
        })
        .collect()
}

/// One run for `infra status`: resources with liveness, endpoints without passwords.
pub fn status_row(state: &RunState) -> Value {
    let resources: Vec<Value> = state
        .resources
        .iter()
        .map(|r| match r {
            Resource::Process { component, pid, program, port, log } => json!({
                "type": "process", "component": component, "program": program, "pid": pid, "port": port,
                "running": pid_alive(*pid), "log": log}),
            Resource::Container { component, name } => {
                json!({"type": "container", "component": component, "name": name})
            }
            Resource::Background { pid, program, task, log } => json!({
                "type": "background", "program": program, "pid": pid, "task": task,
                "running": pid_alive(*pid), "log": log}),
            Resource::Network { name } => json!({"type": "network", "name": name}),
            Resource::Secret { name } => json!({"type": "secret", "name": name}),
            Resource::Cluster { name, provider } => {
                json!({"type": "cluster", "name": name, "provider": provider})
            }
            Resource::Namespace { name, kubeconfig, context } => {
                json!({"type": "namespace", "name": name, "kubeconfig": kubeconfig, "context": context})
            }
        })
        .collect();
    let endpoints: serde_json::Map<String, Value> =
        state.env.iter().map(|(k, v)| (k.clone(), json!(redact::connection_string(v)))).collect();
    let verdict = if state.resources.is_empty() {
        "stopped (logs and diagnosis kept)"
    } else if state.orphaned() {
        "orphaned: its xtask is gone; remove with `cargo xtask infra down`"
    } else if state.backend == "local" && !state.alive() {
        "not running"
    } else {
        "running"
    };
    json!({"run": state.id, "suite": state.suite, "backend": state.backend, "dir": state.dir,
           "state": verdict, "owner_pid": state.owner_pid, "kept": state.kept,
           "resources": resources, "endpoints": endpoints})
}

/// The last `n` lines of every service's log (a process's log file, a container's output),
/// headed by component.
pub fn log_tails(state: &RunState, n: usize) -> String {
    let mut out = String::new();
    for r in &state.resources {
        match r {
            Resource::Process { component, log: Some(log), .. } => {
                out.push_str(&format!("--- {component} ({}):\n{}\n", log.display(), procs::log_tail(log, n)));
            }
            Resource::Container { component, name } => {
                let text = container::Engine::from_env()
                    .logs(name, Some(n))
                    .unwrap_or_else(|e| format!("(no logs: {e})"));
                out.push_str(&format!("--- {component} (container {name}):\n{}\n", procs::tail(&text, n)));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, span: Option<(u128, u128)>, outcome: Outcome) -> StepRecord {
        StepRecord::for_test(id, &[], span, outcome)
    }
    use crate::runner::{StepFailure, StepRecord};

    #[test]
    fn the_summary_draws_a_timeline_with_the_critical_path_marked() {
        let report = RunReport {
            steps: vec![
                step("build-datastorage", Some((0, 2400)), Outcome::Ready),
                step("postgres", Some((0, 2000)), Outcome::Ready),
                step("redis", Some((0, 80)), Outcome::Ready),
                step("migrations", Some((2000, 3000)), Outcome::Ready),
                step("datastorage", Some((3000, 5000)), Outcome::Ready),
            ],
            wall_ms: 5000,
            critical_path: vec!["postgres".into(), "migrations".into(), "datastorage".into()],
            critical_ms: 5000,
            sequential_ms: 7480,
            failure: None,
            interrupted: false,
        };
        insta::assert_snapshot!(summary(&report));
    }

    #[test]
    fn the_timeline_shows_failed_stopped_and_unstarted_steps() {
        let report = RunReport {
            steps: vec![
                step("postgres", Some((0, 1000)), Outcome::Ready),
                step("redis", Some((0, 2000)), Outcome::Stopped),
                step("migrations", Some((1000, 2000)), Outcome::Failed),
                step("datastorage", None, Outcome::NotStarted),
            ],
            wall_ms: 2000,
            critical_path: vec!["postgres".into(), "migrations".into()],
            critical_ms: 2000,
            sequential_ms: 4000,
            failure: Some(("migrations".into(), StepFailure::new("no"))),
            interrupted: false,
        };
        insta::assert_snapshot!(timeline(&report, 20));
        assert_eq!(timeline(&RunReport::default(), 20), "", "nothing ran, nothing drawn");
    }

    #[test]
    fn a_report_file_is_replaced_whole_and_its_directory_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/er/report.xml");
        write_atomic(&path, "one").unwrap();
        write_atomic(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["report.xml"], "no temporary file left behind");
        std::fs::write(dir.path().join("plain"), "a file").unwrap();
        let blocked = write_atomic(&dir.path().join("plain/inside.xml"), "x");
        assert!(blocked.is_err(), "a path through a file is an error, not a silent no-op: {blocked:?}");
    }

    #[test]
    fn exports_quote_for_the_shell() {
        let mut state = RunState { id: "r1".into(), ..Default::default() };
        state.env.insert("DATABASE_URL".into(), "postgres://u:it's@h/db".into());
        assert_eq!(
            exports(&state),
            "export DATABASE_URL='postgres://u:it'\\''s@h/db'\nexport XTASK_RUN='r1'\n"
        );
    }

    #[test]
    fn status_rows_hide_passwords() {
        let mut state = RunState { id: "r1".into(), ..Default::default() };
        state.env.insert("REDIS_URL".into(), "redis://:s3cret@127.0.0.1:1".into());
        let row = status_row(&state).to_string();
        assert!(row.contains("redis://:***@127.0.0.1:1") && !row.contains("s3cret"), "{row}");
    }

    #[test]
    fn a_cluster_run_says_how_to_forward_its_endpoints_on_the_same_ports() {
        use crate::model::{Addr, Endpoint, EndpointKind, Secret};
        let mut state = RunState { id: "we-1".into(), ..Default::default() };
        assert!(reach(&state).is_empty(), "nothing to say for a run without a namespace");
        state.resources.push(Resource::Namespace {
            name: "xtask-we-1".into(),
            kubeconfig: "/home/me/.xtask/runs/we-1/kubeconfig".into(),
            context: Some("kind-xtask".into()),
        });
        state.endpoints.insert(
            "postgres".into(),
            Endpoint {
                kind: EndpointKind::Postgres {
                    user: "u".into(),
                    database: "d".into(),
                    password: Secret::new("hunter2"),
                },
                host: Addr { host: "127.0.0.1".into(), port: 40111 },
                inside: Addr { host: "postgres".into(), port: 5432 },
            },
        );
        state.endpoints.insert(
            "datastorage".into(),
            Endpoint {
                kind: EndpointKind::Http { ready_url: None, ca: None },
                host: Addr { host: "127.0.0.1".into(), port: 40112 },
                inside: Addr { host: "data-storage-service".into(), port: 8080 },
            },
        );
        state.endpoints.insert(
            "kube-api".into(),
            Endpoint {
                kind: EndpointKind::KubeApi {
                    namespace: "xtask-we-1".into(),
                    kubeconfig: None,
                    inside: None,
                    tokens: Default::default(),
                },
                host: Addr { host: "10.0.0.1".into(), port: 6443 },
                inside: Addr { host: "kubernetes.default.svc".into(), port: 443 },
            },
        );
        let lines = reach(&state);
        let kubectl = "kubectl --kubeconfig '/home/me/.xtask/runs/we-1/kubeconfig' --context 'kind-xtask' -n xtask-we-1";
        // Each through its Service by the name clients know it by; the cluster's API needs none.
        assert_eq!(
            lines,
            [
                format!("{kubectl} port-forward service/data-storage-service 40112:8080 &"),
                format!("{kubectl} port-forward service/postgres 40111:5432 &"),
            ]
        );
        assert!(!lines.concat().contains("hunter2"));
    }
}
