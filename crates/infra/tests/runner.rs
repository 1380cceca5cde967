//! The plan runner with steps the test completes by hand: parallel starts, dependency gating,
//! the first failure stopping the rest, interrupts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use infra::runner::{self, BoxFuture, Event, Outcome, Progress, StepFailure, StepRunner};
use infra::{Plan, RunReport};
use tokio::sync::{mpsc, oneshot};

type Done = oneshot::Sender<Result<String, StepFailure>>;

/// Steps that finish when the test says so.
struct Manual {
    pending: Mutex<HashMap<String, oneshot::Receiver<Result<String, StepFailure>>>>,
}

impl StepRunner for Manual {
    fn run_step(self: Arc<Self>, id: String, progress: Progress) -> BoxFuture<Result<String, StepFailure>> {
        let rx = self.pending.lock().unwrap().remove(&id).expect("each step runs once");
        Box::pin(async move {
            progress.say("working");
            rx.await.unwrap_or_else(|_| Err(StepFailure::new("dropped")))
        })
    }
}

fn plan() -> Plan {
    let registry = infra::Registry::builtin();
    let suite = infra::suite::parse(
        "name: s\ncomponents: [postgres, redis, migrations, datastorage]\nmigrations: all\ntest: {command: [\"true\"]}\n",
        Path::new("s.yaml"),
        &registry,
    )
    .unwrap();
    let state = infra::RunState { id: "s".into(), dir: "/runs/s".into(), ..Default::default() };
    let run = infra::run::Run::new(Path::new("/workspace"), suite, registry, Default::default(), state);
    Plan::new(&run, &infra::backend::local::Local::new()).unwrap()
}

struct Harness {
    done: HashMap<String, Done>,
    events: mpsc::UnboundedReceiver<Event>,
    run: tokio::task::JoinHandle<RunReport>,
    interrupt: Option<oneshot::Sender<()>>,
}

fn start() -> Harness {
    let plan = plan();
    let mut done = HashMap::new();
    let mut pending = HashMap::new();
    for s in &plan.steps {
        let (tx, rx) = oneshot::channel();
        done.insert(s.id.clone(), tx);
        pending.insert(s.id.clone(), rx);
    }
    let runner = Arc::new(Manual { pending: Mutex::new(pending) });
    let (ev_tx, events) = mpsc::unbounded_channel();
    let (int_tx, int_rx) = oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        runner::run(
            &plan,
            runner,
            async {
                let _ = int_rx.await;
            },
            move |e| {
                let _ = ev_tx.send(e.clone());
            },
        )
        .await
    });
    Harness { done, events, run, interrupt: Some(int_tx) }
}

impl Harness {
    /// Steps started until `n` have been seen.
    async fn started(&mut self, n: usize) -> Vec<String> {
        let mut seen = Vec::new();
        while seen.len() < n {
            match self.events.recv().await.expect("run still going") {
                Event::Started { step, .. } => seen.push(step),
                _ => continue,
            }
        }
        seen.sort();
        seen
    }

    fn finish(&mut self, step: &str, result: Result<&str, &str>) {
        let r = result.map(str::to_string).map_err(StepFailure::new);
        self.done.remove(step).unwrap().send(r).unwrap();
    }
}

fn outcome(report: &RunReport, step: &str) -> Outcome {
    report.steps.iter().find(|s| s.step == step).unwrap().outcome.clone()
}

#[tokio::test]
async fn independent_steps_start_together_and_dependents_wait_for_ready() {
    let mut h = start();
    assert_eq!(h.started(3).await, ["build-datastorage", "postgres", "redis"]);
    h.finish("redis", Ok("redis up"));
    h.finish("postgres", Ok("pg up"));
    assert_eq!(h.started(1).await, ["migrations"], "migrations waits for postgres only");
    h.finish("migrations", Ok("8 applied"));
    h.finish("build-datastorage", Ok("built"));
    // The snapshot step would be ready to start too, but it is a background step.
    assert_eq!(h.started(1).await, ["datastorage"], "datastorage waits for all four, not the template");
    h.finish("datastorage", Ok("healthy"));
    let report = h.run.await.unwrap();
    assert!(report.ok(), "a run is ready without its background steps");
    let snapshot = report.step("snapshot").unwrap();
    assert_eq!((&snapshot.outcome, snapshot.start_ms), (&Outcome::Background, None), "left to the caller");
    assert!(!report.critical_path.contains(&"snapshot".to_string()));
    assert_eq!(report.critical_path.last().map(String::as_str), Some("datastorage"));
    // The report says on its own what each step waited for, and when each of those was ready.
    let ds = report.step("datastorage").unwrap();
    assert_eq!(ds.needs, plan().step("datastorage").unwrap().needs);
    let waited = report.waited_for(ds);
    assert_eq!(waited.len(), 4, "{waited:?}");
    for (need, ready_at) in waited {
        assert_eq!(ready_at, report.step(need).unwrap().end_ms, "{need}");
        assert!(ready_at <= ds.start_ms, "{need} was ready before datastorage started");
    }
    assert!(!ds.description.is_empty());
}

#[tokio::test]
async fn the_first_failure_stops_the_rest() {
    let mut h = start();
    h.started(3).await;
    h.finish("postgres", Err("password authentication failed"));
    let report = h.run.await.unwrap();
    assert!(!report.ok());
    let (step, failure) = report.failure.clone().unwrap();
    assert_eq!((step.as_str(), failure.message.as_str()), ("postgres", "password authentication failed"));
    assert_eq!(outcome(&report, "postgres"), Outcome::Failed);
    assert_eq!(outcome(&report, "redis"), Outcome::Stopped);
    assert_eq!(outcome(&report, "build-datastorage"), Outcome::Stopped);
    assert_eq!(outcome(&report, "migrations"), Outcome::NotStarted);
    assert_eq!(outcome(&report, "datastorage"), Outcome::NotStarted);
}

#[tokio::test]
async fn an_interrupt_stops_running_steps_and_starts_no_more() {
    let mut h = start();
    h.started(3).await;
    h.finish("postgres", Ok("pg up"));
    h.started(1).await;
    h.interrupt.take().unwrap().send(()).unwrap();
    let report = h.run.await.unwrap();
    assert!(report.interrupted && !report.ok());
    assert_eq!(outcome(&report, "postgres"), Outcome::Ready);
    assert_eq!(outcome(&report, "migrations"), Outcome::Stopped);
    assert_eq!(outcome(&report, "datastorage"), Outcome::NotStarted);
}
