//! The PostgreSQL probe: ready when a query succeeds as the given user in the given database.
//!
//! Errors are classified by SQLSTATE: the server starting up or shutting down (`57P03`, `57P01`)
//! and a schema not migrated yet (`42P01`, ...) are worth waiting for; authentication failures
//! (class `28`), a missing database (`3D000`) or a broken query are not.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};

use crate::{BoxFuture, Probe, ProbeError, Status, error_chain};

/// Connects over TCP as a user to a database and runs a query (`SELECT 1` unless changed).
#[derive(Debug, Clone)]
pub struct PostgresProbe {
    config: Config,
    query: String,
}

impl PostgresProbe {
    /// A probe for a connection configuration (user, password, host, port and database).
    pub fn new(mut config: Config) -> Self {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(3));
        }
        Self { config, query: "SELECT 1".into() }
    }

    /// A probe for a `postgres://user:password@host:port/db` URL.
    pub fn from_url(url: &str) -> Result<Self, ProbeError> {
        let config: Config = url.parse().map_err(|e: tokio_postgres::Error| ProbeError::InvalidAddress {
            what: "postgres URL",
            input: redact::connection_string(url),
            reason: e.to_string(),
        })?;
        Ok(Self::new(config))
    }

    /// Runs `sql` instead of `SELECT 1`, e.g. `SELECT 1 FROM audit_events LIMIT 1` to wait for a schema.
    pub fn query(mut self, sql: impl Into<String>) -> Self {
        self.query = sql.into();
        self
    }

    async fn try_query(&self) -> Result<(), tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        let driver = tokio::spawn(connection);
        let result = client.simple_query(&self.query).await.map(drop);
        drop(client);
        let _ = driver.await;
        result
    }
}

impl Probe for PostgresProbe {
    fn name(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let user = self.config.get_user().unwrap_or("?");
        let db = self.config.get_dbname().unwrap_or(user);
        format!("postgres {user}@{host}:{port}/{db}")
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            match self.try_query().await {
                Ok(()) => Status::Ready,
                Err(e) => classify(&e),
            }
        })
    }
}

/// Whether an error is worth waiting out, decided by its SQLSTATE where the server sent one.
fn classify(e: &tokio_postgres::Error) -> Status {
    let Some(db) = e.as_db_error() else {
        let text = error_chain(e);
        // The client refuses before talking to the server when it has no password to send;
        // there is no SQLSTATE for that, only this message.
        if text.contains("password missing") {
            return Status::Failed(text);
        }
        return Status::NotYet(text);
    };
    let code = db.code();
    let reason = format!("{} (SQLSTATE {})", db.message(), code.code());
    // Class 28 is authentication (wrong password, no such role, no pg_hba entry); these and a
    // missing database or a broken query never fix themselves. Everything else, notably 57P03
    // (starting up), 57P01 (shutting down), 53300 (too many connections) and 42P01 (a table not
    // migrated yet), is waited out: failing a wait wrongly costs a whole run.
    let fatal = [SqlState::INVALID_CATALOG_NAME, SqlState::SYNTAX_ERROR, SqlState::INSUFFICIENT_PRIVILEGE];
    if code.code().starts_with("28") || fatal.contains(code) {
        Status::Failed(reason)
    } else {
        Status::NotYet(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_shows_user_host_and_database_but_no_password() {
        let p = PostgresProbe::from_url("postgres://svc:hunter2@127.0.0.1:5544/app").unwrap();
        assert_eq!(p.name(), "postgres svc@127.0.0.1:5544/app");
    }

    #[test]
    fn a_bad_url_is_reported_without_its_password() {
        let err = PostgresProbe::from_url("postgres://svc:hunter2@127.0.0.1:notaport/app").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("invalid postgres URL `postgres://svc:***@127.0.0.1:notaport/app`"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }
}
