//! Which container engine kind runs its nodes on, and how that choice is made.

use std::fmt;

use crate::Error;

/// The variable that chooses the provider for xtask explicitly (`docker` or `podman`).
pub const PROVIDER_VAR: &str = "XTASK_KIND_PROVIDER";
/// kind's own provider variable; the monorepo's CI sets it to `podman`.
pub const KIND_PROVIDER_VAR: &str = "KIND_EXPERIMENTAL_PROVIDER";

/// The container engine that runs kind's node containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Docker: kind's default.
    Docker,
    /// Podman: what the monorepo's CI uses.
    Podman,
}

impl Provider {
    /// The provider's name, as kind spells it in `KIND_EXPERIMENTAL_PROVIDER`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Docker => "docker",
            Provider::Podman => "podman",
        }
    }

    /// The engine's CLI program, for commands that bypass kind (e.g. `exec` into a node).
    pub fn engine(self) -> &'static str {
        self.as_str()
    }

    /// The provider named by `value`, or `None` for anything but `docker` and `podman`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "docker" => Some(Provider::Docker),
            "podman" => Some(Provider::Podman),
            _ => None,
        }
    }

    /// The provider from [`PROVIDER_VAR`], else [`KIND_PROVIDER_VAR`], else the first of docker and
    /// podman that `on_path` finds, else docker (as kind itself falls back).
    ///
    /// Both lookups are parameters so the rule can be tested without touching the process's
    /// environment. A blank variable counts as unset; any other value but the two names is an
    /// error, because silently ignoring it would run the cluster on an engine nobody asked for.
    pub fn detect(
        var: impl Fn(&str) -> Option<String>,
        on_path: impl Fn(&str) -> bool,
    ) -> Result<Self, Error> {
        for name in [PROVIDER_VAR, KIND_PROVIDER_VAR] {
            let Some(value) = var(name).filter(|v| !v.trim().is_empty()) else { continue };
            return Provider::parse(&value).ok_or(Error::UnknownProvider { var: name, value });
        }
        if on_path("docker") {
            Ok(Provider::Docker)
        } else if on_path("podman") {
            Ok(Provider::Podman)
        } else {
            Ok(Provider::Docker)
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn detect(vars: &[(&str, &str)], path: &[&str]) -> Result<Provider, Error> {
        let vars: BTreeMap<&str, &str> = vars.iter().copied().collect();
        Provider::detect(|k| vars.get(k).map(|v| v.to_string()), |p| path.contains(&p))
    }

    #[test]
    fn explicit_variable_wins_over_kinds_variable_and_path() {
        let vars = [(PROVIDER_VAR, "docker"), (KIND_PROVIDER_VAR, "podman")];
        assert_eq!(detect(&vars, &["podman"]).unwrap(), Provider::Docker);
        assert_eq!(detect(&[(PROVIDER_VAR, " podman\n")], &["docker"]).unwrap(), Provider::Podman);
    }

    #[test]
    fn kinds_variable_wins_over_path() {
        assert_eq!(detect(&[(KIND_PROVIDER_VAR, "podman")], &["docker"]).unwrap(), Provider::Podman);
        assert_eq!(
            detect(&[(PROVIDER_VAR, ""), (KIND_PROVIDER_VAR, "podman")], &[]).unwrap(),
            Provider::Podman
        );
    }

    #[test]
    fn path_prefers_docker_then_podman_then_falls_back_to_docker() {
        assert_eq!(detect(&[], &["podman", "docker"]).unwrap(), Provider::Docker);
        assert_eq!(detect(&[], &["podman"]).unwrap(), Provider::Podman);
        assert_eq!(detect(&[], &[]).unwrap(), Provider::Docker);
    }

    #[test]
    fn an_unsupported_provider_is_an_error_naming_the_variable() {
        let err = detect(&[(KIND_PROVIDER_VAR, "nerdctl")], &["docker"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KIND_EXPERIMENTAL_PROVIDER=nerdctl is not a supported kind provider: use docker or podman \
             (set XTASK_KIND_PROVIDER to override)"
        );
    }
}
