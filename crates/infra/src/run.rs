//! One run as the steps share it: the suite, the run's secrets and images, the endpoints steps
//! have published, the artifacts prepare steps built, and the recorded state. Steps publish
//! here and dependents read from here; nothing reaches into another step's internals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::components::Registry;
use crate::error::InfraError;
use crate::model::{Component, Ctx, Endpoint, Placement, Secrets, Workload};
use crate::runner::StepFailure;
use crate::state::{Resource, RunState};
use crate::suite::Suite;

/// What a prepare step built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    /// An executable on this machine.
    Binary(PathBuf),
    /// An image the engine has.
    Image(String),
}

/// A run in progress.
pub struct Run {
    /// The workspace root.
    pub root: PathBuf,
    /// The suite.
    pub suite: Suite,
    /// The components.
    pub registry: Registry,
    /// Per-run passwords.
    pub secrets: Secrets,
    /// Images per component (suite file, then flags).
    pub images: BTreeMap<String, String>,
    /// Whether the local backend may start PostgreSQL from, and keep, migrated templates
    /// (off with `--no-cache`).
    pub cache: bool,
    state: Mutex<RunState>,
    from_template: Mutex<Option<String>>,
    endpoints: Mutex<BTreeMap<String, Endpoint>>,
    artifacts: Mutex<BTreeMap<String, Artifact>>,
}

