//! Credentials and the secrets files that carry them (`db-secrets.yaml`, `redis-secrets.yaml`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::Error;

/// The credentials DataStorage reads from its secrets files. `Debug` never shows the passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// PostgreSQL role name.
    pub db_username: String,
    /// PostgreSQL password.
    pub db_password: String,
    /// Redis password; empty when Redis has none.
    pub redis_password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("db_username", &self.db_username)
            .field("db_password", &"<redacted>")
            .field("redis_password", &"<redacted>")
            .finish()
    }
}

/// A secrets file's entries, in the order they are written.
pub(crate) struct SecretsFile<'a>(pub(crate) Vec<(&'a str, &'a str)>);

impl Serialize for SecretsFile<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl SecretsFile<'_> {
    /// The file's YAML text.
    pub(crate) fn to_yaml(&self, path: &Path) -> Result<String, Error> {
        serde_saphyr::to_string(self)
            .map_err(|source| Error::Serialize { path: path.to_path_buf(), source: Box::new(source) })
    }
}

/// A secrets file read back: a flat map of string keys to string values.
#[derive(Debug)]
pub(crate) struct ReadSecrets {
    path: std::path::PathBuf,
    entries: BTreeMap<String, String>,
}

impl ReadSecrets {
    /// Reads and parses a secrets file.
    pub(crate) fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses a secrets file's text; `path` is only used in errors. The parser's own message is
    /// never passed on: it quotes the offending value or a snippet of the file, which here is a
    /// password. Only its position is.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let options = serde_saphyr::options! { with_snippet: false };
        let entries: BTreeMap<String, String> =
            serde_saphyr::from_str_with_options(text, options).map_err(|e| Error::Secrets {
                path: path.to_path_buf(),
                at: e.location().map(|l| (l.line(), l.column())),
            })?;
        Ok(Self { path: path.to_path_buf(), entries })
    }

    /// The value of `key`, if the file has it.
    pub(crate) fn find(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The value of `key`, which the config field `field` names.
    pub(crate) fn get(&self, key: &str, field: &str) -> Result<&str, Error> {
        self.entries.get(key).map(String::as_str).ok_or_else(|| Error::MissingSecret {
            path: self.path.clone(),
            key: key.to_string(),
            field: field.to_string(),
        })
    }
}
