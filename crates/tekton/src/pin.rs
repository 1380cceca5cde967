//! The pinned release: version, URL and SHA-256, kept in `manifests/tekton/release.yaml`.

use serde::Deserialize;

use crate::Error;

/// The pin file, embedded so a binary carries the checksum it checks against.
const PINNED: &str = include_str!("../../../manifests/tekton/release.yaml");

/// A Tekton Pipelines release and the digest its `release.yaml` must have.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The release tag, e.g. `v1.6.0`.
    pub version: String,
    /// Where upstream publishes that release's `release.yaml`.
    pub url: String,
    /// The SHA-256 of that `release.yaml`, lowercase hex.
    pub sha256: String,
}

impl Pin {
    /// The pin in `manifests/tekton/release.yaml`.
    pub fn pinned() -> Result<Pin, Error> {
        Pin::parse(PINNED)
    }

    /// Parses and checks a pin written as YAML.
    pub fn parse(text: &str) -> Result<Pin, Error> {
        let pin: Pin = serde_saphyr::from_str(text).map_err(|e| Error::Pin { reason: e.to_string() })?;
        pin.check()?;
        Ok(pin)
    }

    fn check(&self) -> Result<(), Error> {
        let bad = |reason: String| Err(Error::Pin { reason });
        if !self.version.starts_with('v') || self.version.contains('/') {
            return bad(format!("version `{}` is not a release tag like v1.6.0", self.version));
        }
        // A URL naming another version would verify against the wrong checksum after a half-done bump.
        if !self.url.ends_with(&format!("/{}/release.yaml", self.version)) {
            return bad(format!("url `{}` is not the release.yaml of {}", self.url, self.version));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return bad(format!("sha256 `{}` is not 64 lowercase hex digits", self.sha256));
        }
        Ok(())
    }
}
