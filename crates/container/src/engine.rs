//! The engine program and the host's options for it, and each engine command as a typed call.
//!
//! Every engine command is one blocking run of the program through `xshell::cmd!` (`Engine::exec`),
//! arguments as separate argv entries; secret data goes on stdin. The commands themselves live in
//! `containers.rs` and `objects.rs`. podman is supported fully; docker is best-effort (same CLI
//! for most commands, no secrets outside swarm, no `rm --time`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitStatus;

use crate::error::{clean_stderr, display_argv};
use crate::{ContainerSpec, Error};

/// The environment variable naming the engine program (default `podman`).
pub const ENGINE_VAR: &str = "XTASK_CONTAINER_ENGINE";
/// The environment variable naming the OCI runtime passed to every `run` (e.g. `runc`).
pub const RUNTIME_VAR: &str = "XTASK_CONTAINER_RUNTIME";
/// The environment variable with extra `run` arguments, separated by whitespace.
pub const RUN_ARGS_VAR: &str = "XTASK_CONTAINER_RUN_ARGS";

/// How long `rm --force` lets a container stop on SIGTERM before it kills it.
pub(crate) const STOP_SECONDS: &str = "2";

/// Which engine binary to run and which host-specific options every `run` gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    program: String,
    runtime: Option<String>,
    run_args: Vec<String>,
}

/// What kind of engine object [`Engine::list`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Containers in any state.
    Container,
    /// Networks.
    Network,
    /// Secrets.
    Secret,
}

/// One finished engine command.
pub(crate) struct Output {
    pub(crate) argv: Vec<String>,
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    /// The stdout of a successful command, or a [`Error::Failed`] with the evidence.
    pub(crate) fn ok(self) -> Result<String, Error> {
        if self.status.success() { Ok(self.stdout) } else { Err(self.failed()) }
    }

    pub(crate) fn failed(&self) -> Error {
        Error::Failed {
            argv: display_argv(&self.argv),
            status: self.status.to_string(),
            stderr: clean_stderr(&self.stderr),
        }
    }

    /// Whether the command failed because the object is absent (`no such …`, `… not found`).
    pub(crate) fn is_missing(&self) -> bool {
        let stderr = self.stderr.to_lowercase();
        !self.status.success() && (stderr.contains("no such") || stderr.contains("not found"))
    }
}

impl Engine {
    /// An engine run as `program` (a name on `PATH` or a path) with no host-specific options.
    pub fn new(program: impl Into<String>) -> Self {
        Self { program: program.into(), runtime: None, run_args: Vec::new() }
    }

    /// Passes `--runtime RUNTIME` to every `run` (e.g. `runc` where crun does not work).
    pub fn with_runtime(mut self, runtime: Option<String>) -> Self {
        self.runtime = runtime;
        self
    }

    /// Sets extra arguments for every `run`, e.g. `--ulimit nofile=1024:1024` where the host needs it.
    pub fn with_run_args(mut self, args: Vec<String>) -> Self {
        self.run_args = args;
        self
    }

    /// The engine from [`ENGINE_VAR`], [`RUNTIME_VAR`] and [`RUN_ARGS_VAR`]; podman by default.
    pub fn from_env() -> Self {
        Self::from_vars(|key| std::env::var(key).ok())
    }

    /// The engine from variables looked up by `var`: unset and blank mean "no such option".
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |key| var(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let run_args = set(RUN_ARGS_VAR).map(|a| a.split_whitespace().map(String::from).collect());
        Self::new(set(ENGINE_VAR).unwrap_or_else(|| "podman".to_string()))
            .with_runtime(set(RUNTIME_VAR))
            .with_run_args(run_args.unwrap_or_default())
    }

    /// The engine program.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The OCI runtime every `run` asks for, if any.
    pub fn runtime(&self) -> Option<&str> {
        self.runtime.as_deref()
    }

    /// The extra arguments of every `run`.
    pub fn run_args(&self) -> &[String] {
        &self.run_args
    }

