//! Running a Plan: every step whose needs are ready starts at once; the first failure (or an
//! interrupt) stops the rest; start, end and duration of every step are recorded.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::plan::Plan;

/// A boxed future, as step runners return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Carries out steps by id; a backend implements it.
pub trait StepRunner: Send + Sync + 'static {
    /// Runs step `id` until it is ready (or failed), reporting progress on `progress`.
    fn run_step(self: Arc<Self>, id: String, progress: Progress) -> BoxFuture<Result<String, StepFailure>>;
}

/// Why a step failed, with the evidence.
#[derive(Debug, Clone, Serialize)]
pub struct StepFailure {
    /// One line saying what went wrong.
    pub message: String,
    /// A diagnosis for people (log tails, probe states), if one was gathered.
    pub diagnosis: Option<String>,
    /// The same diagnosis for tools.
    pub diagnosis_json: Option<serde_json::Value>,
}

impl StepFailure {
    /// A failure with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), diagnosis: None, diagnosis_json: None }
    }
}

/// Where a step reports what it is waiting for.
#[derive(Clone)]
pub struct Progress {
    id: String,
    tx: mpsc::UnboundedSender<Event>,
}

impl Progress {
    /// Reports the step's current state, e.g. "waiting for /readyz: 503 schema_incomplete".
    pub fn say(&self, message: impl Into<String>) {
        let _ = self.tx.send(Event::Progress { step: self.id.clone(), message: message.into() });
    }
}

/// What happens during a run, for the terminal or `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A step started.
    Started {
        /// The step.
        step: String,
        /// Milliseconds since the run started.
        at_ms: u128,
    },
    /// A step reported progress.
    Progress {
        /// The step.
        step: String,
        /// What it said.
        message: String,
    },
    /// A step is ready.
    Ready {
        /// The step.
        step: String,
        /// How long it took.
        duration_ms: u128,
        /// What it produced, for people.
        summary: String,
    },
    /// A step failed.
    Failed {
        /// The step.
        step: String,
        /// Why.
        message: String,
    },
}

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It became ready.
    Ready,
    /// It failed.
    Failed,
    /// It was stopped because another step failed or the run was interrupted.
    Stopped,
    /// It never started.
    NotStarted,
    /// A background step: the run was ready without it, and it runs (or ran) after.
    Background,
}

/// One step's record.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// The step.
    pub step: String,
    /// What it does, for people (the plan's description).
    pub description: String,
    /// The steps it waited for (the plan's needs), so a report alone can say why it started when it did.
    pub needs: Vec<String>,
    /// Milliseconds after the run started that it started.
    pub start_ms: Option<u128>,
    /// Milliseconds after the run started that it ended.
    pub end_ms: Option<u128>,
    /// How it ended.
    pub outcome: Outcome,
    /// What it said it did once ready, e.g. `9 applied` or `nothing to apply: from snapshot <id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// A background step: it runs once the run is ready, and nothing waits for it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
}

impl StepRecord {
    /// How long it ran, when it started and ended.
    pub fn duration_ms(&self) -> Option<u128> {
        Some(self.end_ms? - self.start_ms?)
    }
}

#[cfg(test)]
impl StepRecord {
    /// A record for the report tests: `span` is (start, end) in ms.
    pub(crate) fn for_test(id: &str, needs: &[&str], span: Option<(u128, u128)>, outcome: Outcome) -> Self {
        StepRecord {
            step: id.into(),
            description: format!("start {id}"),
            needs: needs.iter().map(|n| n.to_string()).collect(),
            start_ms: span.map(|s| s.0),
            end_ms: span.map(|s| s.1),
            outcome,
            summary: None,
            background: false,
        }
    }
}

/// What a run of a plan did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Every step, in plan order.
    pub steps: Vec<StepRecord>,
    /// Wall time of the whole run.
    pub wall_ms: u128,
    /// The critical path (longest chain of recorded durations) and its length.
    pub critical_path: Vec<String>,
    /// The sum of the critical path's durations.
    pub critical_ms: u128,
    /// The sum of all steps' durations: the time the same steps take one after another.
    pub sequential_ms: u128,
    /// The step that failed and why.
    pub failure: Option<(String, StepFailure)>,
    /// Whether the run was interrupted.
    pub interrupted: bool,
}

impl RunReport {
    /// Whether every step became ready.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
            && !self.interrupted
            && self.steps.iter().all(|s| matches!(s.outcome, Outcome::Ready | Outcome::Background))
    }

    /// The record of step `id`.
    pub fn step(&self, id: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.step == id)
    }

    /// When each of `step`'s needs became ready (milliseconds after the run started), in the
    /// plan's order; a need that never became ready has `None`.
    pub fn waited_for<'a>(&self, step: &'a StepRecord) -> Vec<(&'a str, Option<u128>)> {
        let ready_at = |n: &str| self.step(n).filter(|r| r.outcome == Outcome::Ready).and_then(|r| r.end_ms);
        step.needs.iter().map(|n| (n.as_str(), ready_at(n))).collect()
    }
}

