//! Run state under `.xtask/runs/<id>/`: what a run started, so `infra status` and `infra down`
//! work from another shell, and teardown that leaves no process, port or directory behind.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Environment variable overriding the state directory (default: `.xtask` at the workspace root).
pub const STATE_DIR_ENV: &str = "XTASK_STATE_DIR";

/// The variable naming the file that holds the tests' DataStorage token.
pub const TOKEN_FILE_VAR: &str = "DATASTORAGE_TOKEN_FILE";
/// The variable a test command gets the token itself in, read from that file when it starts.
pub const TOKEN_VAR: &str = "DATASTORAGE_TOKEN";

/// The environment a test command gets: the run's variables, and the token read from its file.
pub fn test_env(state: &RunState) -> std::io::Result<BTreeMap<String, String>> {
    let mut env = state.env.clone();
    if let Some(path) = state.env.get(TOKEN_FILE_VAR) {
        let token = std::fs::read_to_string(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("reading the tests' token {path}: {e}")))?;
        env.insert(TOKEN_VAR.into(), token.trim().to_string());
    }
    Ok(env)
}

/// Something a run created, recorded before anything waits on it, removed in reverse order by
/// the backend that created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Resource {
    /// A process on this machine (local backend).
    Process {
        /// The component it serves.
        component: String,
        /// Its process id.
        pid: u32,
        /// The program, e.g. `postgres`.
        program: String,
        /// The loopback port it listens on.
        port: Option<u16>,
        /// Its log file.
        log: Option<PathBuf>,
    },
    /// A container (podman backend).
    Container {
        /// The component it serves.
        component: String,
        /// Its name.
        name: String,
    },
    /// A container network (podman backend).
    Network {
        /// Its name.
        name: String,
    },
    /// A secret in the container engine's store (podman backend).
    Secret {
        /// Its name.
        name: String,
    },
    /// A kind cluster this run created (kind backend; a reused cluster is not recorded).
    Cluster {
        /// Its name.
        name: String,
        /// The engine kind ran it on (`docker`, `podman`).
        provider: String,
    },
    /// An xtask of ours finishing the run's background steps after the xtask that brought it up
    /// exited (a kept `infra up`); teardown waits for it before it stops anything else.
    Background {
        /// Its process id.
        pid: u32,
        /// Its program, to tell it from a process that got its pid later.
        program: String,
        /// What it does, for people.
        task: String,
        /// Its log file.
        log: PathBuf,
    },
    /// The run's namespace on a cluster (kind and cluster backends); deleting it deletes
    /// everything the run applied in it.
    Namespace {
        /// Its name.
        name: String,
        /// The kubeconfig that reaches the cluster.
        kubeconfig: PathBuf,
        /// The context in it, when not the current one.
        context: Option<String>,
    },
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Process { component, pid, program, .. } => {
                write!(f, "process {program} (pid {pid}, {component})")
            }
            Resource::Container { name, .. } => write!(f, "container {name}"),
            Resource::Network { name } => write!(f, "network {name}"),
            Resource::Secret { name } => write!(f, "secret {name}"),
            Resource::Cluster { name, .. } => write!(f, "kind cluster {name}"),
            Resource::Background { pid, program, task, .. } => {
                write!(f, "background {program} (pid {pid}, {task})")
            }
            Resource::Namespace { name, .. } => write!(f, "namespace {name}"),
        }
    }
}

