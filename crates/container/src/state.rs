//! A container's state as the engine reports it, and what it means for readiness (pure).

use wait::Status;

/// A container's state from `container inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerState {
    /// podman: `created`, `configured`, `initialized`, `running`, `paused`, `stopping`, `stopped`,
    /// `exited`, `removing`, `dead`; docker: `created`, `running`, `restarting`, `exited`, ….
    pub status: String,
    /// Whether its process runs.
    pub running: bool,
    /// The exit code of its last run (0 while it runs).
    pub exit_code: i32,
    /// Whether the kernel killed it for running out of memory.
    pub oom_killed: bool,
    /// How often the engine restarted it.
    pub restart_count: u32,
    /// The engine's error starting it, if any.
    pub error: String,
    /// When it last started (RFC 3339, `0001-01-01T00:00:00Z` when never).
    pub started_at: String,
    /// When it last stopped (RFC 3339, `0001-01-01T00:00:00Z` when never).
    pub finished_at: String,
}

/// What a container's state means for readiness: [`Status::Ready`] when it runs.
///
/// `log_tail` is asked for only when the container has stopped, to put its output in the reason.
pub fn container_status(
    name: &str,
    state: Option<&ContainerState>,
    log_tail: impl FnOnce() -> String,
) -> Status {
    let Some(state) = state else {
        return Status::Failed(format!("container {name} does not exist"));
    };
    match state.status.as_str() {
        "running" => Status::Ready,
        "exited" | "stopped" | "stopping" | "dead" | "removing" => {
            let tail = log_tail();
            let tail = if tail.trim().is_empty() { "(no output)".to_string() } else { tail };
            Status::Failed(format!("container {name} {}; last log lines:\n{tail}", state.describe()))
        }
        // created, configured, initialized, restarting, paused: it may still get going.
        other => Status::NotYet(format!("container {name} is {other}")),
    }
}

impl ContainerState {
    /// The state in a few words: `is exited: exit code 3, OOM-killed, 1 restart`.
    pub fn describe(&self) -> String {
        let mut text = format!("is {}", self.status);
        if !self.running {
            text.push_str(&format!(": exit code {}", self.exit_code));
            if self.oom_killed {
                text.push_str(", OOM-killed");
            }
            let s = if self.restart_count == 1 { "" } else { "s" };
            text.push_str(&format!(", {} restart{s}", self.restart_count));
        }
        if !self.error.is_empty() {
            text.push_str(&format!(" (error: {})", self.error));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Inspected, json_list};

    fn fixture(text: &str) -> ContainerState {
        json_list::<Inspected>(text).unwrap().remove(0).state()
    }

    fn podman_exited() -> ContainerState {
        fixture(include_str!("../tests/fixtures/podman-inspect-exited.json"))
    }

    #[test]
    fn podman_inspect_of_an_exited_container_parses() {
        let state = podman_exited();
        assert_eq!((state.status.as_str(), state.running, state.exit_code), ("exited", false, 3));
        assert_eq!((state.oom_killed, state.restart_count), (false, 0));
        assert!(state.finished_at.starts_with("20"), "{state:?}");
    }

    #[test]
    fn docker_inspect_parses_the_same_way() {
        let state = fixture(include_str!("../tests/fixtures/docker-inspect-oom.json"));
        assert_eq!(state.describe(), "is exited: exit code 137, OOM-killed, 2 restarts");
    }

    #[test]
    fn an_exited_container_fails_with_exit_code_and_log_tail() {
        let status = container_status("db", Some(&podman_exited()), || "starting\nfatal: no config".into());
        assert_eq!(
            status,
            Status::Failed(
                "container db is exited: exit code 3, 0 restarts; last log lines:\nstarting\nfatal: no config"
                    .into()
            )
        );
        let silent = container_status("db", Some(&podman_exited()), String::new);
        assert!(silent.reason().unwrap().ends_with("last log lines:\n(no output)"), "{silent}");
    }

    #[test]
    fn missing_starting_and_running_containers() {
        let logs = || -> String { panic!("logs are only read for a stopped container") };
        assert_eq!(container_status("db", None, logs), Status::Failed("container db does not exist".into()));
        let created = ContainerState { status: "created".into(), ..ContainerState::default() };
        assert_eq!(
            container_status("db", Some(&created), logs),
            Status::NotYet("container db is created".into())
        );
        let running = ContainerState { status: "running".into(), running: true, ..ContainerState::default() };
        assert_eq!(container_status("db", Some(&running), logs), Status::Ready);
        assert_eq!(running.describe(), "is running");
    }
}