    pub(crate) fn is_docker(&self) -> bool {
        Path::new(&self.program).file_name().is_some_and(|n| n.to_string_lossy().contains("docker"))
    }

    /// The full argv of `run` for `spec`, program first, in a fixed order.
    pub fn run_argv(&self, spec: &ContainerSpec) -> Vec<String> {
        let mut argv =
            [self.program.as_str(), "run", "--detach", "--name", &spec.name].map(String::from).to_vec();
        if let Some(runtime) = &self.runtime {
            argv.extend(["--runtime".to_string(), runtime.clone()]);
        }
        argv.extend(self.run_args.iter().cloned());
        argv.extend(spec.argv());
        argv
    }

    /// Runs one engine command with optional stdin, whatever its exit status.
    pub(crate) fn exec(&self, args: &[String], stdin: Option<&[u8]>) -> Result<Output, Error> {
        let io = |action: &str, e: xshell::Error| Error::Io {
            action: format!("{action} {}", self.program),
            source: std::io::Error::other(e.to_string()),
        };
        let sh = xshell::Shell::new().map_err(|e| io("preparing to run", e))?;
        let program = &self.program;
        let mut cmd = xshell::cmd!(sh, "{program} {args...}").quiet().ignore_status();
        if let Some(data) = stdin {
            cmd = cmd.stdin(data);
        }
        let out = cmd.output().map_err(|e| match installed(program) {
            false => Error::NotInstalled { program: program.clone() },
            true => io("running", e),
        })?;
        let argv = std::iter::once(program.clone()).chain(args.iter().cloned()).collect();
        Ok(Output {
            argv,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs one engine command given as string slices, whatever its exit status.
    pub(crate) fn exec_str(&self, args: &[&str]) -> Result<Output, Error> {
        self.exec(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>(), None)
    }

    /// The engine's version, e.g. `4.3.1` (from `--version`, which needs no daemon).
    pub fn version(&self) -> Result<String, Error> {
        let text = self.exec_str(&["--version"])?.ok()?;
        let line = text.lines().next().unwrap_or_default().trim();
        // `podman version 4.3.1`, `Docker version 28.2.2, build e6534b4`.
        let version = line.split_once("version ").map(|(_, v)| v.split([',', ' ']).next().unwrap_or(v));
        Ok(version.unwrap_or(line).to_string())
    }
}

/// `--label key=value` for each label, in key order.
pub(crate) fn label_args(labels: &BTreeMap<String, String>) -> Vec<String> {
    labels.iter().flat_map(|(k, v)| ["--label".to_string(), format!("{k}={v}")]).collect()
}

/// Whether `program` can be found: a path that exists, or a name in a `PATH` directory.
fn installed(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_from_variables_defaults_to_plain_podman() {
        assert_eq!(Engine::from_vars(|_| None), Engine::new("podman"));
        let vars = BTreeMap::from([
            (ENGINE_VAR, "docker"),
            (RUNTIME_VAR, " runc "),
            (RUN_ARGS_VAR, " --ulimit nofile=1024:1024\n --ulimit  nproc=1024:1024 "),
        ]);
        let engine = Engine::from_vars(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(engine.program(), "docker");
        assert_eq!(engine.runtime(), Some("runc"));
        assert_eq!(engine.run_args(), ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]);
        let blank = Engine::from_vars(|k| (k == RUNTIME_VAR).then(|| "  ".to_string()));
        assert_eq!(blank.runtime(), None);
    }

    #[test]
    fn a_spec_with_a_comma_in_a_mount_is_refused_before_running() {
        let mut spec = ContainerSpec::new("c", "img");
        spec.mounts.push(crate::Mount { source: "/a,b".into(), target: "/t".into(), read_only: true });
        let err = Engine::new("/nonexistent/podman").run(&spec).unwrap_err();
        assert_eq!(err.to_string(), "invalid spec for container c: mount source `/a,b` contains a comma");
    }
}