/// What a run started; saved as `state.json` (0600: it holds per-run passwords).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// The run id, e.g. `workflowexecution-20261123-101500-a1b2`.
    pub id: String,
    /// The suite.
    pub suite: String,
    /// The backend.
    pub backend: String,
    /// The run directory.
    pub dir: PathBuf,
    /// When it started (RFC 3339).
    pub created: String,
    /// The xtask process that owns the run (it tears the run down unless it was kept).
    #[serde(default)]
    pub owner_pid: u32,
    /// Whether the run was left running on purpose (`--keep`).
    #[serde(default)]
    pub kept: bool,
    /// The endpoints given to tests (`DATABASE_URL`, `REDIS_URL`, `DATASTORAGE_URL`).
    pub env: BTreeMap<String, String>,
    /// Every endpoint published, by component.
    #[serde(default)]
    pub endpoints: BTreeMap<String, crate::model::Endpoint>,
    /// What the run created, in order.
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// The PostgreSQL superuser password, to start the cluster again after a restart.
    pub postgres_superuser_password: Option<String>,
    /// The template of the migrated database to keep once the run is ready (local backend; see
    /// [`crate::cache`] and [`crate::background`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_wanted: Option<TemplateWanted>,
}

/// A migrated template a run wants kept: what it is made from, to make it apart from the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateWanted {
    /// The PostgreSQL component whose database it is.
    pub component: String,
    /// Its key, as the run computed it when it started.
    pub key: crate::cache::Key,
    /// The migrations directory.
    pub migrations: PathBuf,
    /// The tables the selection names; `None` for every migration.
    pub tables: Option<Vec<String>>,
}

impl TemplateWanted {
    /// The migration selection.
    pub fn selection(&self) -> migrations::Selection {
        match &self.tables {
            Some(t) => migrations::Selection::Tables(t.clone()),
            None => migrations::Selection::All,
        }
    }
}

impl RunState {
    /// Writes `state.json` into the run directory, readable by the owner only.
    pub fn save(&self) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        // Atomic: `infra down` in another process may read it at any moment.
        procs::write_file_atomic(&self.dir.join("state.json"), text.as_bytes(), 0o600)
            .map_err(std::io::Error::other)
    }

    /// Reads `state.json` from a run directory.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(dir.join("state.json"))?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }

    /// Whether any recorded process still runs (containers are asked of the engine by status).
    pub fn alive(&self) -> bool {
        self.resources.iter().any(|r| matches!(r, Resource::Process { pid, .. } if pid_alive(*pid)))
    }

    /// The run's namespace on a cluster (kind, cluster backends): name, kubeconfig, context.
    pub fn namespace(&self) -> Option<(&str, &Path, Option<&str>)> {
        self.resources.iter().find_map(|r| match r {
            Resource::Namespace { name, kubeconfig, context } => {
                Some((name.as_str(), kubeconfig.as_path(), context.as_deref()))
            }
            _ => None,
        })
    }

    /// Whether the xtask that brought the run up still runs (and holds its port-forwards).
    pub fn owner_alive(&self) -> bool {
        self.owner_pid != 0 && pid_alive(self.owner_pid)
    }

    /// Whether the owning xtask is gone while the run was not kept: a leftover to tear down.
    pub fn orphaned(&self) -> bool {
        !self.kept && self.owner_pid != 0 && !self.owner_alive()
    }
}

/// The runs directory: `<state dir>/runs`.
#[derive(Debug, Clone)]
pub struct Runs {
    base: PathBuf,
}

impl Runs {
    /// The runs under `$XTASK_STATE_DIR` or `<workspace root>/.xtask`.
    pub fn new(workspace_root: &Path) -> Self {
        let state = std::env::var_os(STATE_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root.join(".xtask"));
        Self { base: state.join("runs") }
    }

    /// The runs beside the run directory `dir`.
    pub fn containing(dir: &Path) -> Self {
        Self { base: dir.parent().unwrap_or(dir).to_path_buf() }
    }

    /// The directory holding the runs.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Where a report file named `file` of a run goes when no path is given (`--timings`):
    /// `timings/` beside the runs, so it outlives the run directory's teardown.
    pub fn timings_file(&self, file: &str) -> PathBuf {
        self.base.parent().unwrap_or(&self.base).join("timings").join(file)
    }

