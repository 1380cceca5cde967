//! Loading the pinned `release.yaml`: find it, verify its digest, then parse all of it.

use std::path::{Path, PathBuf};

use kube::core::DynamicObject;
use sha2::{Digest, Sha256};

use crate::{Error, Pin, Plan, parse_manifest};

/// Where the release's `release.yaml` comes from.
///
/// Every variant ends in a local file that is verified as a whole before use, so a future
/// `Fetch` variant (download into the cache, then read it back) keeps the same guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A `release.yaml` at this path, e.g. carried onto an offline machine.
    File(PathBuf),
    /// A cache directory holding `<cache>/tekton/<version>/release.yaml`.
    Cache(PathBuf),
}

impl Source {
    /// The file this source reads for `pin`.
    pub fn path(&self, pin: &Pin) -> PathBuf {
        match self {
            Source::File(path) => path.clone(),
            Source::Cache(dir) => dir.join("tekton").join(&pin.version).join("release.yaml"),
        }
    }
}

/// A verified, fully parsed Tekton release.
#[derive(Debug, Clone)]
pub struct Release {
    pin: Pin,
    path: PathBuf,
    objects: Vec<DynamicObject>,
}

impl Release {
    /// Loads the release pinned in `manifests/tekton/release.yaml` from `source`.
    pub fn load(source: &Source) -> Result<Release, Error> {
        Release::load_pinned(&Pin::pinned()?, source)
    }

    /// Loads the release `pin` names from `source`, refusing a file whose SHA-256 differs.
    pub fn load_pinned(pin: &Pin, source: &Source) -> Result<Release, Error> {
        let path = source.path(pin);
        let bytes = std::fs::read(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
        // The digest is checked before parsing so nothing read from an unverified file can reach
        // the cluster, not even the documents in front of a tampered one.
        let actual = sha256_hex(&bytes);
        if actual != pin.sha256 {
            return Err(Error::Checksum { path, expected: pin.sha256.clone(), actual });
        }
        let text = String::from_utf8(bytes).map_err(|e| Error::Read {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        let objects = parse_manifest(&path, &text)?;
        Ok(Release { pin: pin.clone(), path, objects })
    }

    /// The pin this release was verified against.
    pub fn pin(&self) -> &Pin {
        &self.pin
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its objects in manifest order.
    pub fn objects(&self) -> &[DynamicObject] {
        &self.objects
    }

    /// The steps that install it.
    pub fn plan(&self) -> Plan {
        Plan::new(&self.objects)
    }
}

/// The SHA-256 of `bytes` as lowercase hex, the form `sha256sum` prints and the pin stores.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
