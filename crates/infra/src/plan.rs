//! A Plan: the DAG of steps that brings a suite's environment up, and what a run of it recorded
//! (start, end and duration per step, the critical path).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::backend::Backend;
use crate::error::InfraError;
use crate::model::{Endpoint, Image, Manifests, Workload};
use crate::run::Run;

/// What a step does, naming its component: the runner matches on this, never on id strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "component", rename_all = "snake_case")]
pub enum StepKind {
    /// The backend's own setup (podman: the run's network; kind: the cluster and namespace).
    Setup,
    /// Build a component's artifact (a binary, an image).
    Prepare(String),
    /// Put a component's built image where the cluster finds it (kind: load; cluster: push).
    Load(String),
    /// Start a component's service and wait until it is ready.
    Start(String),
    /// Run a component's one-shot job.
    Job(String),
    /// Apply a component's manifests, namespaces and CRDs first (`<name>-api`, what dependents
    /// need), then the rest until ready (`<name>`, what the suite needs).
    ApplyApi(String),
    /// The second half of a manifests workload: everything else, until ready.
    Apply(String),
    /// Keep the migrated database of a component (PostgreSQL) as a template for later runs.
    /// It runs in the background: the run is ready without it (see [`Step::background`]).
    Snapshot(String),
}
/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Its id, e.g. `postgres` or `build-datastorage`.
    pub id: String,
    /// Steps that must be ready before it starts.
    pub needs: Vec<String>,
    /// What it does, for people.
    pub description: String,
    /// What it does, for the runner.
    pub kind: StepKind,
    /// The commands, images, files and environment it will use, as values (secrets hidden).
    pub actions: Vec<String>,
}

impl Step {
    /// Whether the step runs once the run is ready, beside its use, instead of before: the run
    /// does not need what it makes (a template for later runs), so nobody should wait for it.
    pub fn background(&self) -> bool {
        matches!(self.kind, StepKind::Snapshot(_))
    }
}

/// The DAG of steps for a suite on a backend.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The backend.
    pub backend: String,
    /// The steps, each after the steps it needs.
    pub steps: Vec<Step>,
    /// Each service as planned (with planned endpoints): what prepare steps build from.
    #[serde(skip)]
    pub services: BTreeMap<String, crate::model::Service>,
    /// Each manifests workload as planned (Tekton, the controller).
    #[serde(skip)]
    pub manifests: BTreeMap<String, Manifests>,
    /// Components of the suite this backend does not run, and why (Tekton on podman).
    pub skipped: Vec<(String, String)>,
}

