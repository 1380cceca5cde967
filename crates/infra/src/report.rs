//! Reports of a run for people and tools: the step summary, shell exports, status rows, log tails.

use serde_json::{Value, json};

use crate::runner::RunReport;
use crate::state::{RunState, pid_alive};

/// Every step with its duration and outcome, then the critical path against wall time.
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
    s
}

/// A value quoted for a POSIX shell.
fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

/// `export NAME='value'` lines for the run's endpoints and id, for `eval` in a shell.
pub fn exports(state: &RunState) -> String {
    let mut out = String::new();
    for (k, v) in &state.env {
        out.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    out.push_str(&format!("export XTASK_RUN={}\n", shell_quote(&state.id)));
    out
}

/// One run for `infra status`: components with pid, port and liveness; endpoints without passwords.
pub fn status_row(state: &RunState) -> Value {
    let components: serde_json::Map<String, Value> = state
        .components
        .iter()
        .map(|(n, c)| {
            let alive = c.pid.is_some_and(pid_alive);
            (n.clone(), json!({"pid": c.pid, "port": c.port, "running": alive, "log": c.log}))
        })
        .collect();
    let endpoints: serde_json::Map<String, Value> =
        state.env.iter().map(|(k, v)| (k.clone(), json!(migrations::redact_url(v)))).collect();
    json!({"run": state.id, "suite": state.suite, "dir": state.dir, "running": state.alive(),
           "components": components, "endpoints": endpoints})
}

/// The last `n` lines of every component's log, headed by component and path.
pub fn log_tails(state: &RunState, n: usize) -> String {
    let mut out = String::new();
    for (name, c) in &state.components {
        if let Some(log) = &c.log {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "--- {name} ({}):\n{}\n",
                log.display(),
                lines[lines.len().saturating_sub(n)..].join("\n")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