/// Runs `plan` with `runner` until every step is ready, one fails, or `interrupt` completes.
/// Background steps (see [`crate::plan::Step::background`]) are not run: their records say
/// [`Outcome::Background`], and the caller runs them once it has what it waited for.
pub async fn run<R: StepRunner>(
    plan: &Plan,
    runner: Arc<R>,
    interrupt: impl Future<Output = ()>,
    on_event: impl FnMut(&Event),
) -> RunReport {
    run_limited(plan, runner, usize::MAX, interrupt, on_event).await
}

/// Like [`run`], with at most `limit` steps running at once (1: one after another, for comparison).
pub async fn run_limited<R: StepRunner>(
    plan: &Plan,
    runner: Arc<R>,
    limit: usize,
    interrupt: impl Future<Output = ()>,
    mut on_event: impl FnMut(&Event),
) -> RunReport {
    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut records: BTreeMap<String, StepRecord> = plan
        .steps
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                StepRecord {
                    step: s.id.clone(),
                    description: s.description.clone(),
                    needs: s.needs.clone(),
                    start_ms: None,
                    end_ms: None,
                    outcome: if s.background() { Outcome::Background } else { Outcome::NotStarted },
                    summary: None,
                    background: s.background(),
                },
            )
        })
        .collect();
    let mut tasks: JoinSet<Result<String, StepFailure>> = JoinSet::new();
    // A task that panics comes back without its output, so its step is looked up by task id.
    let mut task_steps: std::collections::HashMap<tokio::task::Id, String> = Default::default();
    let mut failure = None;
    let mut interrupted = false;
    tokio::pin!(interrupt);

    loop {
        for s in &plan.steps {
            let ready_to_start = records[&s.id].outcome == Outcome::NotStarted
                && records[&s.id].start_ms.is_none()
                && s.needs.iter().all(|n| records.get(n).is_some_and(|r| r.outcome == Outcome::Ready));
            if ready_to_start && failure.is_none() && !interrupted && tasks.len() < limit {
                let at_ms = started.elapsed().as_millis();
                records.get_mut(&s.id).expect("known step").start_ms = Some(at_ms);
                on_event(&Event::Started { step: s.id.clone(), at_ms });
                let progress = Progress { id: s.id.clone(), tx: tx.clone() };
                let fut = runner.clone().run_step(s.id.clone(), progress);
                let handle = tasks.spawn(fut);
                task_steps.insert(handle.id(), s.id.clone());
            }
        }
        if tasks.is_empty() {
            break;
        }
        tokio::select! {
            Some(joined) = tasks.join_next_with_id() => {
                let (id, result) = match joined {
                    Ok((task, r)) => (task_steps.remove(&task).unwrap_or_default(), r),
                    Err(e) => (
                        task_steps.remove(&e.id()).unwrap_or_default(),
                        Err(StepFailure::new(format!("the step crashed: {e}"))),
                    ),
                };
                let now = started.elapsed().as_millis();
                while let Ok(ev) = rx.try_recv() {
                    on_event(&ev);
                }
                if let Some(rec) = records.get_mut(&id) {
                    rec.end_ms = Some(now);
                    let duration_ms = now - rec.start_ms.unwrap_or(now);
                    match result {
                        Ok(summary) => {
                            rec.outcome = Outcome::Ready;
                            rec.summary = Some(summary.clone());
                            on_event(&Event::Ready { step: id.clone(), duration_ms, summary });
                        }
                        Err(f) => {
                            rec.outcome = Outcome::Failed;
                            on_event(&Event::Failed { step: id.clone(), message: f.message.clone() });
                            failure = Some((id, f));
                        }
                    }
                }
                if failure.is_some() {
                    stop_all(&mut tasks, &mut records, started).await;
                }
            }
            Some(ev) = rx.recv() => on_event(&ev),
            () = &mut interrupt, if !interrupted => {
                interrupted = true;
                stop_all(&mut tasks, &mut records, started).await;
            }
        }
    }
    let durations: BTreeMap<String, u128> =
        records.values().filter_map(|r| Some((r.step.clone(), r.end_ms? - r.start_ms?))).collect();
    let (critical_path, critical_ms) = plan.critical_path(&durations);
    RunReport {
        steps: plan.steps.iter().map(|s| records[&s.id].clone()).collect(),
        wall_ms: started.elapsed().as_millis(),
        critical_path,
        critical_ms,
        sequential_ms: durations.values().sum(),
        failure,
        interrupted,
    }
}

/// Aborts every running step and marks it stopped.
async fn stop_all(
    tasks: &mut JoinSet<Result<String, StepFailure>>,
    records: &mut BTreeMap<String, StepRecord>,
    started: Instant,
) {
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let now = started.elapsed().as_millis();
    for rec in records.values_mut() {
        if rec.start_ms.is_some() && rec.end_ms.is_none() {
            rec.end_ms = Some(now);
            rec.outcome = Outcome::Stopped;
        }
    }
}
