//! The typed configuration model, shaped like the `config.yaml` the current DataStorage reads
//! (camelCase keys, `pkg/datastorage/config`), its defaults and its validation.
//!
//! Defaults are the service's own: a key left out reads as the value DataStorage would use, so a
//! file rendered from [`Config::local`] and a hand-written one agree on what the service does.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::GoDuration;

/// Where DataStorage's config file lives inside a container or pod.
pub const CONTAINER_CONFIG_DIR: &str = "/etc/datastorage";
/// The API port inside a container (`server.port` in the monorepo's manifests).
pub const API_PORT: u16 = 8080;
/// DataStorage's default health port (`/healthz`, `/readyz`).
pub const HEALTH_PORT: u16 = 8081;
/// DataStorage's default metrics port (`/metrics`).
pub const METRICS_PORT: u16 = 9090;
/// Where the service reads its signing pair when `server.signerCertDir` is not set.
pub const DEFAULT_SIGNER_CERT_DIR: &str = "/etc/certs";
/// Where the monorepo's manifests mount the signing pair (Secret `datastorage-signing`).
pub const CONTAINER_SIGNER_DIR: &str = "/etc/signing-certs";
/// Where the monorepo's manifests mount the API port's TLS pair (Secret `datastorage-tls`).
pub const CONTAINER_TLS_DIR: &str = "/etc/tls";
/// The Secret (type `kubernetes.io/tls`) the signing pair is mounted from on Kubernetes.
pub const SIGNING_SECRET: &str = "datastorage-signing";
/// The Secret (type `kubernetes.io/tls`) the API port's TLS pair is mounted from on Kubernetes.
pub const TLS_SECRET: &str = "datastorage-tls";
/// The ConfigMap (key `ca.crt`) that hands clients on Kubernetes the CA of DataStorage's TLS.
pub const CA_CONFIG_MAP: &str = "inter-service-ca";
/// DataStorage's readiness path, served on the health port (and the API port).
pub const READY_PATH: &str = "/readyz";
/// DataStorage's liveness path, served on the health port.
pub const LIVE_PATH: &str = "/healthz";

/// DataStorage's whole configuration: the contents of `config.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// `production` turns on the service's production-only checks (TLS, sslMode); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub environment: String,
    /// The HTTP listeners.
    pub server: ServerConfig,
    /// Log output.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// The PostgreSQL connection.
    pub database: DatabaseConfig,
    /// The Redis connection holding the dead-letter queue.
    pub redis: RedisConfig,
}

/// The HTTP listeners: the API, health and metrics ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// The API port (`/api/v1/...`).
    pub port: u16,
    /// Address to bind, e.g. `127.0.0.1` or `0.0.0.0`; empty binds every interface.
    #[serde(default)]
    pub host: String,
    /// The port of `/metrics`.
    #[serde(default = "default_metrics_port")]
    pub metrics_port: u16,
    /// The port of `/healthz` and `/readyz`.
    #[serde(default = "default_health_port")]
    pub health_port: u16,
    /// Most audit events one batch request may carry.
    #[serde(default = "default_max_batch_size")]
    pub max_batch_size: u32,
    /// How long reading a request may take.
    #[serde(default = "default_io_timeout")]
    pub read_timeout: GoDuration,
    /// How long handling and answering a request may take.
    #[serde(default = "default_io_timeout")]
    pub write_timeout: GoDuration,
    /// How long a graceful shutdown may take; the service clamps it to 30s..120s.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: GoDuration,
    /// Where the audit-export signing pair is read (`tls.crt`, `tls.key`, RSA); the service
    /// refuses to start without it.
    #[serde(default = "default_signer_cert_dir")]
    pub signer_cert_dir: PathBuf,
    /// TLS for the API port.
    #[serde(default, skip_serializing_if = "TlsConfig::is_unset")]
    pub tls: TlsConfig,
}

/// TLS for the API port: HTTPS when `certDir` holds `tls.crt` and `tls.key`, plain HTTP otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// The directory of the serving pair; empty: no TLS.
    #[serde(default, skip_serializing_if = "crate::model::path_is_empty")]
    pub cert_dir: PathBuf,
}

impl TlsConfig {
    /// Whether nothing is set (the key is left out of a rendered file).
    pub fn is_unset(&self) -> bool {
        self.cert_dir.as_os_str().is_empty()
    }
}

pub(crate) fn path_is_empty(p: &std::path::Path) -> bool {
    p.as_os_str().is_empty()
}

