//! Rendering the model as data: which files, with what contents and modes, at which paths, plus
//! the environment the service needs. Writing them for a local process is a thin layer on top;
//! container mounts and Kubernetes ConfigMap + Secret come from the same [`Bundle`].

use std::fmt;
use std::path::{Path, PathBuf};

use crate::certs::{CERT_FILE, KEY_FILE, Pair};
use crate::model::{CONTAINER_CONFIG_DIR, CONTAINER_SIGNER_DIR, CONTAINER_TLS_DIR};
use crate::secrets::SecretsFile;
use crate::{Config, Credentials, Error};

/// Environment variable through which DataStorage finds its config file.
pub const CONFIG_PATH_ENV: &str = "CONFIG_PATH";
/// File name of the main config file.
pub const CONFIG_FILE: &str = "config.yaml";
/// File name of the PostgreSQL secrets file.
pub const DB_SECRETS_FILE: &str = "db-secrets.yaml";
/// File name of the Redis secrets file.
pub const REDIS_SECRETS_FILE: &str = "redis-secrets.yaml";

/// Where the service will see its files: the config file's directory, the secrets directory,
/// and the directories of its signing pair and of its TLS pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Directory holding `config.yaml`.
    pub config_dir: PathBuf,
    /// Directory holding the secrets files.
    pub secrets_dir: PathBuf,
    /// Directory holding the signing pair (`server.signerCertDir`).
    pub signer_dir: PathBuf,
    /// Directory holding the API port's TLS pair (`server.tls.certDir`).
    pub tls_dir: PathBuf,
}

impl Layout {
    /// A local process: the config and secrets files in `dir`, the pairs in `dir/signing` and `dir/tls`.
    pub fn process(dir: &Path) -> Self {
        Self {
            config_dir: dir.to_path_buf(),
            secrets_dir: dir.to_path_buf(),
            signer_dir: dir.join("signing"),
            tls_dir: dir.join("tls"),
        }
    }

    /// A container or pod, as the monorepo's manifests mount them: `/etc/datastorage/config.yaml`,
    /// `/etc/datastorage/secrets/*`, `/etc/signing-certs/tls.*` and `/etc/tls/tls.*`.
    pub fn container() -> Self {
        let dir = PathBuf::from(CONTAINER_CONFIG_DIR);
        Self {
            secrets_dir: dir.join("secrets"),
            config_dir: dir,
            signer_dir: PathBuf::from(CONTAINER_SIGNER_DIR),
            tls_dir: PathBuf::from(CONTAINER_TLS_DIR),
        }
    }
}

/// Whether a rendered file is plain configuration or holds a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Plain configuration (a ConfigMap's data on Kubernetes).
    Config,
    /// Credentials (a Secret's data on Kubernetes), written 0600.
    Secret,
}

/// One file to hand to the service. `Debug` hides a secret file's contents.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Where the service will read it.
    pub path: PathBuf,
    /// Its contents.
    pub contents: String,
    /// Unix permission bits.
    pub mode: u32,
    /// Configuration or secret.
    pub kind: FileKind,
}

impl RenderedFile {
    /// The file name alone (the key in a ConfigMap or Secret).
    pub fn name(&self) -> &str {
        self.path.file_name().and_then(|n| n.to_str()).unwrap_or_default()
    }
}

impl fmt::Debug for RenderedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let contents: &dyn fmt::Debug = match self.kind {
            FileKind::Config => &self.contents,
            FileKind::Secret => &"<redacted>",
        };
        f.debug_struct("RenderedFile")
            .field("path", &self.path)
            .field("contents", contents)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("kind", &self.kind)
            .finish()
    }
}

/// Everything the service needs to start: its files and its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// Files: `config.yaml`, `db-secrets.yaml`, `redis-secrets.yaml`.
    pub files: Vec<RenderedFile>,
    /// Environment variables, e.g. `CONFIG_PATH`.
    pub env: Vec<(String, String)>,
}

impl Bundle {
    /// The file with this name, if rendered.
    pub fn file(&self, name: &str) -> Option<&RenderedFile> {
        self.files.iter().find(|f| f.name() == name)
    }

