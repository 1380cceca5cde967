//! Carrying out a plan's steps: setup and prepare steps and service starts go to the backend;
//! every start is gated on its probe; jobs (migrations) run here, the same on every backend.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::model::{Job, View, Workload};
use crate::plan::{Plan, StepKind};
use crate::run::Run;
use crate::runner::{BoxFuture, Progress, StepFailure, StepRunner};

/// Runs a plan's steps on a backend for a run.
pub struct Executor {
    plan: Plan,
    backend: Arc<dyn Backend>,
    run: Arc<Run>,
}

impl Executor {
    /// An executor of `plan` for `run` on `backend`.
    pub fn new(plan: Plan, backend: Arc<dyn Backend>, run: Arc<Run>) -> Self {
        Self { plan, backend, run }
    }

    async fn start(&self, component: String, progress: Progress) -> Result<String, StepFailure> {
        let started =
            self.backend.clone().start(self.run.clone(), component.clone(), progress.clone()).await?;
        let mut probe = started.probe;
        wait_ready(&mut probe, self.run.suite.ready_timeout, &progress).await?;
        self.run.publish(&component, started.endpoint)?;
        Ok(started.summary)
    }

    async fn job(&self, component: String, progress: Progress) -> Result<String, StepFailure> {
        let placement = crate::model::Placement::Host { dir: self.run.dir().join(&component) };
        let endpoints = self.run.endpoints();
        let workload = self
            .run
            .workload(&component, placement, &endpoints, None, Default::default())
            .map_err(|e| StepFailure::new(e.to_string()))?;
        let Workload::Job(Job::Migrations { dir, selection, database }) = workload else {
            return Err(StepFailure::new(format!("{component} is not a job")));
        };
        let endpoint = endpoints
            .get(database)
            .ok_or_else(|| StepFailure::new(format!("{database} has published no endpoint")))?;
        let set = migrations::MigrationSet::load(&dir).map_err(|e| StepFailure::new(e.to_string()))?;
        let url = endpoint.url(View::Host);
        let client = migrations::connect(url.expose()).await.map_err(|e| StepFailure::new(e.to_string()))?;
        let applied = migrations::up(&client, &set, &selection, &migrations::Options::default(), &mut |e| {
            if let migrations::Event::Started { name, .. } = e {
                progress.say(format!("applying {name}"));
            }
        })
        .await;
        let report = client.explained(applied).await.map_err(|e| StepFailure {
            message: e.to_string().lines().next().unwrap_or("").to_string(),
            diagnosis: Some(e.to_string()),
            diagnosis_json: None,
        })?;
        let applied = report.done.len();
        match self.run.from_template() {
            Some(id) if applied == 0 => Ok(format!("nothing to apply: from snapshot {id}")),
            Some(id) => Ok(format!("{applied} applied on top of snapshot {id}")),
            None => Ok(format!("{applied} applied")),
        }
    }
}

impl StepRunner for Executor {
    fn run_step(self: Arc<Self>, id: String, progress: Progress) -> BoxFuture<Result<String, StepFailure>> {
        Box::pin(async move {
            let Some(step) = self.plan.step(&id) else {
                return Err(StepFailure::new(format!("the plan has no step `{id}`")));
            };
            match step.kind.clone() {
                StepKind::Setup => self.backend.clone().run_setup(self.run.clone()).await,
                StepKind::Prepare(component) => {
                    if let Some(service) = self.plan.services.get(&component).cloned() {
                        return self
                            .backend
                            .clone()
                            .run_prepare(self.run.clone(), component, service, progress)
                            .await;
                    }
                    match self.plan.manifests.get(&component) {
                        Some(crate::model::Manifests::Controller(spec)) => {
                            let image = spec.image.clone();
                            self.backend
                                .clone()
                                .run_prepare_image(self.run.clone(), component, image, progress)
                                .await
                        }
                        _ => Err(StepFailure::new(format!("{component} has nothing to build"))),
                    }
                }
                StepKind::Load(component) => {
                    self.backend.clone().run_load(self.run.clone(), component, progress).await
                }
                StepKind::ApplyApi(component) => {
                    self.backend.clone().apply(self.run.clone(), component, true, progress).await
                }
                StepKind::Apply(component) => {
                    self.backend.clone().apply(self.run.clone(), component, false, progress).await
                }
                StepKind::Start(component) => self.start(component, progress).await,
                StepKind::Job(component) => self.job(component, progress).await,
                // The runner leaves background steps to its caller; run here, it does the same work.
                StepKind::Snapshot(_) => {
                    Ok(crate::background::run(&self.run.state(), &move |m| progress.say(m)).await)
                }
            }
        })
    }
}

/// Waits for a probe under the suite's ready timeout, relaying progress; a failure carries the diagnosis.
pub async fn wait_ready(
    probe: &mut dyn wait::Probe,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), StepFailure> {
    let p = progress.clone();
    let result = wait::Waiter::new(timeout)
        .progress_every(Duration::from_secs(2))
        .on_progress(move |pr| p.say(pr.to_string()))
        .wait_for(probe)
        .await;
    result.map(drop).map_err(|e| StepFailure {
        message: e.to_string(),
        diagnosis: Some(e.diagnosis().to_string()),
        diagnosis_json: serde_json::from_str(&e.diagnosis().to_json()).ok(),
    })
}