impl Run {
    /// A run of `suite` recorded in `state`.
    pub fn new(
        root: &Path,
        suite: Suite,
        registry: Registry,
        images: BTreeMap<String, String>,
        state: RunState,
    ) -> Self {
        let secrets = Secrets::generate(["postgres", "redis"]);
        Self {
            root: root.to_path_buf(),
            suite,
            registry,
            secrets,
            images,
            cache: true,
            state: Mutex::new(state),
            from_template: Mutex::new(None),
            endpoints: Mutex::new(BTreeMap::new()),
            artifacts: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts generating DataStorage's signing pair when the suite runs DataStorage: for a run
    /// that starts things, not for a plan or a dry run (they render placeholders).
    pub fn with_signing(mut self) -> Self {
        if self.suite.components.iter().any(|c| c == "datastorage") {
            self.secrets = self.secrets.with_signing();
        }
        self
    }

    /// The migrated template (see [`crate::cache`]) the run's database was copied from, if
    /// any: its migrations are already applied. (A template the run wants kept is in its state.)
    pub fn from_template(&self) -> Option<String> {
        self.from_template.lock().expect("template lock").clone()
    }

    /// Records the migrated template the run's database was copied from.
    pub fn set_from_template(&self, id: String) {
        *self.from_template.lock().expect("template lock") = Some(id);
    }

    /// The run's id.
    pub fn id(&self) -> String {
        self.state.lock().expect("state lock").id.clone()
    }

    /// The run directory.
    pub fn dir(&self) -> PathBuf {
        self.state.lock().expect("state lock").dir.clone()
    }

    /// A copy of the recorded state.
    pub fn state(&self) -> RunState {
        self.state.lock().expect("state lock").clone()
    }

    /// Changes the recorded state and saves it (0600).
    pub fn update(&self, f: impl FnOnce(&mut RunState)) -> Result<(), StepFailure> {
        let mut state = self.state.lock().expect("state lock");
        f(&mut state);
        state.save().map_err(|e| StepFailure::new(format!("saving the run state: {e}")))
    }

    /// Records a resource as created, before anything waits on it, so teardown finds it.
    pub fn created(&self, resource: Resource) -> Result<(), StepFailure> {
        self.update(|s| s.resources.push(resource))
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Result<Arc<dyn Component>, InfraError> {
        self.registry.get(name).cloned().ok_or_else(|| InfraError::Invalid(format!("no component `{name}`")))
    }

    /// Publishes a ready component's endpoint (and its URL to the tests, when it exports one).
    pub fn publish(&self, component: &str, endpoint: Endpoint) -> Result<(), StepFailure> {
        let var = self.registry.get(component).and_then(|c| c.env_var());
        let url = endpoint.url(crate::model::View::Host);
        // The tests' token goes to them by file: the value itself is never in the state or printed.
        let token = match &endpoint.kind {
            crate::model::EndpointKind::KubeApi { tokens, .. } => {
                tokens.get(&crate::components::tests_account(&self.suite.name)).cloned()
            }
            _ => None,
        };
        // A service on TLS: its clients get the CA as a file beside its URL (`DATASTORAGE_CA_FILE`).
        let ca = match (&endpoint.kind, var) {
            (crate::model::EndpointKind::Http { ca: Some(ca), .. }, Some(var)) => {
                let path = self.dir().join(format!("{component}-ca.crt"));
                procs::write_file(&path, ca.as_bytes(), 0o644)
                    .map_err(|e| StepFailure::new(format!("writing {component}'s CA: {e}")))?;
                Some((ca_var(var), path))
            }
            _ => None,
        };
        self.endpoints.lock().expect("endpoints lock").insert(component.to_string(), endpoint.clone());
        self.update(|s| {
            s.endpoints.insert(component.to_string(), endpoint);
            if let Some(var) = var {
                s.env.insert(var.to_string(), url.expose().to_string());
            }
            if let Some((var, path)) = ca {
                s.env.insert(var, path.display().to_string());
            }
            if let Some(path) = token {
                s.env.insert(crate::state::TOKEN_FILE_VAR.into(), path.display().to_string());
            }
        })
    }

    /// The endpoints published so far.
    pub fn endpoints(&self) -> BTreeMap<String, Endpoint> {
        self.endpoints.lock().expect("endpoints lock").clone()
    }

    /// Records what a prepare step built for `component`.
    pub fn set_artifact(&self, component: &str, artifact: Artifact) {
        self.artifacts.lock().expect("artifacts lock").insert(component.to_string(), artifact);
    }

    /// What the prepare step built for `component`.
    pub fn artifact(&self, component: &str) -> Option<Artifact> {
        self.artifacts.lock().expect("artifacts lock").get(component).cloned()
    }

    /// Renders `component`'s workload at `placement` with the endpoints published so far (or
    /// `planned` ones for a dry run) and the backend's chosen `port`.
    pub fn workload(
        &self,
        component: &str,
        placement: Placement,
        endpoints: &BTreeMap<String, Endpoint>,
        port: Option<u16>,
        ports: BTreeMap<String, u16>,
    ) -> Result<Workload, InfraError> {
        self.render(component, placement, endpoints, port, ports, &self.secrets)
    }

    /// Renders `component`'s workload for the plan: as [`Run::workload`], with key material
    /// replaced by placeholders so that planning waits for no key generation.
    pub fn planned_workload(
        &self,
        component: &str,
        placement: Placement,
        endpoints: &BTreeMap<String, Endpoint>,
    ) -> Result<Workload, InfraError> {
        self.render(component, placement, endpoints, None, BTreeMap::new(), &self.secrets.for_plan())
    }

    fn render(
        &self,
        component: &str,
        placement: Placement,
        endpoints: &BTreeMap<String, Endpoint>,
        port: Option<u16>,
        ports: BTreeMap<String, u16>,
        secrets: &Secrets,
    ) -> Result<Workload, InfraError> {
        let c = self.component(component)?;
        let ctx = Ctx {
            suite: &self.suite,
            root: &self.root,
            placement,
            endpoints,
            secrets,
            images: &self.images,
            port,
            ports,
        };
        c.workload(&ctx)
    }
}

/// The variable a TLS service's CA file is published in, beside its URL's: `DATASTORAGE_URL`
/// gives `DATASTORAGE_CA_FILE`.
pub fn ca_var(url_var: &str) -> String {
    format!("{}_CA_FILE", url_var.strip_suffix("_URL").unwrap_or(url_var))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run of a suite with `body` (components, migrations), under `/runs`, for plan tests.
    pub(crate) fn run(body: &str) -> Run {
        let text = format!("name: s\n{body}test: {{command: [\"true\"]}}\n");
        let registry = Registry::builtin();
        let suite = crate::suite::parse(&text, Path::new("s.yaml"), &registry).unwrap();
        let state = RunState {
            id: "s-<run>".into(),
            suite: "s".into(),
            backend: "local".into(),
            dir: PathBuf::from("/runs/s-<run>"),
            ..Default::default()
        };
        Run::new(Path::new("/workspace"), suite, registry, BTreeMap::new(), state)
    }
}