    /// Writes every file at its path (creating directories), secrets with mode 0600, and
    /// returns the environment to start the process with.
    pub fn write(&self) -> Result<Vec<(String, String)>, Error> {
        for file in &self.files {
            write_file(file)?;
        }
        Ok(self.env.clone())
    }
}

fn write_file(file: &RenderedFile) -> Result<(), Error> {
    procs::write_file(&file.path, file.contents.as_bytes(), file.mode).map_err(|e| match e {
        procs::Error::Write { path, source } => Error::Write { path, source },
        other => Error::Write { path: file.path.clone(), source: std::io::Error::other(other) },
    })
}

/// DataStorage as deployed: its configuration, the credentials its secrets files carry, its
/// signing pair and, when its API port serves HTTPS, its TLS pair.
#[derive(Debug, Clone, PartialEq)]
pub struct DataStorage {
    /// The configuration; its `secretsFile` paths and key directories are replaced by the
    /// layout's when rendered.
    pub config: Config,
    /// The credentials.
    pub credentials: Credentials,
    /// The audit-export signing pair (RSA; see [`crate::certs::signing_pair`]).
    pub signing: Pair,
    /// The API port's serving pair; `None`: plain HTTP.
    pub tls: Option<Pair>,
}

impl DataStorage {
    /// Validates the model and renders it for `layout`.
    pub fn render(&self, layout: &Layout) -> Result<Bundle, Error> {
        let config_path = layout.config_dir.join(CONFIG_FILE);
        let db_path = layout.secrets_dir.join(DB_SECRETS_FILE);
        let redis_path = layout.secrets_dir.join(REDIS_SECRETS_FILE);

        let mut config = self.config.clone();
        config.database.secrets_file = db_path.clone();
        config.redis.secrets_file = redis_path.clone();
        config.server.signer_cert_dir = layout.signer_dir.clone();
        config.server.tls.cert_dir = if self.tls.is_some() { layout.tls_dir.clone() } else { PathBuf::new() };
        let mut problems = config.problems();
        let c = &self.credentials;
        if c.db_username != config.database.user {
            problems.push(crate::Problem::new(
                "database.user",
                format!("`{}` differs from the credentials' username", config.database.user),
            ));
        }
        if !problems.is_empty() {
            return Err(Error::Invalid { path: config_path, problems });
        }

        let config_yaml = serde_saphyr::to_string(&config)
            .map_err(|source| Error::Serialize { path: config_path.clone(), source: Box::new(source) })?;
        let db_yaml = SecretsFile(vec![
            (config.database.username_key.as_str(), c.db_username.as_str()),
            (config.database.password_key.as_str(), c.db_password.as_str()),
        ])
        .to_yaml(&db_path)?;
        let redis_yaml = SecretsFile(vec![(config.redis.password_key.as_str(), c.redis_password.as_str())])
            .to_yaml(&redis_path)?;

        let mut files = vec![
            RenderedFile {
                path: config_path.clone(),
                contents: config_yaml,
                mode: 0o644,
                kind: FileKind::Config,
            },
            RenderedFile { path: db_path, contents: db_yaml, mode: 0o600, kind: FileKind::Secret },
            RenderedFile { path: redis_path, contents: redis_yaml, mode: 0o600, kind: FileKind::Secret },
        ];
        let pairs = [(&layout.signer_dir, Some(&self.signing)), (&layout.tls_dir, self.tls.as_ref())];
        for (dir, pair) in pairs {
            let Some(pair) = pair else { continue };
            // Both halves are Secret data, as in the monorepo's `kubernetes.io/tls` Secrets.
            files.push(RenderedFile {
                path: dir.join(CERT_FILE),
                contents: pair.cert.clone(),
                mode: 0o644,
                kind: FileKind::Secret,
            });
            files.push(RenderedFile {
                path: dir.join(KEY_FILE),
                contents: pair.key.clone(),
                mode: 0o600,
                kind: FileKind::Secret,
            });
        }
        Ok(Bundle { files, env: vec![(CONFIG_PATH_ENV.to_string(), config_path.display().to_string())] })
    }

    /// Renders for a local process whose files live in `dir`, writes them, and returns the
    /// environment to start it with (`CONFIG_PATH=<dir>/config.yaml`).
    pub fn write_for_process(&self, dir: &Path) -> Result<Vec<(String, String)>, Error> {
        self.render(&Layout::process(dir))?.write()
    }
}
