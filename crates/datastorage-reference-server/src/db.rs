//! PostgreSQL: the connection pool, the schema check behind `/health`, writing and reading events.
//!
//! The pool hands out a fresh connection whenever a pooled one has died (deadpool discards
//! closed clients on checkout), so a PostgreSQL restart costs the requests in flight at that
//! moment and nothing after it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use datastorage::{Credentials, DatabaseConfig};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use crate::event::AuditEvent;

/// How long connecting, or waiting for a pooled connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The tables and columns this server reads and writes: `/health` fails while any is missing.
pub const REQUIRED_SCHEMA: &[(&str, &[&str])] = &[(
    "audit_events",
    &[
        "event_id",
        "event_timestamp",
        "event_category",
        "event_action",
        "event_outcome",
        "resource_type",
        "correlation_id",
        "event_data",
        "resource_id",
        "namespace",
        "actor_type",
        "actor_id",
        "event_version",
    ],
)];

/// The partition-maintenance function this server calls at start-up.
pub const PARTITION_FUNCTION: &str = "ensure_audit_events_partitions(integer, integer)";

const INSERT: &str = "INSERT INTO audit_events (event_id, event_timestamp, event_category, event_action, \
     event_outcome, resource_type, correlation_id, event_data, resource_id, namespace, actor_type, actor_id, \
     event_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
     ON CONFLICT (event_id, event_timestamp) DO NOTHING";

const SELECT: &str = "SELECT event_id, event_timestamp, event_category, event_action, event_outcome, \
     resource_type, correlation_id, event_data, resource_id, namespace, actor_type, actor_id, event_version \
     FROM audit_events WHERE correlation_id = $1 ORDER BY event_timestamp, event_id";

/// A database operation that failed, and whether the batch should wait in the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had, or it broke: PostgreSQL is down, restarting or unreachable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The schema lacks something this server uses (migrations not applied yet).
    #[error("database schema incomplete: {0}")]
    Schema(String),
    /// Any other error (a bug or bad data): retrying will not help.
    #[error("database error: {0}")]
    Other(String),
}

