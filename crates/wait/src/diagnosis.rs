//! Why a wait gave up, as data: rendered as text for people and JSON for tools.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::Status;
use crate::kube::WorkloadReport;

/// Everything known about a failed or timed-out wait.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// `failed` when a probe failed, `timed out` when the deadline passed.
    pub verdict: String,
    /// How long the wait ran, in milliseconds.
    pub waited_ms: u64,
    /// Each probe that was not ready, with its last status and gathered evidence.
    pub probes: Vec<ProbeDiagnosis>,
}

/// One probe's part of a [`Diagnosis`].
#[derive(Debug, Clone, Serialize)]
pub struct ProbeDiagnosis {
    /// The probe's name.
    pub probe: String,
    /// Its last status.
    pub status: Status,
    /// Evidence the probe gathered (process log, pod states, events, ...).
    pub details: Vec<Detail>,
}

/// A piece of evidence about why something is not ready.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// A local process and the end of its log.
    Process(ProcessReport),
    /// A Kubernetes workload's pods, events and logs.
    Kubernetes(WorkloadReport),
    /// A free-form remark, e.g. that evidence could not be collected.
    Note {
        /// The remark.
        text: String,
    },
}

/// A local process as seen by a diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    /// The command line (program and arguments).
    pub command: String,
    /// Its process id.
    pub pid: u32,
    /// How it ended (`exit status: 3`, `signal: 9 (SIGKILL)`), or `None` while it runs.
    pub exit_status: Option<String>,
    /// Where its output is logged.
    pub log_path: String,
    /// The last lines of that log.
    pub log_tail: String,
}

impl Diagnosis {
    /// The diagnosis as pretty-printed JSON, for tools and the run directory.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a diagnosis is plain data")
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "wait {} after {:.1}s", self.verdict, self.waited_ms as f64 / 1000.0)?;
        for p in &self.probes {
            writeln!(f, "- {}: {}", p.probe, p.status)?;
            for d in &p.details {
                f.write_str(&indent(&d.to_string(), "    "))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::Process(p) => {
                let status = p.exit_status.as_deref().unwrap_or("still running");
                writeln!(f, "process `{}` (pid {}): {status}", p.command, p.pid)?;
                writeln!(f, "last lines of {}:", p.log_path)?;
                f.write_str(&indent(&p.log_tail, "  | "))
            }
            Detail::Kubernetes(w) => w.fmt(f),
            Detail::Note { text } => writeln!(f, "note: {text}"),
        }
    }
}

/// Prefixes every line of `text` with `prefix`, ending with a newline.
pub(crate) fn indent(text: &str, prefix: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let _ = writeln!(out, "{prefix}{line}");
    }
    out
}