/// The PostgreSQL connection; credentials come from `secretsFile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseConfig {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Database name.
    pub name: String,
    /// Role to connect as; the secrets file's username (under `usernameKey`) overrides it.
    pub user: String,
    /// libpq `sslmode`: disable, allow, prefer, require, verify-ca or verify-full.
    #[serde(default)]
    pub ssl_mode: String,
    /// Most connections open at once.
    #[serde(default = "default_max_open_conns")]
    pub max_open_conns: u32,
    /// Most idle connections kept.
    #[serde(default)]
    pub max_idle_conns: u32,
    /// Longest a connection is reused (the service refuses to start without it).
    pub conn_max_lifetime: GoDuration,
    /// Longest a connection may stay idle (the service refuses to start without it).
    pub conn_max_idle_time: GoDuration,
    /// PostgreSQL's `statement_timeout` for every connection.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout: GoDuration,
    /// PostgreSQL's `lock_timeout` for every connection.
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout: GoDuration,
    /// YAML file holding the credentials.
    pub secrets_file: PathBuf,
    /// Key of the username in the secrets file; empty: `user` as written.
    #[serde(default)]
    pub username_key: String,
    /// Key of the password in the secrets file.
    pub password_key: String,
}

/// The Redis connection and the dead-letter queue kept there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisConfig {
    /// `host:port`.
    pub addr: String,
    /// Most entries the dead-letter stream may hold; beyond that a batch is refused, never trimmed away.
    #[serde(default = "default_dlq_max_len")]
    pub dlq_max_len: u64,
    /// YAML file holding the password.
    pub secrets_file: PathBuf,
    /// Key of the password in the secrets file.
    pub password_key: String,
}

/// Log output: the service always writes JSON lines; only the level is configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LoggingConfig {
    /// Least severe level written.
    #[serde(default)]
    pub level: LogLevel,
}

/// Log levels, least to most severe; read in any case, as the service upper-cases them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Everything, including per-request detail.
    Debug,
    /// Normal operation.
    #[default]
    Info,
    /// Something recoverable went wrong.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The level as the monorepo's files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(LogLevel::Debug),
            "INFO" => Ok(LogLevel::Info),
            "WARN" => Ok(LogLevel::Warn),
            "ERROR" => Ok(LogLevel::Error),
            _ => Err(format!("invalid log level: {s} (must be DEBUG, INFO, WARN, or ERROR)")),
        }
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

fn default_metrics_port() -> u16 {
    METRICS_PORT
}
fn default_health_port() -> u16 {
    HEALTH_PORT
}
fn default_max_batch_size() -> u32 {
    500
}
fn default_io_timeout() -> GoDuration {
    GoDuration::secs(30)
}
fn default_shutdown_timeout() -> GoDuration {
    GoDuration::secs(60)
}
fn default_signer_cert_dir() -> PathBuf {
    PathBuf::from(DEFAULT_SIGNER_CERT_DIR)
}
fn default_max_open_conns() -> u32 {
    25
}
fn default_statement_timeout() -> GoDuration {
    GoDuration::secs(30)
}
fn default_lock_timeout() -> GoDuration {
    GoDuration::secs(10)
}
fn default_dlq_max_len() -> u64 {
    10_000
}

/// The `sslmode` values libpq accepts.
pub const SSL_MODES: [&str; 6] = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/// One thing wrong with a configuration: the field (dotted, as written in the YAML), where it is
/// when read from a file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, e.g. `database.port`.
    pub field: String,
    /// Line and column (1-based) of the field in the file, when it was read from one.
    pub at: Option<(u64, u64)>,
    /// What is wrong with it.
    pub reason: String,
}

impl Problem {
    /// A problem with `field` that has no position in a file (the model was built in code).
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), at: None, reason: reason.into() }
    }

    /// The problem as a diagnostic on `file` (the config file it was read from).
    pub fn diagnostic(&self, file: &std::path::Path, severity: diag::Severity) -> diag::Diagnostic {
        let d = diag::Diagnostic::error(file, format!("{}: {}", self.field, self.reason));
        let at = self.at.map(|(l, c)| (l as usize, c as usize));
        diag::Diagnostic { severity, ..d.at(at.map(|a| a.0), at.map(|a| a.1)) }
    }
}

