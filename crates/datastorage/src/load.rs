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
}

impl Config {
    /// Parses and validates a config file's text; `path` names the file in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, Error> {
        let config: Config = serde_saphyr::from_str(text)
            .map_err(|source| Error::Parse { path: path.to_path_buf(), source: Box::new(source) })?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
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
    let config = Config::from_yaml(&text, path)?;
    let base = path.parent().unwrap_or(Path::new("."));

    let db = ReadSecrets::read(&base.join(&config.database.secrets_file))?;
    let db_username = db.get(&config.database.username_key, "database.usernameKey")?.to_string();
    let db_password = db.get(&config.database.password_key, "database.passwordKey")?.to_string();
    if db_username != config.database.user {
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            problems: vec![Problem {
                field: "database.user".into(),
                reason: format!(
                    "`{}` differs from the username in {}",
                    config.database.user,
                    base.join(&config.database.secrets_file).display()
                ),
            }],
        });
    }
    let redis = ReadSecrets::read(&base.join(&config.redis.secrets_file))?;
    let redis_password = redis.get(&config.redis.password_key, "redis.passwordKey")?.to_string();

    Ok(Loaded {
        path: path.to_path_buf(),
        config,
        credentials: Credentials { db_username, db_password, redis_password },
    })
}

/// Reads the config file named by `CONFIG_PATH`.
pub fn load_from_env() -> Result<Loaded, Error> {
    let path = std::env::var_os(CONFIG_PATH_ENV).ok_or(Error::NoConfigPath)?;
    load(Path::new(&path))
}
