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
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use crate::event::AuditEvent;
use crate::query::Filters;

/// How long connecting, or waiting for a pooled connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Every column of `audit_events` this server writes and reads, in the order of [`COLUMNS`].
const EVENT_COLUMNS: &[&str] = &[
    "event_id",
    "event_timestamp",
    "event_version",
    "event_type",
    "event_category",
    "event_action",
    "event_outcome",
    "correlation_id",
    "event_data",
    "actor_type",
    "actor_id",
    "actor_ip",
    "resource_type",
    "resource_id",
    "parent_event_id",
    "parent_event_date",
    "namespace",
    "cluster_id",
    "severity",
    "duration_ms",
    "error_code",
    "error_message",
    "retention_days",
    "is_sensitive",
];

/// The tables and columns this server reads and writes: `/health` fails while any is missing.
pub const REQUIRED_SCHEMA: &[(&str, &[&str])] = &[("audit_events", EVENT_COLUMNS)];

/// The partition-maintenance function this server calls at start-up.
pub const PARTITION_FUNCTION: &str = "ensure_audit_events_partitions(integer, integer)";

/// `event_id, event_timestamp, ...`: the select list and insert column list.
const COLUMNS: &str = "event_id, event_timestamp, event_version, event_type, event_category, event_action, \
     event_outcome, correlation_id, event_data, actor_type, actor_id, actor_ip, resource_type, resource_id, \
     parent_event_id, parent_event_date, namespace, cluster_id, severity, duration_ms, error_code, \
     error_message, retention_days, is_sensitive";

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
    /// What a client may be told: the kind of failure, never PostgreSQL's own words (those go
    /// to the log only).
    pub fn summary(&self) -> &'static str {
        match self {
            DbError::Unavailable(_) => "the database is unavailable",
            DbError::Schema(_) => "the database schema is incomplete (migrations not applied)",
            DbError::Other(_) => "the database refused the operation",
        }
    }

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
        let placeholders: Vec<String> = (1..=EVENT_COLUMNS.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO audit_events ({COLUMNS}) VALUES ({}) ON CONFLICT (event_id, event_timestamp) DO NOTHING",
            placeholders.join(", ")
        );
        let stmt = tx.prepare_cached(&sql).await?;
        let mut written = 0;
        for e in events {
            let data = Value::Object(e.event_data.clone());
            written += tx
                .execute(
                    &stmt,
                    &[
                        &e.event_id,
                        &e.event_timestamp,
                        &e.version,
                        &e.event_type,
                        &e.event_category,
                        &e.event_action,
                        &e.event_outcome,
                        &e.correlation_id,
                        &data,
                        &e.actor_type,
                        &e.actor_id,
                        &e.actor_ip,
                        &e.resource_type,
                        &e.resource_id,
                        &e.parent_event_id,
                        &e.parent_event_date,
                        &e.namespace,
                        &e.cluster_id,
                        &e.severity,
                        &e.duration_ms,
                        &e.error_code,
                        &e.error_message,
                        &e.retention_days,
                        &e.is_sensitive,
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// One page of the events matching `filters`, newest first, and how many match in all.
    pub async fn query(&self, filters: &Filters) -> Result<(Vec<AuditEvent>, i64), DbError> {
        let f = filters;
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let exact: [(&str, Option<&(dyn ToSql + Sync)>); 7] = [
            ("event_type =", f.event_type.as_ref().map(|v| v as _)),
            ("event_category =", f.event_category.as_ref().map(|v| v as _)),
            ("event_outcome =", f.event_outcome.as_ref().map(|v| v as _)),
            ("severity =", f.severity.as_ref().map(|v| v as _)),
            ("correlation_id =", f.correlation_id.as_ref().map(|v| v as _)),
            ("event_timestamp >=", f.since.as_ref().map(|v| v as _)),
            ("event_timestamp <=", f.until.as_ref().map(|v| v as _)),
        ];
        for (condition, value) in exact {
            if let Some(value) = value {
                params.push(value);
                conditions.push(format!("{condition} ${}", params.len()));
            }
        }
        if let Some((key, value)) = &f.detail {
            // The key is bound as a parameter too: nothing the client sends is spliced into SQL.
            params.push(key);
            params.push(value);
            conditions.push(format!("event_data ->> ${} = ${}", params.len() - 1, params.len()));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let count_sql = format!("SELECT count(*) FROM audit_events{filter}");
        let page_sql = format!(
            "SELECT {COLUMNS} FROM audit_events{filter} \
             ORDER BY event_timestamp DESC, event_id DESC LIMIT ${} OFFSET ${}",
            params.len() + 1,
            params.len() + 2
        );
        let mut page_params = params.clone();
        page_params.push(&f.limit);
        page_params.push(&f.offset);

        let mut client = self.pool.get().await?;
        // One snapshot for the count and the page, so `total` and `data` agree.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let total: i64 = tx.query_one(&count_sql, &params).await?.get(0);
        let rows = tx.query(&page_sql, &page_params).await?;
        tx.commit().await?;
        let events = rows.iter().map(event_from_row).collect::<Result<_, _>>()?;
        Ok((events, total))
    }
}

fn event_from_row(row: &Row) -> Result<AuditEvent, DbError> {
    let data: Value = row.try_get("event_data")?;
    let Value::Object(event_data) = data else {
        return Err(DbError::Other(format!(
            "event_data of event {} is not a JSON object",
            row.get::<_, uuid::Uuid>("event_id")
        )));
    };
    let event_timestamp: DateTime<Utc> = row.try_get("event_timestamp")?;
    Ok(AuditEvent {
        event_id: row.try_get("event_id")?,
        version: row.try_get("event_version")?,
        event_type: row.try_get("event_type")?,
        event_timestamp,
        event_category: row.try_get("event_category")?,
        event_action: row.try_get("event_action")?,
        event_outcome: row.try_get("event_outcome")?,
        correlation_id: row.try_get("correlation_id")?,
        event_data,
        actor_type: row.try_get("actor_type")?,
        actor_id: row.try_get("actor_id")?,
        actor_ip: row.try_get("actor_ip")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        parent_event_id: row.try_get("parent_event_id")?,
        parent_event_date: row.try_get("parent_event_date")?,
        namespace: row.try_get("namespace")?,
        cluster_id: row.try_get("cluster_id")?,
        severity: row.try_get("severity")?,
        duration_ms: row.try_get("duration_ms")?,
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        retention_days: row.try_get("retention_days")?,
        is_sensitive: row.try_get("is_sensitive")?,
    })
}
