//! Running a plan against a server: under the lock, each migration in its own transaction (or
//! statement by statement for `NO TRANSACTION`), recorded only once every statement succeeded.

use std::time::{Duration, Instant};

use serde::Serialize;
use std::sync::{Arc, OnceLock};
use tokio_postgres::error::ErrorPosition;

use tokio_postgres::{Client, NoTls};

use crate::error::StatementFailure;
use crate::parse::Statement;
use crate::plan::{Direction, Plan, Selection, Step};
use crate::source::{Migration, MigrationSet};
use crate::{Error, envsubst, store};

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait for another run's lock before giving up.
    pub lock_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self { lock_timeout: Duration::from_secs(300) }
    }
}

/// Progress of a run, for a caller that shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Another session holds the lock.
    WaitingForLock {
        /// How long this run has waited so far.
        waited_ms: u128,
        /// Who holds the lock.
        holder: String,
    },
    /// A migration starts.
    Started {
        /// Its version.
        version: i64,
        /// Its file name.
        name: String,
        /// Up or down.
        direction: Direction,
    },
    /// A migration finished and was recorded.
    Finished {
        /// Its version.
        version: i64,
        /// Its file name.
        name: String,
        /// How long it took.
        duration_ms: u128,
    },
    /// A version applied without a recorded checksum (e.g. by goose) now has one.
    ChecksumAdopted {
        /// The version.
        version: i64,
    },
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The plan that was carried out.
    pub plan: Plan,
    /// The migrations carried out, with durations.
    pub done: Vec<Done>,
}

/// One migration carried out.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    /// Its version.
    pub version: i64,
    /// Its file name.
    pub name: String,
    /// How long it took.
    pub duration_ms: u128,
}

/// A connection to the database: a `tokio_postgres::Client` (which it derefs to) that keeps
/// the reason its connection ended. tokio-postgres reports that reason only to the task driving
/// the connection; every later call just fails with "connection closed".
#[derive(Debug)]
pub struct Connection {
    client: Client,
    lost: Arc<OnceLock<String>>,
}

impl std::ops::Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Connection {
    /// Why the connection ended, when it ended with an error (the server's FATAL message, an
    /// I/O error).
    pub fn lost(&self) -> Option<&str> {
        self.lost.get().map(String::as_str)
    }

    /// `result`, its error explained as by [`Connection::explain`].
    pub async fn explained<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        match result {
            Ok(value) => Ok(value),
            Err(e) => Err(self.explain(e).await),
        }
    }

    /// `e`, with the reason the connection ended when it had (as [`Error::ConnectionLost`]).
    ///
    /// The reason is the driver's error, or else the first error explained after the end (the
    /// call that met the server's FATAL message; the driver may then end without an error).
    pub async fn explain(&self, e: Error) -> Error {
        if ends_connection(&e) {
            // Met the reason itself; the client may not have seen the end yet.
            let _ = self.lost.set(e.to_string());
            return e;
        }
        if !self.client.is_closed() {
            return e;
        }
        // The driver task records its reason right after the client sees the connection close.
        for _ in 0..20 {
            if self.lost().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let text = e.to_string();
        match self.lost() {
            Some(reason) if !text.contains(reason) => {
                Error::ConnectionLost { reason: reason.to_string(), during: Box::new(e) }
            }
            Some(_) => e,
            None => {
                if !text.contains("connection closed") {
                    let _ = self.lost.set(text);
                }
                e
            }
        }
    }
}

/// Whether `e` is the server ending the session: SQLSTATE class 57 (operator intervention:
/// terminated, shutting down) or 08 (connection exception).
fn ends_connection(e: &Error) -> bool {
    let code = match e {
        Error::Db { source, .. } => source.as_db_error().map(|d| d.code().code().to_string()),
        Error::Statement(f) => Some(f.code.clone()),
        _ => None,
    };
    code.is_some_and(|c| c.starts_with("57") || c.starts_with("08"))
}

/// Connects to `url` (a `postgres://` URL or key=value string) without TLS.
pub async fn connect(url: &str) -> Result<Connection, Error> {
    let err = |source| Error::Connect { url: redact::connection_string(url), source };
    let mut config: tokio_postgres::Config = url.parse().map_err(err)?;
    if config.get_application_name().is_none() {
        config.application_name("cargo-xtask-migrate");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let (client, connection) = config.connect(NoTls).await.map_err(err)?;
    let lost = Arc::new(OnceLock::new());
    let record = lost.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            // With its causes: "error communicating with the server" alone says little.
            let mut reason = describe_db_error(&e);
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                reason.push_str(&format!(": {c}"));
                cause = c.source();
            }
            // A bare "connection closed" explains nothing; the FATAL a call met will (explain).
            if !e.is_closed() {
                let _ = record.set(reason);
            }
        }
    });
    Ok(Connection { client, lost })
}

