//! DataStorage's configuration as one typed model, rendered for a process, a container or a pod.
//!
//! [`Config`] is the contents of `config.yaml` (server, database, redis, logging, shaped like the
//! file the Go service reads); credentials live apart in secrets files named by the config.
//! [`DataStorage::render`] turns model + [`Credentials`] into a [`Bundle`] of files and
//! environment (data first); [`Bundle::write`] puts them on disk for a local process, secrets
//! 0600. [`load`] reads them back, as the service does at start-up.
//!
//! ```no_run
//! use datastorage::{Config, Credentials, DataStorage};
//! let ds = DataStorage {
//!     config: Config::local(18100, 5432, 6379),
//!     credentials: Credentials {
//!         db_username: "slm_user".into(),
//!         db_password: "per-run-secret".into(),
//!         redis_password: String::new(),
//!     },
//!     signing: datastorage::certs::signing_pair()?,
//!     tls: None,
//! };
//! let env = ds.write_for_process(std::path::Path::new("/tmp/run/datastorage"))?;
//! assert_eq!(env[0].0, "CONFIG_PATH");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod certs;
mod duration;
mod keys;
mod load;
mod model;
pub mod rbac;
mod render;
mod secrets;

use std::fmt;
use std::path::PathBuf;

pub use duration::GoDuration;
pub use load::{Loaded, load, load_from_env};
pub use model::{
    API_PORT, CA_CONFIG_MAP, CONTAINER_CONFIG_DIR, CONTAINER_SIGNER_DIR, CONTAINER_TLS_DIR, Config,
    DEFAULT_SIGNER_CERT_DIR, DatabaseConfig, HEALTH_PORT, LIVE_PATH, LogLevel, LoggingConfig, METRICS_PORT,
    Problem, READY_PATH, RedisConfig, SIGNING_SECRET, SSL_MODES, ServerConfig, TLS_SECRET, TlsConfig,
};
pub use render::{
    Bundle, CONFIG_FILE, CONFIG_PATH_ENV, DB_SECRETS_FILE, DataStorage, FileKind, Layout, REDIS_SECRETS_FILE,
    RenderedFile,
};
pub use secrets::Credentials;

/// What can go wrong reading, validating, rendering or writing a configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not the YAML expected.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// The configuration parsed but has invalid fields.
    #[error("{}: {}", path.display(), Problems(problems))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Every invalid field.
        problems: Vec<Problem>,
    },
    /// A secrets file is not a map of string keys to string values. Deliberately vague: the
    /// parser's message would quote the file, which holds passwords.
    #[error("{}{}: not a YAML map of string keys to string values (e.g. `password: ...`)", path.display(), Position(*at))]
    Secrets {
        /// The secrets file.
        path: PathBuf,
        /// Line and column of the first problem, when known.
        at: Option<(u64, u64)>,
    },
    /// A secrets file lacks a key the config names.
    #[error("{}: key `{key}` (named by {field}) missing", path.display())]
    MissingSecret {
        /// The secrets file.
        path: PathBuf,
        /// The missing key.
        key: String,
        /// The config field naming it.
        field: String,
    },
    /// A value could not be written as YAML.
    #[error("rendering {}: {source}", path.display())]
    Serialize {
        /// The file being rendered.
        path: PathBuf,
        /// The serializer's error.
        #[source]
        source: Box<serde_saphyr::SerializeError>,
    },
    /// A file could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `CONFIG_PATH` is not set.
    #[error("{CONFIG_PATH_ENV} is not set: it must name DataStorage's config.yaml")]
    NoConfigPath,
}

impl Error {
    /// The error as diagnostics on the files concerned (one per invalid field), each at its
    /// line and column when known; empty when no file is concerned (`CONFIG_PATH` unset).
    pub fn diagnostics(&self) -> Vec<diag::Diagnostic> {
        use diag::Diagnostic;
        let at = |a: Option<(u64, u64)>| (a.map(|a| a.0 as usize), a.map(|a| a.1 as usize));
        match self {
            Error::Read { path, source } => vec![Diagnostic::error(path, format!("cannot read: {source}"))],
            Error::Parse { path, source } => {
                let (message, position) = diag::yaml::split_error(source);
                vec![Diagnostic::error(path, message).at(position.map(|p| p.0), position.map(|p| p.1))]
            }
            Error::Invalid { path, problems } => {
                problems.iter().map(|p| p.diagnostic(path, diag::Severity::Error)).collect()
            }
            Error::Secrets { path, at: position } => {
                let (line, column) = at(*position);
                vec![
                    Diagnostic::error(
                        path,
                        "not a YAML map of string keys to string values (e.g. `password: ...`)",
                    )
                    .at(line, column),
                ]
            }
            Error::MissingSecret { path, key, field } => {
                vec![Diagnostic::error(path, format!("key `{key}` (named by {field}) missing"))]
            }
            Error::Serialize { path, source } => {
                vec![Diagnostic::error(path, format!("cannot render: {source}"))]
            }
            Error::Write { path, source } => vec![Diagnostic::error(path, format!("cannot write: {source}"))],
            Error::NoConfigPath => Vec::new(),
        }
    }
}

struct Position(Option<(u64, u64)>);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, column)) => write!(f, ":{line}:{column}"),
            None => Ok(()),
        }
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match p.at {
                Some((line, _)) => write!(f, "{} (line {line}): {}", p.field, p.reason)?,
                None => write!(f, "{}: {}", p.field, p.reason)?,
            }
        }
        Ok(())
    }
}
