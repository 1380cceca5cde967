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
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
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
}

/// Whether a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    pgserver::pid_alive(pid)
}

/// Processes whose command line names `dir` (servers get their data, config or log paths as
/// arguments), so teardown finds them even when a pid file was never written.
pub fn processes_under(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " ").contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

fn looks_like_ours(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text = String::from_utf8_lossy(&cmdline);
    ["postgres", "redis-server", "datastorage"].iter().any(|n| text.contains(n))
}

/// Stops every process started for the run in `dir` (SIGINT: PostgreSQL's fast shutdown, a
/// clean stop for Redis and DataStorage; SIGKILL after a deadline) and removes the directory.
/// Returns the pids that were stopped.
pub fn teardown(dir: &Path) -> std::io::Result<Vec<u32>> {
    let mut stopped = Vec::new();
    let started = Instant::now();
    let mut signal = Signal::SIGINT;
    // Processes that rename themselves would escape the command-line scan; their recorded pids
    // are trusted while the process still looks like one of ours.
    let recorded: Vec<u32> = RunState::load(dir)
        .map(|s| s.components.values().filter_map(|c| c.pid).collect())
        .unwrap_or_default();
    loop {
        let mut pids = processes_under(dir);
        for p in &recorded {
            if pid_alive(*p) && looks_like_ours(*p) && !pids.contains(p) {
                pids.push(*p);
            }
        }
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