impl DbError {
    /// Whether the batch can wait in the dead-letter queue until the cause is fixed.
    pub fn queueable(&self) -> bool {
        matches!(self, DbError::Unavailable(_) | DbError::Schema(_))
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        let text = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        match e.code() {
            None => DbError::Unavailable(text),
            Some(code) if code.code().starts_with("08") || code.code().starts_with("57P") => {
                DbError::Unavailable(text)
            }
            Some(code) if *code == SqlState::TOO_MANY_CONNECTIONS => DbError::Unavailable(text),
            Some(code)
                if [SqlState::UNDEFINED_TABLE, SqlState::UNDEFINED_COLUMN, SqlState::UNDEFINED_FUNCTION]
                    .contains(code) =>
            {
                DbError::Schema(text)
            }
            Some(_) => DbError::Other(text),
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

/// What `/health` found in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Every table, column and function this server uses exists.
    Complete,
    /// What is missing, e.g. `column audit_events.correlation_id missing`.
    Missing(Vec<String>),
}

/// The PostgreSQL side of the server.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

/// The `sslmode` values this server can honour without TLS support (empty: libpq's `prefer`).
const PLAINTEXT_SSL_MODES: [&str; 4] = ["", "disable", "allow", "prefer"];

impl Db {
    /// A pool for the configured database; connects lazily, so PostgreSQL need not be up yet.
    pub fn new(cfg: &DatabaseConfig, credentials: &Credentials) -> Result<Self, crate::Error> {
        if !PLAINTEXT_SSL_MODES.contains(&cfg.ssl_mode.as_str()) {
            return Err(crate::Error::Unsupported(format!(
                "database.sslMode `{}` needs TLS, which this reference server does not speak (use disable or prefer)",
                cfg.ssl_mode
            )));
        }
        let mut pg = tokio_postgres::Config::new();
        pg.host(&cfg.host)
            .port(cfg.port)
            .dbname(&cfg.name)
            .user(&credentials.db_username)
            .password(&credentials.db_password)
            .application_name("datastorage-reference-server")
            // As the service does: every session gets the configured statement and lock timeouts.
            .options(format!(
                "-c statement_timeout={} -c lock_timeout={}",
                cfg.statement_timeout.get().as_millis(),
                cfg.lock_timeout.get().as_millis()
            ))
            .connect_timeout(CONNECT_TIMEOUT);
        let manager =
            Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(cfg.max_open_conns as usize)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| crate::Error::Unsupported(format!("building the connection pool: {e}")))?;
        Ok(Self { pool })
    }

    /// Checks, against `information_schema`, that everything this server uses exists.
    pub async fn schema_state(&self) -> Result<SchemaState, DbError> {
        let client = self.pool.get().await?;
        let tables: Vec<&str> = REQUIRED_SCHEMA.iter().map(|(t, _)| *t).collect();
        let rows = client
            .query(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = ANY($1)",
                &[&tables],
            )
            .await?;
        let present: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut missing = Vec::new();
        for (table, columns) in REQUIRED_SCHEMA {
            if !present.iter().any(|(t, _)| t == table) {
                missing.push(format!("table {table} missing"));
                continue;
            }
            for column in *columns {
                if !present.iter().any(|(t, c)| t == table && c == column) {
                    missing.push(format!("column {table}.{column} missing"));
                }
            }
        }
        let function: bool =
            client.query_one("SELECT to_regprocedure($1) IS NOT NULL", &[&PARTITION_FUNCTION]).await?.get(0);
        if !function {
            missing.push(format!("function {PARTITION_FUNCTION} missing"));
        }
        Ok(if missing.is_empty() { SchemaState::Complete } else { SchemaState::Missing(missing) })
    }

    /// Creates the audit partitions from last month to three months ahead; returns how many were new.
    pub async fn ensure_partitions(&self) -> Result<i32, DbError> {
        let client = self.pool.get().await?;
        Ok(client.query_one("SELECT ensure_audit_events_partitions(1, 3)", &[]).await?.get(0))
    }

    /// Writes the events in one transaction; an event already stored (same id and timestamp, as
    /// when a replay repeats a batch whose commit was not acknowledged) is skipped.
    pub async fn insert(&self, events: &[AuditEvent]) -> Result<u64, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let stmt = tx.prepare_cached(INSERT).await?;
        let mut written = 0;
        for e in events {
            let data = Value::Object(e.event_data.clone());
            written += tx
                .execute(
                    &stmt,
                    &[
                        &e.event_id,
                        &e.event_timestamp,
                        &e.event_category,
                        &e.event_action,
                        &e.event_outcome,
                        &e.resource_type,
                        &e.correlation_id,
                        &data,
                        &e.resource_id,
                        &e.namespace,
                        &e.actor_type,
                        &e.actor_id,
                        &e.event_version,
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// The events of one correlation id, oldest first.
    pub async fn by_correlation_id(&self, correlation_id: &str) -> Result<Vec<AuditEvent>, DbError> {
        let client = self.pool.get().await?;
        let rows = client.query(SELECT, &[&correlation_id]).await?;
        rows.iter().map(event_from_row).collect()
    }
}

fn event_from_row(row: &Row) -> Result<AuditEvent, DbError> {
    let data: Value = row.get(7);
    let Value::Object(event_data) = data else {
        return Err(DbError::Other(format!(
            "event_data of event {} is not a JSON object",
            row.get::<_, uuid::Uuid>(0)
        )));
    };
    let event_timestamp: DateTime<Utc> = row.get(1);
    Ok(AuditEvent {
        event_id: row.get(0),
        event_timestamp,
        event_category: row.get(2),
        event_action: row.get(3),
        event_outcome: row.get(4),
        resource_type: row.get(5),
        correlation_id: row.get(6),
        event_data,
        resource_id: row.get(8),
        namespace: row.get(9),
        actor_type: row.get(10),
        actor_id: row.get(11),
        event_version: row.get(12),
    })
}