/// Applies the selected, not yet applied migrations in version order.
pub async fn up(
    client: &Client,
    set: &MigrationSet,
    selection: &Selection,
    options: &Options,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<Report, Error> {
    let wanted = selection.resolve(set)?;
    take_lock(client, options, on_event).await?;
    let result = async {
        let applied = prepare(client, set, on_event).await?;
        let plan = Plan::up(set, &applied, &wanted);
        let done = run(client, set, &plan, on_event).await?;
        Ok(Report { plan, done })
    }
    .await;
    release_lock(client, result).await
}

/// Rolls back the newest applied migration, or with `to`, every applied migration above `to`.
pub async fn down(
    client: &Client,
    set: &MigrationSet,
    to: Option<i64>,
    options: &Options,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<Report, Error> {
    if let Some(v) = to.filter(|v| *v != 0)
        && set.get(v).is_none()
    {
        return Err(Error::UnknownVersion { version: v });
    }
    take_lock(client, options, on_event).await?;
    let result = async {
        let applied = prepare(client, set, on_event).await?;
        let plan = Plan::down(set, &applied, to)?;
        let done = run(client, set, &plan, on_event).await?;
        Ok(Report { plan, done })
    }
    .await;
    release_lock(client, result).await
}

/// What `repair` accepted: an applied migration's edited file, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Repair {
    /// The version.
    pub version: i64,
    /// Its file's name.
    pub file: String,
    /// The checksum recorded when it was applied.
    pub recorded: String,
    /// The file's checksum now, recorded in its place.
    pub actual: String,
}

/// What a repair of `version` would record, or why there is nothing to repair: read-only, for
/// `repair --dry-run` and for [`repair`] itself.
pub fn plan_repair(
    set: &MigrationSet,
    applied: &std::collections::BTreeMap<i64, store::AppliedVersion>,
    version: i64,
) -> Result<Repair, Error> {
    let m = set.get(version).ok_or(Error::UnknownVersion { version })?;
    let row = applied.get(&version).ok_or(Error::NotApplied { version })?;
    match &row.checksum {
        Some(recorded) if *recorded != m.checksum => Ok(Repair {
            version,
            file: m.name.clone(),
            recorded: recorded.clone(),
            actual: m.checksum.clone(),
        }),
        // Matching, or applied by goose without one (adopted on the next run).
        _ => Err(Error::NothingToRepair { file: m.path.clone(), version }),
    }
}

/// Accepts the edited file of applied `version` as it is now, for `reason`: nothing of its SQL
/// runs (the caller says the database already matches it); its checksum is replaced and the
/// repair recorded in [`store::REPAIR_TABLE`], in one transaction under the migration lock.
pub async fn repair(
    client: &Client,
    set: &MigrationSet,
    version: i64,
    reason: &str,
    options: &Options,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<Repair, Error> {
    if set.get(version).is_none() {
        return Err(Error::UnknownVersion { version });
    }
    take_lock(client, options, on_event).await?;
    let result = async {
        store::ensure_tables(client).await?;
        let repair = plan_repair(set, &store::applied(client).await?, version)?;
        store::record_repair(client, version, &repair.file, &repair.recorded, &repair.actual, reason).await?;
        Ok(repair)
    }
    .await;
    release_lock(client, result).await
}

async fn take_lock(
    client: &Client,
    options: &Options,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<(), Error> {
    store::lock(client, options.lock_timeout, |waited, holder| {
        on_event(Event::WaitingForLock { waited_ms: waited.as_millis(), holder: holder.to_string() })
    })
    .await
}

/// Releases the lock whatever happened; the run's own error wins over an unlock error.
async fn release_lock<T>(client: &Client, result: Result<T, Error>) -> Result<T, Error> {
    let unlocked = store::unlock(client).await;
    let value = result?;
    unlocked?;
    Ok(value)
}

/// Under the lock: creates the bookkeeping tables, reads what is applied and checks checksums.
async fn prepare(
    client: &Client,
    set: &MigrationSet,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<std::collections::BTreeMap<i64, store::AppliedVersion>, Error> {
    store::ensure_tables(client).await?;
    let applied = store::applied(client).await?;
    verify_checksums(client, set, &applied, on_event).await?;
    Ok(applied)
}

/// Fails if an applied migration's file changed; records checksums of versions applied without one.
async fn verify_checksums(
    client: &Client,
    set: &MigrationSet,
    applied: &std::collections::BTreeMap<i64, store::AppliedVersion>,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<(), Error> {
    check_checksums(set, applied)?;
    for (version, row) in applied {
        let Some(m) = set.get(*version) else { continue };
        if row.checksum.is_none() {
            store::record_checksum(client, *version, &m.name, &m.checksum).await?;
            on_event(Event::ChecksumAdopted { version: *version });
        }
    }
    Ok(())
}

/// Fails with [`Error::ChecksumMismatch`] if an applied migration's file no longer has the
/// checksum recorded when it was applied; versions without a recorded checksum (applied by goose)
/// or without a file pass. Read-only, so a dry run refuses exactly what a real run would.
pub fn check_checksums(
    set: &MigrationSet,
    applied: &std::collections::BTreeMap<i64, store::AppliedVersion>,
) -> Result<(), Error> {
    for (version, row) in applied {
        let Some(m) = set.get(*version) else { continue };
        if let Some(recorded) = &row.checksum
            && *recorded != m.checksum
        {
            return Err(Error::ChecksumMismatch {
                file: m.path.clone(),
                version: *version,
                recorded: recorded.clone(),
                actual: m.checksum.clone(),
            });
        }
    }
    Ok(())
}

/// Checks a plan before any of it runs: [`Error::NeedsNoTransaction`] if a step that runs in a
/// transaction holds a statement PostgreSQL refuses inside one, [`Error::Unparsable`] if a
/// rollback's Down statement does not parse. Every pending file is checked before the first
/// runs; read-only, so a dry run refuses exactly what a real run would.
pub fn check_plan(set: &MigrationSet, plan: &Plan) -> Result<(), Error> {
    for step in &plan.steps {
        let m = set.get(step.version).expect("plans only name migrations of the set");
        let statements = match plan.direction {
            Direction::Up => &m.parsed.up.statements,
            Direction::Down => match &m.parsed.down {
                Some(down) => &down.statements,
                None => continue,
            },
        };
        let direction = match plan.direction {
            Direction::Up => "Up",
            Direction::Down => "Down",
        };
        // A rollback is what is reached for when something went wrong: its Down is checked the
        // way `lint` checks it, before any of it runs.
        if plan.direction == Direction::Down {
            for stmt in statements.iter().filter(|s| !s.envsubst) {
                if let Some(e) = crate::lint::syntax_error(&stmt.sql) {
                    let (line, column) = stmt.position_after(&stmt.sql[..e.offset]);
                    return Err(Error::Unparsable {
                        file: m.path.clone(),
                        line,
                        column,
                        direction,
                        message: e.message,
                    });
                }
            }
        }
        if step.no_transaction {
            continue;
        }
        if let Some((stmt, what)) =
            statements.iter().find_map(|s| crate::lint::refused_in_transaction(&s.sql).map(|w| (s, w)))
        {
            return Err(Error::NeedsNoTransaction {
                file: m.path.clone(),
                line: stmt.line,
                direction,
                what,
                annotated: m.parsed.annotated,
            });
        }
    }
    Ok(())
}

async fn run(
    client: &Client,
    set: &MigrationSet,
    plan: &Plan,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<Vec<Done>, Error> {
    // PostgreSQL would refuse such a file half-way; say so before anything runs.
    check_plan(set, plan)?;
    let mut done = Vec::new();
    for step in &plan.steps {
        let m = set.get(step.version).expect("plans only name migrations of the set");
        on_event(Event::Started { version: m.version, name: m.name.clone(), direction: plan.direction });
        let started = Instant::now();
        run_one(client, m, plan.direction, step).await?;
        let duration_ms = started.elapsed().as_millis();
        on_event(Event::Finished { version: m.version, name: m.name.clone(), duration_ms });
        done.push(Done { version: m.version, name: m.name.clone(), duration_ms });
    }
    Ok(done)
}

async fn run_one(client: &Client, m: &Migration, direction: Direction, step: &Step) -> Result<(), Error> {
    let statements = match direction {
        Direction::Up => &m.parsed.up.statements,
        Direction::Down => &m.parsed.down.as_ref().expect("down plans only name files with Down").statements,
    };
    let record = match direction {
        Direction::Up => store::record_up_sql(m.version, &m.name, &m.checksum),
        Direction::Down => store::record_down_sql(m.version),
    };
    let record_err =
        |source| Error::Db { action: format!("recording version {} ({})", m.version, m.name), source };
    if step.no_transaction {
        for (i, stmt) in statements.iter().enumerate() {
            execute(client, m, direction, stmt).await.map_err(|mut f| {
                f.applied_before_failure = Some(i);
                Error::Statement(f)
            })?;
        }
        if let Err(e) = client.batch_execute(&format!("BEGIN; {record}; COMMIT")).await {
            // A failure inside the batch leaves its transaction open and aborted; end it, or the
            // session could not even release the lock.
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(record_err(e));
        }
        return Ok(());
    }
    client.batch_execute("BEGIN").await.map_err(record_err)?;
    for stmt in statements {
        if let Err(failure) = execute(client, m, direction, stmt).await {
            // The failed statement aborted the transaction; roll it back so nothing of it remains.
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(Error::Statement(failure));
        }
    }
    if let Err(e) = client.batch_execute(&format!("{record}; COMMIT")).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(record_err(e));
    }
    Ok(())
}

async fn execute(
    client: &Client,
    m: &Migration,
    direction: Direction,
    stmt: &Statement,
) -> Result<(), Box<StatementFailure>> {
    let sql = if stmt.envsubst {
        envsubst::substitute(&stmt.sql, |k| std::env::var(k).ok())
            .map_err(|unset| failure(m, direction, stmt, "XTASK".into(), format!("{unset} (ENVSUB ON)")))?
    } else {
        stmt.sql.clone()
    };
    let Err(e) = client.batch_execute(&sql).await else { return Ok(()) };
    let Some(db) = e.as_db_error() else {
        return Err(failure(m, direction, stmt, "connection".into(), e.to_string()));
    };
    let mut f = failure(m, direction, stmt, db.code().code().to_string(), db.message().to_string());
    f.detail = db.detail().map(str::to_string);
    f.hint = db.hint().map(str::to_string);
    if let Some(ErrorPosition::Original(pos)) = db.position() {
        // PostgreSQL counts characters from 1 within the statement as sent.
        let before: String = sql.chars().take((*pos as usize).saturating_sub(1)).collect();
        let (line, column) = stmt.position_after(&before);
        f.error_line = Some(line);
        f.error_column = Some(column);
    }
    Err(f)
}

fn failure(
    m: &Migration,
    direction: Direction,
    stmt: &Statement,
    code: String,
    message: String,
) -> Box<StatementFailure> {
    Box::new(StatementFailure {
        file: m.path.clone(),
        version: m.version,
        direction: direction.as_str(),
        line: stmt.line,
        error_line: None,
        error_column: None,
        statement: excerpt(&stmt.sql, 30),
        code,
        message,
        detail: None,
        hint: None,
        applied_before_failure: None,
    })
}

/// The first `max` lines of a statement, saying how many were left out.
fn excerpt(sql: &str, max: usize) -> String {
    let lines: Vec<&str> = sql.lines().collect();
    if lines.len() <= max {
        return sql.to_string();
    }
    format!("{}\n... ({} more lines)", lines[..max].join("\n"), lines.len() - max)
}

/// Renders a driver error with PostgreSQL's code, message, detail and hint when there are any.
pub(crate) fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("error {}: {}", db.code().code(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" (detail: {d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" (hint: {h})"));
            }
            s
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn applied(version: i64, checksum: Option<&str>) -> BTreeMap<i64, store::AppliedVersion> {
        let applied_at = chrono::NaiveDateTime::default();
        BTreeMap::from([(
            version,
            store::AppliedVersion { applied_at, checksum: checksum.map(str::to_string) },
        )])
    }

    #[test]
    fn check_checksums_refuses_an_edited_applied_file_without_a_database() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("001_a.sql"), "-- +goose Up\nSELECT 1;\n").unwrap();
        let set = MigrationSet::load(dir.path()).unwrap();
        let actual = set.get(1).unwrap().checksum.clone();

        check_checksums(&set, &applied(1, Some(&actual))).unwrap();
        check_checksums(&set, &applied(1, None)).expect("applied by goose: nothing to compare");
        check_checksums(&set, &applied(2, Some("gone"))).expect("no file for the version");
        let err = check_checksums(&set, &applied(1, Some("old"))).unwrap_err();
        let Error::ChecksumMismatch { version, recorded, actual: got, .. } = &err else { panic!("{err}") };
        assert_eq!((*version, recorded.as_str(), got), (1, "old", &actual));
    }
}
