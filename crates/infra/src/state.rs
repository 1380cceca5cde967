//! Run state under `.xtask/runs/<id>/`: what a run started, so `infra status` and `infra down`
//! work from another shell, and teardown that leaves no process, port or directory behind.

use std::collections::BTreeMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// Environment variable overriding the state directory (default: `.xtask` at the workspace root).
pub const STATE_DIR_ENV: &str = "XTASK_STATE_DIR";

/// How long teardown lets processes shut down before killing them.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// One running component, as recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ComponentState {
    /// Its process id.
    pub pid: Option<u32>,
    /// The loopback port it listens on.
    pub port: Option<u16>,
    /// Its log file.
    pub log: Option<PathBuf>,
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
    /// The endpoints given to tests (`DATABASE_URL`, `REDIS_URL`, `DATASTORAGE_URL`).
    pub env: BTreeMap<String, String>,
    /// The components started so far.
    pub components: BTreeMap<String, ComponentState>,
    /// The PostgreSQL superuser password, to start the cluster again after a restart.
    pub postgres_superuser_password: Option<String>,
}

impl RunState {
    /// Writes `state.json` into the run directory, readable by the owner only.
    pub fn save(&self) -> std::io::Result<()> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        // A leftover temp file would keep its old mode: start from a fresh one.
        let _ = std::fs::remove_file(&tmp);
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        std::io::Write::write_all(&mut f, serde_json::to_string_pretty(self).unwrap_or_default().as_bytes())?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(tmp, path)
    }

    /// Reads `state.json` from a run directory.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(dir.join("state.json"))?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }

    /// Whether any recorded process still runs.
    pub fn alive(&self) -> bool {
        self.components.values().filter_map(|c| c.pid).any(pid_alive)
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

    /// The directory holding the runs.
    pub fn base(&self) -> &Path {
        &self.base
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

    /// Every run directory, oldest first.
    pub fn list(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.base)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default();
        dirs.sort_by_key(|d| std::fs::metadata(d).and_then(|m| m.modified()).ok());
        dirs
    }

    /// The directory of run `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.base.join(id)
    }

    /// The run named `id`, or the only run when none is named; the error says what exists.
    pub fn pick(&self, id: Option<&str>) -> Result<PathBuf, String> {
        if let Some(id) = id {
            let dir = self.dir(id);
            return if dir.join("state.json").exists() {
                Ok(dir)
            } else {
                Err(format!("no run `{id}` under {}", self.base.display()))
            };
        }
        let all: Vec<PathBuf> = self.list().into_iter().filter(|d| d.join("state.json").exists()).collect();
        match all.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(format!("no runs under {}", self.base.display())),
            many => {
                let ids: Vec<String> =
                    many.iter().filter_map(|d| d.file_name()?.to_str().map(str::to_string)).collect();
                Err(format!("several runs; name one: {}", ids.join(", ")))
            }
        }
    }
}

/// Whether a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    pgserver::pid_alive(pid)
}

/// The programs a run starts; teardown never signals anything else.
const OURS: [&str; 4] = ["postgres", "initdb", "redis-server", "datastorage-reference-server"];

/// Processes of ours whose command line names a path inside `dir` (servers get their data,
/// config or log paths as arguments), so teardown finds them even when a pid file was never
/// written; a `tail -f` of one of the logs is left alone.
pub fn processes_under(dir: &Path) -> Vec<u32> {
    let needle = format!("{}/", dir.to_string_lossy());
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let args: Vec<String> =
                raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            let program = args.first().map(|a| a.rsplit('/').next().unwrap_or(a)).unwrap_or_default();
            OURS.contains(&program) && args.iter().any(|a| a.contains(&needle))
        })
        .collect()
}

/// Stops every process started for the run in `dir` (SIGINT: PostgreSQL's fast shutdown, a
/// clean stop for Redis and DataStorage; SIGKILL after a deadline) and removes the directory.
/// Returns the pids that were stopped.
pub fn teardown(dir: &Path) -> std::io::Result<Vec<u32>> {
    let mut stopped = Vec::new();
    let started = Instant::now();
    let mut signal = Signal::SIGINT;
    loop {
        let pids = processes_under(dir);
        if pids.is_empty() {
            break;
        }
        if started.elapsed() > STOP_DEADLINE {
            signal = Signal::SIGKILL;
        }
        for pid in &pids {
            if !stopped.contains(pid) || signal == Signal::SIGKILL {
                let _ = kill(Pid::from_raw(*pid as i32), signal);
            }
            if !stopped.contains(pid) {
                stopped.push(*pid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    Ok(stopped)
}
