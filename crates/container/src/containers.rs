//! Container commands: run, inspect, logs, ports, wait, restart, remove.

use crate::engine::STOP_SECONDS;
use crate::error::run_hint;
use crate::parse::{Inspected, json_list, merge_logs};
use crate::{ContainerSpec, ContainerState, Engine, Error};

/// How many times [`Engine::run`] tries a container whose published port was taken first.
pub const PORT_ATTEMPTS: usize = 3;

impl Engine {
    /// Starts the container described by `spec`, detached, and returns its id.
    ///
    /// A `run` that fails after creating the container leaves it behind (status `created`):
    /// remove it by name with [`Engine::remove_container`].
    ///
    /// The engine chooses the host side of each published port itself, and another process can
    /// take it before the container binds it ("address already in use", seen with two test
    /// runs at once): the half-made container is removed and the run tried again, up to
    /// [`PORT_ATTEMPTS`] times in all, each with ports chosen afresh.
    pub fn run(&self, spec: &ContainerSpec) -> Result<String, Error> {
        if let Some(reason) = spec.problem() {
            return Err(Error::InvalidSpec { name: spec.name.clone(), reason });
        }
        let argv = self.run_argv(spec);
        let mut attempts = PORT_ATTEMPTS;
        let out = loop {
            let out = self.exec(&argv[1..], None)?;
            if out.status.success() {
                return Ok(out.stdout.trim().to_string());
            }
            attempts -= 1;
            if attempts == 0 || spec.publish.is_empty() || !out.stderr.contains("address already in use") {
                break out;
            }
            self.remove_container(&spec.name)?;
        };
        let hint = run_hint(&out.stderr, &spec.image, || self.image_exists(&spec.image).ok());
        Err(Error::Run {
            name: spec.name.clone(),
            image: spec.image.clone(),
            hint,
            failure: Box::new(out.failed()),
        })
    }

    fn inspect_raw(&self, name: &str) -> Result<Option<Inspected>, Error> {
        let out = self.exec_str(&["container", "inspect", name])?;
        if out.is_missing() {
            return Ok(None);
        }
        let what = format!("{} container inspect {name}", self.program());
        let mut all: Vec<Inspected> =
            json_list(&out.ok()?).map_err(|source| Error::Parse { what, source })?;
        Ok(all.pop())
    }

    /// The state of container `name`, or `None` when there is no such container.
    pub fn inspect(&self, name: &str) -> Result<Option<ContainerState>, Error> {
        Ok(self.inspect_raw(name)?.map(|c| c.state()))
    }

    /// The output of container `name`, stdout and stderr in time order; the last `tail` lines.
    pub fn logs(&self, name: &str, tail: Option<usize>) -> Result<String, Error> {
        let tail = tail.map(|n| n.to_string());
        let mut args = vec!["logs", "--timestamps"];
        if let Some(n) = &tail {
            args.extend(["--tail", n]);
        }
        args.push(name);
        let out = self.exec_str(&args)?;
        if out.is_missing() {
            return Err(Error::NoSuchContainer { name: name.to_string() });
        }
        let stderr = out.stderr.clone();
        let stdout = out.ok()?;
        Ok(merge_logs(&stdout, &stderr))
    }

    /// The port on 127.0.0.1 that the engine published for `container_port`/tcp of `name`.
    pub fn host_port(&self, name: &str, container_port: u16) -> Result<u16, Error> {
        let container =
            self.inspect_raw(name)?.ok_or_else(|| Error::NoSuchContainer { name: name.to_string() })?;
        container
            .host_port(container_port)
            .ok_or(Error::NotPublished { name: name.to_string(), port: container_port })
    }

    /// Waits until container `name` has stopped and returns its exit code.
    pub fn wait_exit(&self, name: &str) -> Result<i32, Error> {
        let out = self.exec_str(&["wait", name])?;
        if out.is_missing() {
            return Err(Error::NoSuchContainer { name: name.to_string() });
        }
        let what = format!("{} wait {name}", self.program());
        let text = out.ok()?;
        // The exit code is the last line; a JSON number parses like one.
        let code = text.lines().last().unwrap_or_default().trim();
        serde_json::from_str(code).map_err(|source| Error::Parse { what, source })
    }

    /// Restarts container `name` (SIGTERM, then SIGKILL after 2 s, then start).
    pub fn restart(&self, name: &str) -> Result<(), Error> {
        let out = self.exec_str(&["restart", "--time", STOP_SECONDS, name])?;
        if out.is_missing() {
            return Err(Error::NoSuchContainer { name: name.to_string() });
        }
        out.ok().map(drop)
    }

    /// Stops (SIGTERM, then SIGKILL after 2 s) and removes container `name`; `false` if absent.
    pub fn remove_container(&self, name: &str) -> Result<bool, Error> {
        let out = match self.is_docker() {
            true => self.exec_str(&["rm", "--force", name])?,
            false => self.exec_str(&["rm", "--force", "--time", STOP_SECONDS, name])?,
        };
        if out.is_missing() {
            return Ok(false);
        }
        // With --force a missing container is no error: only the printed name tells.
        Ok(!out.ok()?.trim().is_empty())
    }
}