    /// Creates a fresh run directory for `suite` and returns its (canonical) path and id.
    pub fn create(&self, suite: &str) -> std::io::Result<(String, PathBuf)> {
        std::fs::create_dir_all(&self.base)?;
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        let id = format!("{suite}-{stamp}-{}", &pgserver::random_password()[..4].to_lowercase());
        let dir = self.base.join(&id);
        std::fs::create_dir(&dir)?;
        // Others may pass through (PostgreSQL runs as its own user when we are root) but not list.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
        Ok((id, dir.canonicalize()?))
    }

    /// Every run directory, oldest first; none when the runs' directory does not exist yet,
    /// an error when it cannot be read (an empty list would hide runs that are still running).
    pub fn list(&self) -> Result<Vec<PathBuf>, crate::error::InfraError> {
        let reading = || format!("reading {}", self.base.display());
        let entries = match std::fs::read_dir(&self.base) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(crate::error::InfraError::io(reading())(e)),
        };
        let mut dirs = Vec::new();
        for entry in entries {
            let path = entry.map_err(crate::error::InfraError::io(reading()))?.path();
            if path.is_dir() {
                dirs.push(path);
            }
        }
        dirs.sort_by_key(|d| std::fs::metadata(d).and_then(|m| m.modified()).ok());
        Ok(dirs)
    }

    /// The directory of run `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.base.join(id)
    }

    /// The run named `id`, or the only run when none is named; the error says what exists.
    pub fn pick(&self, id: Option<&str>) -> Result<PathBuf, crate::error::InfraError> {
        if let Some(id) = id {
            let dir = self.dir(id);
            return if dir.is_dir() {
                Ok(dir)
            } else {
                Err(crate::error::InfraError::NoRun(format!("no run `{id}` under {}", self.base.display())))
            };
        }
        let all: Vec<PathBuf> = self.list()?;
        let no_run = crate::error::InfraError::NoRun;
        match all.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(no_run(format!("no runs under {}", self.base.display()))),
            many => {
                let ids: Vec<String> =
                    many.iter().filter_map(|d| d.file_name()?.to_str().map(str::to_string)).collect();
                Err(no_run(format!("several runs; name one: {}", ids.join(", "))))
            }
        }
    }
}

/// Whether a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    procs::pid_alive(pid)
}

/// The programs a run starts; teardown never signals anything else.
const OURS: [&str; 5] = ["postgres", "initdb", "redis-server", "datastorage-reference-server", "xtask"];

/// Processes of ours whose command line names a path inside `dir`, or inside a data directory
/// the run's PostgreSQL keeps elsewhere (servers get their data, config or log paths as
/// arguments), so teardown finds them even when a pid file was never written; a `tail -f` of
/// one of the logs is left alone.
pub fn processes_under(dir: &Path) -> Vec<u32> {
    let mut needles = vec![format!("{}/", dir.to_string_lossy())];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let parent = pgserver::data_parent(&entry.path());
        if parent != entry.path() {
            needles.push(format!("{}/", parent.to_string_lossy()));
        }
    }
    let me = std::process::id();
    // Without /proc nothing can be found; teardown then relies on the recorded pids alone.
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let args: Vec<String> =
                raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            let program = args.first().map(|a| a.rsplit('/').next().unwrap_or(a)).unwrap_or_default();
            OURS.contains(&program) && args.iter().any(|a| needles.iter().any(|n| a.contains(n)))
        })
        .collect()
}

/// Tears down the run in `dir`: every recorded resource in reverse order by the backend that
/// created it, then any process of ours still naming the directory (one whose pid was never
/// recorded), then the directory. A run whose state cannot be read is still swept (processes by
/// path, containers by the run label). Returns what was removed; resources that would not go
/// are named in the error and the directory is kept.
pub fn teardown(dir: &Path) -> Result<Vec<String>, crate::error::InfraError> {
    let removed = stop(dir)?;
    remove_databases(dir)?;
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(crate::error::InfraError::io(format!("removing {}", dir.display()))(e));
        }
        _ => {}
    }
    Ok(removed)
}