impl Plan {
    /// The plan for `run`'s suite on `backend`: setup first, prepare steps at once, every
    /// component after the components it needs, each rendered with planned endpoints.
    pub fn new(run: &Run, backend: &dyn Backend) -> Result<Plan, InfraError> {
        let mut steps = Vec::new();
        let setup = backend.setup().map(|description| {
            steps.push(Step {
                id: "setup".into(),
                needs: vec![],
                description,
                kind: StepKind::Setup,
                actions: backend.setup_actions(run),
            });
            "setup".to_string()
        });
        let mut planned: BTreeMap<String, Endpoint> = BTreeMap::new();
        let mut services = BTreeMap::new();
        let mut manifests = BTreeMap::new();
        let mut skipped = Vec::new();
        // The step a dependent of each component waits for.
        let mut ready_step: BTreeMap<String, String> = BTreeMap::new();
        for name in &run.suite.components {
            let component = run.component(name)?;
            let placement = backend.placement(run, name);
            let needs: Vec<String> = component
                .needs()
                .iter()
                .chain(component.uses())
                .filter_map(|n| ready_step.get(*n).cloned())
                .collect();
            let workload = run.planned_workload(name, placement, &planned)?;
            if let Workload::Manifests(_) = &workload
                && !backend.kubernetes()
            {
                skipped.push((
                    name.clone(),
                    format!("needs a Kubernetes backend (kind, cluster), not {}", backend.name()),
                ));
                continue;
            }
            // Prepare (and load) steps for an image, at once: only the start waits for them.
            let mut image_steps = |image: Option<&Image>, service: Option<&crate::model::Service>| {
                let mut start_needs: Vec<String> = setup.iter().cloned().collect();
                let description = match (service, image) {
                    (Some(service), _) => backend.prepare(name, service),
                    (None, Some(image)) => backend.prepare_image(name, image),
                    (None, None) => None,
                };
                if let Some(description) = description {
                    let id = format!("build-{name}");
                    steps.push(Step {
                        id: id.clone(),
                        needs: vec![],
                        description,
                        kind: StepKind::Prepare(name.clone()),
                        actions: vec![],
                    });
                    let load = image.or(service.map(|s| &s.image)).and_then(|i| backend.load(name, i));
                    match load {
                        Some(description) => {
                            let load_id = format!("load-{name}");
                            steps.push(Step {
                                id: load_id.clone(),
                                needs: setup.iter().cloned().chain([id]).collect(),
                                description,
                                kind: StepKind::Load(name.clone()),
                                actions: vec![],
                            });
                            start_needs.push(load_id);
                        }
                        None => start_needs.push(id),
                    }
                }
                start_needs
            };
            match workload {
                Workload::Service(service) => {
                    let mut start_needs = image_steps(None, Some(&service));
                    start_needs.extend(needs);
                    planned.insert(name.clone(), backend.planned_endpoint(run, name, &service));
                    steps.push(Step {
                        id: name.clone(),
                        needs: start_needs,
                        description: component.about().to_string(),
                        kind: StepKind::Start(name.clone()),
                        actions: backend.render(run, name, &service),
                    });
                    ready_step.insert(name.clone(), name.clone());
                    services.insert(name.clone(), *service);
                }
                Workload::Job(job) => {
                    let actions = match &job {
                        crate::model::Job::Migrations { dir, selection, database } => vec![format!(
                            "migrate {} from {} as the {database} endpoint's user{}",
                            match selection {
                                migrations::Selection::All => "all".to_string(),
                                migrations::Selection::Tables(t) => format!("--tables {}", t.join(",")),
                            },
                            dir.strip_prefix(&run.root).unwrap_or(dir).display(),
                            backend.job_route(database)
                        )],
                    };
                    steps.push(Step {
                        id: name.clone(),
                        needs,
                        description: component.about().to_string(),
                        kind: StepKind::Job(name.clone()),
                        actions,
                    });
                    ready_step.insert(name.clone(), name.clone());
                    // Nothing waits for it: it runs once the run is ready (a background step).
                    let crate::model::Job::Migrations { database, .. } = &job;
                    if let Some((description, actions)) = backend.snapshot(run, database) {
                        steps.push(Step {
                            id: "snapshot".into(),
                            needs: vec![name.clone()],
                            description,
                            kind: StepKind::Snapshot(database.to_string()),
                            actions,
                        });
                    }
                }
                Workload::Manifests(m) => {
                    let image = match &m {
                        Manifests::Controller(spec) => Some(&spec.image),
                        Manifests::Tekton => None,
                    };
                    let mut api_needs = image_steps(image, None);
                    api_needs.extend(needs);
                    let api = format!("{name}-api");
                    let (api_actions, actions) = backend.render_manifests(run, name, &m);
                    steps.push(Step {
                        id: api.clone(),
                        needs: api_needs,
                        description: format!("{name}: namespaces and CRDs applied, CRDs Established"),
                        kind: StepKind::ApplyApi(name.clone()),
                        actions: api_actions,
                    });
                    steps.push(Step {
                        id: name.clone(),
                        needs: vec![api.clone()],
                        description: component.about().to_string(),
                        kind: StepKind::Apply(name.clone()),
                        actions,
                    });
                    ready_step.insert(name.clone(), api);
                    manifests.insert(name.clone(), m);
                }
            }
        }
        Ok(Plan { backend: backend.name().to_string(), steps, services, manifests, skipped })
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The chain of steps whose durations add up to the longest wait through the DAG, and that sum.
    pub fn critical_path(&self, durations: &BTreeMap<String, u128>) -> (Vec<String>, u128) {
        let mut finish: BTreeMap<&str, (u128, Option<&str>)> = BTreeMap::new();
        for s in &self.steps {
            let own = durations.get(&s.id).copied().unwrap_or(0);
            let before = s
                .needs
                .iter()
                .filter_map(|n| finish.get(n.as_str()).map(|(t, _)| (*t, n.as_str())))
                .max_by_key(|(t, _)| *t);
            finish.insert(&s.id, (own + before.map_or(0, |b| b.0), before.map(|b| b.1)));
        }
        // Ties go to the step latest in plan order: the one that waited for the others.
        let Some((last, total)) =
            self.steps.iter().map(|s| (s.id.as_str(), finish[s.id.as_str()].0)).max_by_key(|(_, t)| *t)
        else {
            return (vec![], 0);
        };
        let mut path = vec![last.to_string()];
        let mut at = finish[last].1;
        while let Some(id) = at {
            path.push(id.to_string());
            at = finish[id].1;
        }
        path.reverse();
        (path, total)
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (component, why) in &self.skipped {
            writeln!(f, "  {component:<18} skipped: {why}")?;
        }
        for s in &self.steps {
            let after = if s.needs.is_empty() {
                "at once".to_string()
            } else {
                format!("after {}", s.needs.join(", "))
            };
            writeln!(f, "  {:<18} {after}: {}", s.id, s.description)?;
            for a in &s.actions {
                writeln!(f, "      {a}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let run = crate::run::tests::run(
            "components: [postgres, redis, migrations, datastorage]\nmigrations: all\n",
        );
        Plan::new(&run, &crate::backend::local::Local::new()).unwrap()
    }

    #[test]
    fn local_plan_shape() {
        let p = plan();
        let order: Vec<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            order,
            ["postgres", "redis", "migrations", "snapshot", "build-datastorage", "datastorage"]
        );
        // The template is kept beside DataStorage's start: nothing waits for it.
        assert_eq!(p.step("snapshot").unwrap().needs, ["migrations"]);
        assert_eq!(p.step("snapshot").unwrap().kind, StepKind::Snapshot("postgres".into()));
        assert!(p.steps.iter().all(|s| !s.needs.contains(&"snapshot".to_string())));
        assert_eq!(
            p.step("datastorage").unwrap().needs,
            ["build-datastorage", "postgres", "redis", "migrations"]
        );
        assert_eq!(p.step("migrations").unwrap().needs, ["postgres"]);
        assert_eq!(p.step("build-datastorage").unwrap().kind, StepKind::Prepare("datastorage".into()));
    }

    #[test]
    fn critical_path_follows_the_longest_chain() {
        let d: BTreeMap<String, u128> = [
            ("build-datastorage", 900),
            ("postgres", 700),
            ("redis", 50),
            ("migrations", 300),
            ("datastorage", 200),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(
            plan().critical_path(&d),
            (vec!["postgres".into(), "migrations".into(), "datastorage".into()], 1200)
        );
        let mut slow_build = d.clone();
        slow_build.insert("build-datastorage".into(), 5000);
        assert_eq!(
            plan().critical_path(&slow_build),
            (vec!["build-datastorage".into(), "datastorage".into()], 5200)
        );
    }
}