impl Config {
    /// A configuration for a service on loopback: API port `server_port`, the service's default
    /// health and metrics ports (set them when several run on one machine), database
    /// `action_history` as `slm_user` (the monorepo's); secrets paths are set when rendered.
    pub fn local(server_port: u16, postgres_port: u16, redis_port: u16) -> Self {
        Self {
            environment: String::new(),
            server: ServerConfig {
                port: server_port,
                host: "127.0.0.1".into(),
                metrics_port: METRICS_PORT,
                health_port: HEALTH_PORT,
                max_batch_size: default_max_batch_size(),
                read_timeout: default_io_timeout(),
                write_timeout: default_io_timeout(),
                shutdown_timeout: default_shutdown_timeout(),
                signer_cert_dir: default_signer_cert_dir(),
                tls: TlsConfig::default(),
            },
            logging: LoggingConfig { level: LogLevel::Info },
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
                statement_timeout: default_statement_timeout(),
                lock_timeout: default_lock_timeout(),
                secrets_file: PathBuf::from("db-secrets.yaml"),
                username_key: "username".into(),
                password_key: "password".into(),
            },
            redis: RedisConfig {
                addr: format!("127.0.0.1:{redis_port}"),
                dlq_max_len: default_dlq_max_len(),
                secrets_file: PathBuf::from("redis-secrets.yaml"),
                password_key: "password".into(),
            },
        }
    }

    /// The shutdown timeout the service actually uses: `server.shutdownTimeout` clamped to 30s..120s.
    pub fn shutdown_timeout(&self) -> std::time::Duration {
        use std::time::Duration;
        self.server.shutdown_timeout.get().clamp(Duration::from_secs(30), Duration::from_secs(120))
    }

    /// Every problem with the configuration, in file order; empty when it is valid. The checks
    /// are the service's own (`config_validate.go`), plus the ones it leaves to start-up failures.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |field: &str, reason: &str| out.push(Problem::new(field, reason));
        let empty = "must not be empty";
        let zero_time = "must be longer than 0s";
        let user_port = |p: u16| (1024..=65535).contains(&p);
        let user_port_reason = |p: u16| format!("must be between 1024 and 65535, got: {p}");

        let s = &self.server;
        if !user_port(s.port) {
            bad("server.port", &user_port_reason(s.port));
        }
        if !user_port(s.metrics_port) {
            bad("server.metricsPort", &user_port_reason(s.metrics_port));
        }
        if s.health_port == 0 {
            bad("server.healthPort", "must be a port between 1 and 65535");
        }
        let ports = [
            ("server.port", s.port),
            ("server.metricsPort", s.metrics_port),
            ("server.healthPort", s.health_port),
        ];
        for (i, (field, port)) in ports.iter().enumerate() {
            if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
                bad(field, &format!("{port} is also {other}: each listener needs its own port"));
            }
        }
        if s.max_batch_size == 0 {
            bad("server.maxBatchSize", "must be positive, got: 0");
        }
        if s.read_timeout.get().is_zero() {
            bad("server.readTimeout", zero_time);
        }
        if s.write_timeout.get().is_zero() {
            bad("server.writeTimeout", zero_time);
        }

        let d = &self.database;
        if d.host.trim().is_empty() {
            bad("database.host", empty);
        }
        if d.port == 0 {
            bad("database.port", "must be between 1 and 65535, got: 0");
        }
        if d.name.trim().is_empty() {
            bad("database.name", empty);
        }
        if d.user.trim().is_empty() {
            bad("database.user", empty);
        }
        if !d.ssl_mode.is_empty() && !SSL_MODES.contains(&d.ssl_mode.as_str()) {
            bad("database.sslMode", &format!("`{}` is not one of {}", d.ssl_mode, SSL_MODES.join(", ")));
        }
        if d.max_open_conns == 0 {
            bad("database.maxOpenConns", "must be positive, got: 0");
        }
        if d.max_idle_conns > d.max_open_conns {
            bad(
                "database.maxIdleConns",
                &format!("{} is more than maxOpenConns ({})", d.max_idle_conns, d.max_open_conns),
            );
        }
        if d.conn_max_lifetime.get().is_zero() {
            bad("database.connMaxLifetime", zero_time);
        }
        if d.conn_max_idle_time.get().is_zero() {
            bad("database.connMaxIdleTime", zero_time);
        }
        if d.secrets_file.as_os_str().is_empty() {
            bad("database.secretsFile", "required (ADR-030 Section 6)");
        }
        if d.password_key.trim().is_empty() {
            bad("database.passwordKey", "required (ADR-030 Section 6)");
        }
        if !d.username_key.trim().is_empty() && d.username_key == d.password_key {
            bad("database.passwordKey", "must differ from usernameKey");
        }

        let r = &self.redis;
        match r.addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {}
            _ => bad("redis.addr", &format!("`{}` is not host:port", r.addr)),
        }
        if r.dlq_max_len == 0 {
            bad("redis.dlqMaxLen", "must be at least 1");
        }
        if r.secrets_file.as_os_str().is_empty() {
            bad("redis.secretsFile", "required (ADR-030 Section 6)");
        }
        if r.password_key.trim().is_empty() {
            bad("redis.passwordKey", "required (ADR-030 Section 6)");
        }
        if self.environment.eq_ignore_ascii_case("production")
            && matches!(d.ssl_mode.as_str(), "" | "disable")
        {
            bad("database.sslMode", "production needs TLS to PostgreSQL (sslMode other than disable)");
        }
        out
    }
}
