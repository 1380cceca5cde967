//! Background steps: what a run does once it is ready and nothing in the run waits for (keeping
//! the migrated database as a template for later runs, see [`crate::cache`]). `e2e` runs them
//! beside the tests; a kept `infra up` hands them to a detached `xtask infra cache keep`, which
//! is recorded as a [`Resource::Background`] so teardown waits for it before stopping anything:
//! nothing of a run outlives `infra down`, and what it kept is in the cache when that returns.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::InfraError;
use crate::state::{Resource, RunState};

/// The log of a run's detached background process, in its run directory.
pub const LOG: &str = "background.log";

/// How long teardown waits for a background process that says nothing before stopping it:
/// keeping a template takes seconds and logs each stage and migration; a minute of silence
/// means it hangs, and the run must still go. A keeper that keeps logging (a slow one, on a
/// loaded machine) is waited for up to [`WAIT_AT_MOST`].
const WAIT: Duration = Duration::from_secs(60);

/// The longest teardown waits for a background process, however busy it says it is.
const WAIT_AT_MOST: Duration = Duration::from_secs(600);

/// Runs the background steps of the run recorded in `state` and says what they did; `progress`
/// hears what each is doing. A template that cannot be kept is said, not an error: the run
/// itself is fine.
pub async fn run(state: &RunState, progress: &(dyn Fn(String) + Send + Sync)) -> String {
    match &state.template_wanted {
        Some(wanted) if state.backend == "local" => {
            crate::backend::local::keep_template(state, wanted, progress).await
        }
        Some(wanted) => {
            format!(
                "nothing to keep: the {} backend keeps no template of {}",
                state.backend, wanted.component
            )
        }
        None => "nothing to keep: the run started from a template, or has none to make".into(),
    }
}

/// Whether the run in `state` has background work to do.
pub fn wanted(state: &RunState) -> bool {
    state.template_wanted.is_some()
}

/// Starts `program args... DIR` detached (it outlives us), logging to the run's [`LOG`], to
/// finish the background steps of the run in `dir`, and records it in the run so teardown
/// waits for it. Returns its pid and log.
pub fn detach(dir: &Path, program: &Path, args: &[&str]) -> Result<(u32, PathBuf), InfraError> {
    let log = dir.join(LOG);
    let mut cmd = procs::command(program);
    cmd.args(args).arg(dir);
    procs::log_output(&mut cmd, &log, procs::OpenLog::Truncate)?;
    procs::own_process_group(&mut cmd);
    let child = procs::spawn(cmd, procs::Tie::Detached)?;
    let name = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut state = RunState::load(dir).map_err(InfraError::io("reading the run state"))?;
    let task = "keeping a template of the migrated database".to_string();
    state.resources.push(Resource::Background { pid: child.id(), program: name, task, log: log.clone() });
    state.save().map_err(InfraError::io("saving the run state"))?;
    Ok((child.id(), log))
}

/// Waits for a background process to finish its work while it keeps logging (a minute of
/// silence, or ten minutes in all, and it is stopped): a hung keeper must not keep the run's
/// teardown waiting, and a slow one on a loaded machine still finishes.
pub(crate) fn finish(resource: &Resource) -> Result<(), InfraError> {
    let Resource::Background { pid, program, log, .. } = resource else {
        return Err(InfraError::Invalid(format!("{resource} is not a background process")));
    };
    if !crate::backend::local::ours(*pid, program) {
        return Ok(());
    }
    let written = || std::fs::metadata(log).and_then(|m| m.modified()).ok();
    let started = Instant::now();
    let (mut seen, mut heard) = (written(), started);
    while procs::pid_alive(*pid) && heard.elapsed() < WAIT && started.elapsed() < WAIT_AT_MOST {
        std::thread::sleep(Duration::from_millis(20));
        let now = written();
        if now != seen {
            (seen, heard) = (now, Instant::now());
        }
    }
    let policy =
        procs::StopPolicy { signal: nix::sys::signal::Signal::SIGTERM, deadline: Duration::from_secs(5) };
    Ok(procs::stop(*pid, program, policy)?)
}
