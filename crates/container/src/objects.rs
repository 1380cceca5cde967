//! Network, secret and image commands, and listing what carries a label.

use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::label_args;
use crate::error::{clean_stderr, display_argv};
use crate::parse::{NetworkEntry, PsEntry, SecretEntry, json_list, label_matches};
use crate::{Engine, Error, Kind, Listed};

impl Engine {
    /// Creates network `name` with `labels`.
    pub fn create_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), Error> {
        let mut args = vec!["network".to_string(), "create".to_string()];
        args.extend(label_args(labels));
        args.push(name.to_string());
        self.exec(&args, None)?.ok().map(drop)
    }

    /// Removes network `name`; `false` when it did not exist.
    pub fn remove_network(&self, name: &str) -> Result<bool, Error> {
        self.remove(&["network", "rm", name])
    }

    /// Creates secret `name` with `labels` holding `data`, which goes on stdin, never in argv.
    pub fn create_secret(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        data: &[u8],
    ) -> Result<(), Error> {
        let mut args = vec!["secret".to_string(), "create".to_string()];
        args.extend(label_args(labels));
        args.extend([name.to_string(), "-".to_string()]);
        self.exec(&args, Some(data))?.ok().map(drop)
    }

    /// Removes secret `name`; `false` when it did not exist.
    pub fn remove_secret(&self, name: &str) -> Result<bool, Error> {
        self.remove(&["secret", "rm", name])
    }

    fn remove(&self, args: &[&str]) -> Result<bool, Error> {
        let out = self.exec_str(args)?;
        if out.is_missing() {
            return Ok(false);
        }
        out.ok().map(|_| true)
    }

    /// The objects of `kind` carrying label `label` (`key`, any value, or `key=value`), by name.
    pub fn list(&self, kind: Kind, label: &str) -> Result<Vec<Listed>, Error> {
        let filter = format!("label={label}");
        let mut listed: Vec<Listed> = match kind {
            Kind::Container => {
                let out = self.exec_str(&["ps", "--all", "--filter", &filter, "--format", "json"])?.ok()?;
                self.parse::<PsEntry>("ps", &out)?.into_iter().map(Listed::from).collect()
            }
            Kind::Network => {
                let out = self.exec_str(&["network", "ls", "--filter", &filter, "--format", "json"])?.ok()?;
                self.parse::<NetworkEntry>("network ls", &out)?.into_iter().map(Listed::from).collect()
            }
            // podman 4.3's `secret ls` has no label filter: inspect every secret instead.
            Kind::Secret => self.secrets()?,
        };
        listed.retain(|l| label_matches(&l.labels, label));
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, what: &str, text: &str) -> Result<Vec<T>, Error> {
        json_list(text).map_err(|source| Error::Parse { what: format!("{} {what}", self.program()), source })
    }

    /// Every secret with its labels.
    fn secrets(&self) -> Result<Vec<Listed>, Error> {
        let ids = self.exec_str(&["secret", "ls", "--quiet"])?.ok()?;
        let ids: Vec<String> = ids.split_whitespace().map(String::from).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let inspect = |ids: &[String]| {
            let args: Vec<String> =
                ["secret", "inspect"].map(String::from).into_iter().chain(ids.to_vec()).collect();
            self.exec(&args, None)
        };
        let out = inspect(&ids)?;
        let entries = if out.status.success() {
            self.parse::<SecretEntry>("secret inspect", &out.stdout)?
        } else {
            // A secret removed since `ls` fails the whole inspect: look at each one alone.
            let mut entries = Vec::new();
            for id in &ids {
                let out = inspect(std::slice::from_ref(id))?;
                if !out.is_missing() {
                    entries.extend(self.parse::<SecretEntry>("secret inspect", &out.ok()?)?);
                }
            }
            entries
        };
        Ok(entries.into_iter().map(Listed::from).collect())
    }

    /// Whether `image` is present locally.
    pub fn image_exists(&self, image: &str) -> Result<bool, Error> {
        if self.is_docker() {
            let out = self.exec_str(&["image", "inspect", "--format", "{{.Id}}", image])?;
            return if out.is_missing() { Ok(false) } else { out.ok().map(|_| true) };
        }
        let out = self.exec_str(&["image", "exists", image])?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(out.failed()),
        }
    }

    /// Pulls `image` from its registry.
    pub fn pull(&self, image: &str) -> Result<(), Error> {
        self.exec_str(&["pull", "--quiet", image])?.ok().map(drop)
    }

    /// Writes `image` as an image archive (`save`) to `archive`, as `kind load image-archive` reads it.
    pub fn save(&self, image: &str, archive: &Path) -> Result<(), Error> {
        let archive = archive.display().to_string();
        let mut args = vec!["save", "--output", archive.as_str()];
        if !self.is_docker() {
            // podman's default is oci-archive, which kind's loader does not read.
            args.extend(["--format", "docker-archive"]);
        }
        args.push(image);
        self.exec_str(&args)?.ok().map(drop)
    }

    /// Gives `image` the additional name `target` (e.g. a registry's).
    pub fn tag(&self, image: &str, target: &str) -> Result<(), Error> {
        self.exec_str(&["tag", image, target])?.ok().map(drop)
    }

    /// Pushes `image` to the registry its name starts with.
    pub fn push(&self, image: &str) -> Result<(), Error> {
        self.exec_str(&["push", "--quiet", image])?.ok().map(drop)
    }

    /// Builds `containerfile` in `context` as `tag`, writing the build output to `log`.
    pub fn build(&self, tag: &str, containerfile: &Path, context: &Path, log: &Path) -> Result<(), Error> {
        let args = ["build", "--tag", tag, "--file"].map(String::from).into_iter();
        let paths = [containerfile, context].map(|p| p.display().to_string());
        let out = self.exec(&args.chain(paths).collect::<Vec<_>>(), None)?;
        let text = format!("{}{}", out.stdout, out.stderr);
        std::fs::write(log, &text)
            .map_err(|source| Error::Io { action: format!("writing build log {}", log.display()), source })?;
        if out.status.success() {
            return Ok(());
        }
        // The build's own errors go to stdout with the steps: keep the end of both.
        Err(Error::Failed {
            argv: display_argv(&out.argv),
            status: out.status.to_string(),
            stderr: format!("{}\n(full log: {})", clean_stderr(&text), log.display()),
        })
    }
}
