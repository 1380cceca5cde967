//! Reading a rendered configuration back, as the service does at start-up: the config file,
//! then the secrets files it names, all validated.

use std::path::{Path, PathBuf};

use crate::secrets::ReadSecrets;
use crate::{CONFIG_PATH_ENV, Config, Credentials, Error, Problem};

/// A configuration read from disk with the credentials from its secrets files.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config file read.
    pub path: PathBuf,
    /// Its contents, validated.
    pub config: Config,
    /// The credentials from the secrets files.
    pub credentials: Credentials,
    /// Keys the file has that DataStorage ignores or this model leaves alone, each saying why:
    /// worth a log line at start-up, not a refusal.
    pub warnings: Vec<Problem>,
}

impl Config {
    /// Parses and validates a config file's text; `path` names the file in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, Error> {
        Self::read(text, path).map(|(config, _)| config)
    }

    /// Parses and validates a config file's text, returning it with the warnings about keys
    /// DataStorage would ignore or this model leaves alone. A key that misspells one the
    /// service reads (e.g. seed-era `read_timeout`) is an error, with its line.
    pub fn read(text: &str, path: &Path) -> Result<(Self, Vec<Problem>), Error> {
        let keys = crate::keys::check(text);
        if !keys.errors.is_empty() {
            return Err(Error::Invalid { path: path.to_path_buf(), problems: keys.errors });
        }
        let options = serde_saphyr::options! { with_snippet: false };
        let config: Config = serde_saphyr::from_str_with_options(text, options)
            .map_err(|source| Error::Parse { path: path.to_path_buf(), source: Box::new(source) })?;
        let mut problems = config.problems();
        for p in problems.iter_mut().filter(|p| p.at.is_none()) {
            p.at = diag::yaml::locate(text, &p.field).map(|(l, c)| (l as u64, c as u64));
        }
        if problems.is_empty() {
            Ok((config, keys.warnings))
        } else {
            Err(Error::Invalid { path: path.to_path_buf(), problems })
        }
    }
}

/// Reads the config file at `path` and the secrets files it names (a relative `secretsFile`
/// is taken relative to the config file's directory).
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let (config, warnings) = Config::read(&text, path)?;
    let base = path.parent().unwrap_or(Path::new("."));

    let db = ReadSecrets::read(&base.join(&config.database.secrets_file))?;
    // As the service does: the secrets file's username, when it has one, wins over `user`.
    let db_username = match config.database.username_key.as_str() {
        "" => config.database.user.clone(),
        key => db.find(key).unwrap_or(&config.database.user).to_string(),
    };
    let db_password = db.get(&config.database.password_key, "database.passwordKey")?.to_string();
    let redis = ReadSecrets::read(&base.join(&config.redis.secrets_file))?;
    let redis_password = redis.get(&config.redis.password_key, "redis.passwordKey")?.to_string();

    Ok(Loaded {
        path: path.to_path_buf(),
        config,
        credentials: Credentials { db_username, db_password, redis_password },
        warnings,
    })
}

/// Reads the config file named by `CONFIG_PATH`.
pub fn load_from_env() -> Result<Loaded, Error> {
    let path = std::env::var_os(CONFIG_PATH_ENV).ok_or(Error::NoConfigPath)?;
    load(Path::new(&path))
}
