//! Evidence about a workload's pods: phase, conditions, container states, events and logs.
//!
//! Collected through ordinary kube `Api` calls (list pods, list events, read logs), so it works
//! against any cluster and against a mocked client in tests.

use std::fmt;

use k8s_openapi::api::core::v1::{ContainerState, Event, Pod};
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use serde::Serialize;

use super::pod;
use crate::diagnosis::indent;

/// How many recent events per pod a report keeps.
const EVENTS_PER_POD: usize = 10;

/// The pods matching a selector, as evidence.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadReport {
    /// The namespace searched.
    pub namespace: String,
    /// The label or field selector used.
    pub selector: String,
    /// Each matching pod.
    pub pods: Vec<PodReport>,
}

/// One pod as seen by a diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct PodReport {
    /// The pod's name.
    pub name: String,
    /// Its phase (Pending, Running, ...).
    pub phase: String,
    /// Its conditions as `Type=Status Reason: message`.
    pub conditions: Vec<String>,
    /// Init containers, then app containers.
    pub containers: Vec<ContainerReport>,
    /// Its most recent events, newest last.
    pub events: Vec<EventReport>,
}

/// One container of a pod.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerReport {
    /// The container's name.
    pub name: String,
    /// The image it runs.
    pub image: String,
    /// Whether it passes its readiness probe.
    pub ready: bool,
    /// How often it restarted.
    pub restart_count: i32,
    /// Its current state, e.g. `waiting: CrashLoopBackOff: back-off 40s ...`.
    pub state: String,
    /// How its previous instance ended, e.g. `terminated: Error, exit code 1`.
    pub last_state: Option<String>,
    /// The last lines of its log (or why they could not be read).
    pub log_tail: String,
    /// The last lines of its previous instance's log, for a restarted container.
    pub previous_log_tail: Option<String>,
}

/// One event about a pod.
#[derive(Debug, Clone, Serialize)]
pub struct EventReport {
    /// When it last happened (RFC 3339), if known.
    pub time: Option<String>,
    /// `Normal` or `Warning`.
    pub kind: String,
    /// Its machine-readable reason, e.g. `BackOff`.
    pub reason: String,
    /// What happened.
    pub message: String,
    /// How often it happened.
    pub count: i32,
}

/// Lists the pods matching `params` in `namespace` with their events and last `log_lines` log lines.
pub async fn collect_workload(
    client: &Client,
    namespace: &str,
    params: &ListParams,
    log_lines: i64,
) -> Result<WorkloadReport, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut reports = Vec::new();
    for p in pods.list(params).await?.items {
        let name = pod::name(&p).to_string();
        let fields = format!("involvedObject.kind=Pod,involvedObject.name={name}");
        let mut evs = events.list(&ListParams::default().fields(&fields)).await?.items;
        evs.sort_by_key(event_time);
        let skip = evs.len().saturating_sub(EVENTS_PER_POD);
        let mut containers = Vec::new();
        for c in pod::containers(&p) {
            let read = |previous: bool| {
                let lp = LogParams {
                    container: Some(c.name.clone()),
                    tail_lines: Some(log_lines),
                    previous,
                    ..LogParams::default()
                };
                let pods = pods.clone();
                let name = name.clone();
                async move { pods.logs(&name, &lp).await.unwrap_or_else(|e| format!("(log unavailable: {e})")) }
            };
            containers.push(ContainerReport {
                name: c.name.clone(),
                image: c.image.clone(),
                ready: c.ready,
                restart_count: c.restart_count,
                state: c.state.as_ref().map_or_else(|| "unknown".into(), describe_state),
                last_state: c.last_state.as_ref().map(describe_state).filter(|s| s != "unknown"),
                log_tail: read(false).await,
                previous_log_tail: if c.restart_count > 0 { Some(read(true).await) } else { None },
            });
        }
        reports.push(PodReport {
            phase: pod::phase(&p).to_string(),
            conditions: p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .map(|c| {
                    let mut s = format!("{}={}", c.type_, c.status);
                    if let Some(r) = &c.reason {
                        s.push_str(&format!(" {r}"));
                    }
                    if let Some(m) = &c.message {
                        s.push_str(&format!(": {m}"));
                    }
                    s
                })
                .collect(),
            containers,
            events: evs.into_iter().skip(skip).map(event_report).collect(),
            name,
        });
    }
    let selector = [params.label_selector.as_deref(), params.field_selector.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    Ok(WorkloadReport { namespace: namespace.into(), selector, pods: reports })
}

fn describe_state(s: &ContainerState) -> String {
    if let Some(w) = &s.waiting {
        let mut text = format!("waiting: {}", w.reason.as_deref().unwrap_or("unknown reason"));
        if let Some(m) = &w.message {
            text.push_str(&format!(": {m}"));
        }
        text
    } else if let Some(t) = &s.terminated {
        let mut text = format!(
            "terminated: {}, exit code {}",
            t.reason.as_deref().unwrap_or("unknown reason"),
            t.exit_code
        );
        if let Some(sig) = t.signal {
            text.push_str(&format!(", signal {sig}"));
        }
        if let Some(m) = &t.message {
            text.push_str(&format!(": {m}"));
        }
        text
    } else if let Some(r) = &s.running {
        match &r.started_at {
            Some(at) => format!("running since {}", at.0),
            None => "running".into(),
        }
    } else {
        "unknown".into()
    }
}

/// The most precise time an event carries, for ordering (oldest first).
fn event_time(e: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn event_report(e: Event) -> EventReport {
    EventReport {
        time: event_time(&e).map(|t| t.to_string()),
        kind: e.type_.unwrap_or_default(),
        reason: e.reason.unwrap_or_default(),
        message: e.message.unwrap_or_default(),
        count: e.count.unwrap_or(1),
    }
}

impl fmt::Display for WorkloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pods in {} matching {}: {}", self.namespace, self.selector, self.pods.len())?;
        for p in &self.pods {
            writeln!(f, "pod {} ({})", p.name, p.phase)?;
            for c in &p.conditions {
                writeln!(f, "  condition {c}")?;
            }
            for c in &p.containers {
                writeln!(
                    f,
                    "  container {} ({}): {}, ready={}, restarts={}",
                    c.name, c.image, c.state, c.ready, c.restart_count
                )?;
                if let Some(last) = &c.last_state {
                    writeln!(f, "    previous instance: {last}")?;
                }
                writeln!(f, "    log:")?;
                f.write_str(&indent(&c.log_tail, "    | "))?;
                if let Some(prev) = &c.previous_log_tail {
                    writeln!(f, "    previous instance's log:")?;
                    f.write_str(&indent(prev, "    | "))?;
                }
            }
            for e in &p.events {
                let time = e.time.as_deref().unwrap_or("?");
                writeln!(f, "  event {time} {} {} (x{}): {}", e.kind, e.reason, e.count, e.message)?;
            }
        }
        Ok(())
    }
}