/// What [`forget`] did.
#[derive(Debug, Clone, Default)]
pub struct Forgotten {
    /// The resources removed.
    pub removed: Vec<String>,
    /// The resources that could not be reached, each with why: they may still exist.
    pub forgotten: Vec<String>,
}

/// Like [`teardown`], for resources that can no longer be reached (a cluster that is gone):
/// removes what it can, then the run directory whatever was left, and says what it forgot.
pub fn forget(dir: &Path) -> Result<Forgotten, crate::error::InfraError> {
    let (removed, forgotten) = match stop(dir) {
        Ok(removed) => (removed, Vec::new()),
        Err(crate::error::InfraError::Leftovers(left)) => (Vec::new(), left),
        Err(e) => return Err(e),
    };
    let mut forgotten = forgotten;
    if let Err(e) = remove_databases(dir) {
        forgotten.push(e.to_string());
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(crate::error::InfraError::io(format!("removing {}", dir.display()))(e));
        }
        _ => {}
    }
    Ok(Forgotten { removed, forgotten })
}

/// Like [`teardown`], but keeps the run directory with its logs, state and diagnosis for
/// reading (the data is removed); the state then records no resources.
pub fn stop_keep_logs(dir: &Path) -> Result<Vec<String>, crate::error::InfraError> {
    let removed = stop(dir)?;
    remove_databases(dir)?;
    let _ = std::fs::remove_file(dir.join("redis/dump.rdb"));
    if let Ok(mut state) = RunState::load(dir) {
        state.resources.clear();
        state.save().map_err(crate::error::InfraError::io("saving the run state"))?;
    }
    Ok(removed)
}

/// Removes the PostgreSQL data of every component directory of the run, also data kept outside
/// the run directory (where the server's account could reach it; see `pgserver::DATA_POINTER`).
fn remove_databases(dir: &Path) -> Result<(), crate::error::InfraError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(crate::error::InfraError::io(format!("reading {}", dir.display()))(e)),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            pgserver::remove_data(&entry.path()).map_err(|e| {
                crate::error::InfraError::Leftovers(vec![format!(
                    "the database in {}: {e}",
                    entry.path().display()
                )])
            })?;
        }
    }
    Ok(())
}

/// Removes every resource of the run in `dir`, leaving the directory.
fn stop(dir: &Path) -> Result<Vec<String>, crate::error::InfraError> {
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    let id = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let (mut resources, local) = match RunState::load(dir) {
        Ok(state) => (state.resources, state.backend == "local"),
        Err(_) => (Vec::new(), false),
    };
    // Containers whose creation was under way when the state was last saved carry the label.
    if !local {
        let home = dir.parent().unwrap_or(dir);
        for r in crate::backend::podman::leftovers(home, Some(&id)).unwrap_or_default() {
            if !resources.contains(&r) {
                resources.push(r);
            }
        }
    }
    for r in resources.iter().rev() {
        match crate::backend::remove(r) {
            Ok(()) => removed.push(r.to_string()),
            Err(e) => failed.push(format!("{r}: {e}")),
        }
    }
    for pid in processes_under(dir) {
        let r =
            Resource::Process { component: "?".into(), pid, program: program_of(pid), port: None, log: None };
        match crate::backend::remove(&r) {
            Ok(()) => removed.push(r.to_string()),
            Err(e) => failed.push(format!("{r}: {e}")),
        }
    }
    if !failed.is_empty() {
        return Err(crate::error::InfraError::Leftovers(failed));
    }
    Ok(removed)
}

/// The program name of a process, for messages.
fn program_of(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|raw| raw.split(|b| *b == 0).next().map(|a| String::from_utf8_lossy(a).into_owned()))
        .map(|p| p.rsplit('/').next().unwrap_or(&p).to_string())
        .unwrap_or_else(|| "?".into())
}
