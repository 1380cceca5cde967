//! One container to run, as data, and the `run` arguments it renders to.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One container to run: image, name, network, ports, mounts, secrets and command.
///
/// `env` values end up on the engine's command line and in `inspect`: pass passwords as
/// [`SecretMount`]s instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The container name, unique on the host.
    pub name: String,
    /// The image reference, e.g. `localhost/xtask/postgres:16`.
    pub image: String,
    /// The network to join, or the engine's default network.
    pub network: Option<String>,
    /// Extra DNS names of the container on `network`.
    pub aliases: Vec<String>,
    /// Labels, e.g. the owner used to find and clean up everything a run created.
    pub labels: BTreeMap<String, String>,
    /// Environment variables, in order (not for secrets: they are visible in `inspect`).
    pub env: Vec<(String, String)>,
    /// Container TCP ports published on 127.0.0.1 with a host port chosen by the engine.
    pub publish: Vec<u16>,
    /// Bind mounts from the host.
    pub mounts: Vec<Mount>,
    /// Engine secrets mounted as files.
    pub secrets: Vec<SecretMount>,
    /// The user (`uid`, `uid:gid` or a name in the image) the command runs as.
    pub user: Option<String>,
    /// Replaces the image's entrypoint.
    pub entrypoint: Option<String>,
    /// Arguments after the image: the command, or the entrypoint's arguments.
    pub args: Vec<String>,
    /// Run it as a production pod runs: without capabilities, unable to gain privileges.
    pub locked_down: bool,
    /// Its root filesystem is read-only (it writes only to its mounts).
    pub read_only: bool,
    /// Memory limit in bytes: above it the container is killed.
    pub memory: Option<u64>,
    /// CPU limit in thousandths of a CPU (`500`: half a CPU).
    pub millicpus: Option<u32>,
}

/// A host path bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path on the host.
    pub source: PathBuf,
    /// The path in the container.
    pub target: PathBuf,
    /// Whether the container may only read it.
    pub read_only: bool,
}

/// An engine secret (see `Engine::create_secret`) mounted as a file in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    /// The secret's name.
    pub secret: String,
    /// The file's path in the container.
    pub target: PathBuf,
    /// The file's permission bits, e.g. `0o444`.
    pub mode: u32,
}

impl ContainerSpec {
    /// A spec running `image` as `name` with everything else left to the image.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        Self { name: name.into(), image: image.into(), ..Self::default() }
    }

    /// The arguments after `run --detach --name NAME` and the engine's own options, image last
    /// but for the command.
    pub(crate) fn argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        let mut flag = |name: &str, value: String| {
            argv.push(name.to_string());
            argv.push(value);
        };
        if let Some(network) = &self.network {
            flag("--network", network.clone());
        }
        for alias in &self.aliases {
            flag("--network-alias", alias.clone());
        }
        for (key, value) in &self.labels {
            flag("--label", format!("{key}={value}"));
        }
        for (key, value) in &self.env {
            flag("--env", format!("{key}={value}"));
        }
        for port in &self.publish {
            flag("--publish", format!("127.0.0.1::{port}"));
        }
        for m in &self.mounts {
            let readonly = if m.read_only { ",readonly" } else { "" };
            let (source, target) = (m.source.display(), m.target.display());
            flag("--mount", format!("type=bind,source={source},target={target}{readonly}"));
        }
        for s in &self.secrets {
            let target = s.target.display();
            flag("--secret", format!("{},type=mount,target={target},mode={:04o}", s.secret, s.mode));
        }
        if let Some(user) = &self.user {
            flag("--user", user.clone());
        }
        if let Some(entrypoint) = &self.entrypoint {
            flag("--entrypoint", entrypoint.clone());
        }
        if self.locked_down {
            flag("--cap-drop", "ALL".into());
            flag("--security-opt", "no-new-privileges".into());
        }
        if self.read_only {
            argv.push("--read-only".into());
        }
        if let Some(bytes) = self.memory {
            argv.extend(["--memory".into(), format!("{bytes}b")]);
        }
        if let Some(m) = self.millicpus {
            argv.extend(["--cpus".into(), format!("{}.{:03}", m / 1000, m % 1000)]);
        }
        argv.push(self.image.clone());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// Why the engine would misread this spec, if it would: option values are comma-separated.
    pub(crate) fn problem(&self) -> Option<String> {
        let comma = |what: &str, value: &str| {
            value.contains(',').then(|| format!("{what} `{value}` contains a comma"))
        };
        self.mounts
            .iter()
            .flat_map(|m| {
                [
                    ("mount source", m.source.display().to_string()),
                    ("mount target", m.target.display().to_string()),
                ]
            })
            .chain(self.secrets.iter().flat_map(|s| {
                [("secret name", s.secret.clone()), ("secret target", s.target.display().to_string())]
            }))
            .find_map(|(what, value)| comma(what, &value))
            .or_else(|| self.name.is_empty().then(|| "the container name is empty".to_string()))
            .or_else(|| self.image.is_empty().then(|| "the image is empty".to_string()))
    }
}
