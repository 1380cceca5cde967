//! The typed configuration model, shaped like DataStorage's `config.yaml`, and its validation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::GoDuration;

/// Where DataStorage's config file lives inside a container or pod.
pub const CONTAINER_CONFIG_DIR: &str = "/etc/datastorage";

/// DataStorage's whole configuration: the contents of `config.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How long a graceful shutdown may take.
    #[serde(rename = "shutdownTimeout")]
    pub shutdown_timeout: GoDuration,
    /// The HTTP listener.
    pub server: ServerConfig,
    /// The PostgreSQL connection.
    pub database: DatabaseConfig,
    /// The Redis connection holding the dead-letter queue.
    pub redis: RedisConfig,
    /// Log output.
    pub logging: LoggingConfig,
}

/// The HTTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind, e.g. `127.0.0.1` or `0.0.0.0`.
    pub host: String,
    /// TCP port to listen on.
    pub port: u16,
    /// How long reading a request may take.
    pub read_timeout: GoDuration,
    /// How long handling and answering a request may take.
    pub write_timeout: GoDuration,
}

/// The PostgreSQL connection; credentials come from `secrets_file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Database name.
    pub name: String,
    /// Role to connect as; must agree with the username in the secrets file when that has one.
    pub user: String,
    /// libpq `sslmode`: disable, allow, prefer, require, verify-ca or verify-full.
    pub ssl_mode: String,
    /// Most connections open at once.
    pub max_open_conns: u32,
    /// Most idle connections kept.
    pub max_idle_conns: u32,
    /// Longest a connection is reused.
    pub conn_max_lifetime: GoDuration,
    /// Longest a connection may stay idle.
    pub conn_max_idle_time: GoDuration,
    /// YAML file holding the credentials.
    #[serde(rename = "secretsFile")]
    pub secrets_file: PathBuf,
    /// Key of the username in the secrets file.
    #[serde(rename = "usernameKey")]
    pub username_key: String,
    /// Key of the password in the secrets file.
    #[serde(rename = "passwordKey")]
    pub password_key: String,
}

/// The Redis connection and the dead-letter queue stream kept there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `host:port`.
    pub addr: String,
    /// Logical database number.
    pub db: u32,
    /// Stream that holds audit batches PostgreSQL could not take.
    pub dlq_stream_name: String,
    /// Most entries the stream may hold; beyond that a batch is refused, never trimmed away.
    pub dlq_max_len: u64,
    /// Consumer group that replays the stream into PostgreSQL.
    pub dlq_consumer_group: String,
    /// YAML file holding the password.
    #[serde(rename = "secretsFile")]
    pub secrets_file: PathBuf,
    /// Key of the password in the secrets file.
    #[serde(rename = "passwordKey")]
    pub password_key: String,
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// Least severe level written.
    pub level: LogLevel,
    /// Line format.
    pub format: LogFormat,
}

/// Log levels, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including per-request detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something recoverable went wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// The `sslmode` values libpq accepts.
pub const SSL_MODES: [&str; 6] = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/// One thing wrong with a configuration: the field (dotted, as written in the YAML) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, e.g. `database.port`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Config {
    /// A configuration for a service on loopback with the seed's defaults (database
    /// `action_history`, user `slm_user`); secrets paths are set when it is rendered.
    pub fn local(server_port: u16, postgres_port: u16, redis_port: u16) -> Self {
        Self {
            shutdown_timeout: GoDuration::secs(30),
            server: ServerConfig {
                host: "127.0.0.1".into(),
                port: server_port,
                read_timeout: GoDuration::secs(30),
                write_timeout: GoDuration::secs(30),
            },
            database: DatabaseConfig {
                host: "127.0.0.1".into(),
                port: postgres_port,
                name: "action_history".into(),
                user: "slm_user".into(),
                ssl_mode: "disable".into(),
                max_open_conns: 25,
                max_idle_conns: 5,
                conn_max_lifetime: GoDuration::secs(300),
                conn_max_idle_time: GoDuration::secs(600),
                secrets_file: PathBuf::from("db-secrets.yaml"),
                username_key: "username".into(),
                password_key: "password".into(),
            },
            redis: RedisConfig {
                addr: format!("127.0.0.1:{redis_port}"),
                db: 0,
                dlq_stream_name: "dlq-stream".into(),
                dlq_max_len: 1000,
                dlq_consumer_group: "dlq-group".into(),
                secrets_file: PathBuf::from("redis-secrets.yaml"),
                password_key: "password".into(),
            },
            logging: LoggingConfig { level: LogLevel::Info, format: LogFormat::Json },
        }
    }

    /// Every problem with the configuration, in file order; empty when it is valid.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |field: &str, reason: &str| {
            out.push(Problem { field: field.to_string(), reason: reason.to_string() });
        };
        let empty = "must not be empty";
        let zero_port = "must be a port between 1 and 65535";
        let zero_time = "must be longer than 0s";

        if self.shutdown_timeout.get().is_zero() {
            bad("shutdownTimeout", zero_time);
        }
        let s = &self.server;
        if s.host.trim().is_empty() {
            bad("server.host", empty);
        }
        if s.port == 0 {
            bad("server.port", zero_port);
        }
        if s.read_timeout.get().is_zero() {
            bad("server.read_timeout", zero_time);
        }
        if s.write_timeout.get().is_zero() {
            bad("server.write_timeout", zero_time);
        }

        let d = &self.database;
        if d.host.trim().is_empty() {
            bad("database.host", empty);
        }
        if d.port == 0 {
            bad("database.port", zero_port);
        }
        if d.name.trim().is_empty() {
            bad("database.name", empty);
        }
        if d.user.trim().is_empty() {
            bad("database.user", empty);
        }
        if !SSL_MODES.contains(&d.ssl_mode.as_str()) {
            bad("database.ssl_mode", &format!("`{}` is not one of {}", d.ssl_mode, SSL_MODES.join(", ")));
        }
        if d.max_open_conns == 0 {
            bad("database.max_open_conns", "must be at least 1");
        }
        if d.max_idle_conns > d.max_open_conns {
            bad(
                "database.max_idle_conns",
                &format!("{} is more than max_open_conns ({})", d.max_idle_conns, d.max_open_conns),
            );
        }
        if d.conn_max_lifetime.get().is_zero() {
            bad("database.conn_max_lifetime", zero_time);
        }
        if d.conn_max_idle_time.get().is_zero() {
            bad("database.conn_max_idle_time", zero_time);
        }
        if d.secrets_file.as_os_str().is_empty() {
            bad("database.secretsFile", empty);
        }
        if d.username_key.trim().is_empty() {
            bad("database.usernameKey", empty);
        }
        if d.password_key.trim().is_empty() {
            bad("database.passwordKey", empty);
        }
        if !d.username_key.trim().is_empty() && d.username_key == d.password_key {
            bad("database.passwordKey", "must differ from usernameKey");
        }

        let r = &self.redis;
        match r.addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {}
            _ => bad("redis.addr", &format!("`{}` is not host:port", r.addr)),
        }
        if r.dlq_stream_name.trim().is_empty() {
            bad("redis.dlq_stream_name", empty);
        }
        if r.dlq_max_len == 0 {
            bad("redis.dlq_max_len", "must be at least 1");
        }
        if r.dlq_consumer_group.trim().is_empty() {
            bad("redis.dlq_consumer_group", empty);
        }
        if r.secrets_file.as_os_str().is_empty() {
            bad("redis.secretsFile", empty);
        }
        if r.password_key.trim().is_empty() {
            bad("redis.passwordKey", empty);
        }
        out
    }
}
