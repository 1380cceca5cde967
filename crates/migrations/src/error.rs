//! Everything that can stop a migration run, each naming the file, line or object concerned.

use std::path::PathBuf;
use std::time::Duration;

use diag::Diagnostic;
use serde::Serialize;

use crate::parse::ParseError;

/// Why a migration command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The migrations folder does not exist.
    #[error("migrations folder {} not found", .dir.display())]
    DirNotFound {
        /// The folder that was given.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file name looks like a migration but its version is unusable.
    #[error("{}: {reason}", .file.display())]
    BadVersion {
        /// The file.
        file: PathBuf,
        /// Why the version cannot be used.
        reason: String,
    },
    /// Two files carry the same version.
    #[error("version {version} is used by two files: {} and {}", .first.display(), .second.display())]
    DuplicateVersion {
        /// The version.
        version: i64,
        /// One file.
        first: PathBuf,
        /// The other file.
        second: PathBuf,
    },
    /// A file is not valid goose SQL.
    #[error("{}{}: {source}", .file.display(), source.line().map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        /// The file.
        file: PathBuf,
        /// What is wrong, with its line.
        #[source]
        source: ParseError,
    },
    /// An `ENVSUB ON` statement uses a variable that is not set.
    #[error(
        "{}:{line}: environment variable {var} is not set (the file has '-- +goose ENVSUB ON'; goose would substitute an empty string, this tool refuses: set it or write ${{{var}:-default}})",
        .file.display()
    )]
    UnsetVariable {
        /// The file.
        file: PathBuf,
        /// The statement's line.
        line: usize,
        /// The variable.
        var: String,
    },
    /// An already-applied migration file was edited.
    #[error(
        "{}: version {version} was applied with checksum {recorded} but the file now has {actual}: an applied migration must not be edited; add a new migration instead (or restore the file); if the database already matches the edited file, record that: cargo xtask migrate repair {version} --reason TEXT",
        .file.display()
    )]
    ChecksumMismatch {
        /// The file.
        file: PathBuf,
        /// Its version.
        version: i64,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The file's checksum now.
        actual: String,
    },
    /// `repair` of a version that is not applied.
    #[error("version {version} is not applied: nothing to repair (a pending migration runs as it is)")]
    NotApplied {
        /// The version.
        version: i64,
    },
    /// `repair` of an applied version whose file still has its recorded checksum.
    #[error("{}: version {version} has the checksum recorded when it was applied: nothing to repair", .file.display())]
    NothingToRepair {
        /// The file.
        file: PathBuf,
        /// Its version.
        version: i64,
    },
    /// A `--tables` name that no migration touches.
    #[error("no migration touches table {table}; tables the migrations know: {known}")]
    UnknownTable {
        /// The requested table.
        table: String,
        /// The tables the migration set creates or alters.
        known: String,
    },
    /// `down --to` names a version that has no file.
    #[error("no migration has version {version}")]
    UnknownVersion {
        /// The requested version.
        version: i64,
    },
    /// A statement of a section about to run does not parse (PostgreSQL's own parser), found
    /// before anything runs: a rollback whose Down is broken is refused as `lint` refuses it.
    #[error(
        "{}:{line}:{column}: {direction}: SQL does not parse: {message}; nothing was run",
        .file.display()
    )]
    Unparsable {
        /// The file.
        file: PathBuf,
        /// The line of the point where parsing failed, as PostgreSQL would report it.
        line: usize,
        /// Its column.
        column: usize,
        /// `Up` or `Down`.
        direction: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A migration to roll back has no Down section.
    #[error("{}: no '-- +goose Down' section, so version {version} cannot be rolled back", .file.display())]
    NoDown {
        /// The file.
        file: PathBuf,
        /// Its version.
        version: i64,
    },
    /// A transactional migration holds a statement PostgreSQL refuses inside a transaction;
    /// found before anything of the file runs.
    #[error(
        "{}:{line}: {direction}: {what} cannot run inside a transaction, and this migration runs in one: \
         {} (and keep such statements in a file of their own); nothing was applied: every pending \
         file is checked before the first runs",
        .file.display(),
        if *.annotated {
            "add '-- +goose NO TRANSACTION' to the file"
        } else {
            "the file has no goose annotations, so it needs both '-- +goose NO TRANSACTION' and \
             '-- +goose Up' as its first lines"
        }
    )]
    NeedsNoTransaction {
        /// The file.
        file: PathBuf,
        /// The statement's line.
        line: usize,
        /// `Up` or `Down`.
        direction: &'static str,
        /// The statement kind, e.g. `CREATE INDEX CONCURRENTLY`.
        what: &'static str,
        /// Whether the file has goose annotations (else it needs `-- +goose Up` too).
        annotated: bool,
    },
    /// The server could not be reached.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL with its password hidden.
        url: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Another run held the migration lock for longer than the deadline.
    #[error(
        "timed out after {waited:?} waiting for the migration lock (advisory lock {key}); held by {holder}"
    )]
    LockTimeout {
        /// How long this run waited.
        waited: Duration,
        /// The advisory lock key (goose's own).
        key: i64,
        /// Who holds it, as far as pg_stat_activity says.
        holder: String,
    },
    /// A bookkeeping query failed.
    #[error("{action}: {}", crate::apply::describe_db_error(.source))]
    Db {
        /// What was being done.
        action: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A call failed because the connection had ended; `reason` is why it ended.
    #[error("{during}\nthe connection to the database had ended: {reason}")]
    ConnectionLost {
        /// Why the connection ended, as its driver saw it (e.g. the server's FATAL message).
        reason: String,
        /// The error the call itself reported ("connection closed").
        during: Box<Error>,
    },
    /// A migration statement failed; nothing of its migration remains unless it is `NO TRANSACTION`.
    #[error("{0}")]
    Statement(Box<StatementFailure>),
}

impl Error {
    /// Whether the error is about the files or the request rather than the database: the
    /// caller's input to fix (exit status 2 at the command line).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::DirNotFound { .. }
                | Error::BadVersion { .. }
                | Error::DuplicateVersion { .. }
                | Error::Parse { .. }
                | Error::UnknownTable { .. }
                | Error::UnknownVersion { .. }
                | Error::NoDown { .. }
                | Error::Unparsable { .. }
                | Error::NeedsNoTransaction { .. }
                | Error::NotApplied { .. }
                | Error::NothingToRepair { .. }
        )
    }

    /// The error as a diagnostic on the file (and line, column) it is about; `None` for errors
    /// that are not about one file (a connection, the lock, an unknown table).
    pub fn diagnostic(&self) -> Option<Diagnostic> {
        let message = |text: String, file: &std::path::Path| {
            let prefix = file.display().to_string();
            let text = text.strip_prefix(&prefix).unwrap_or(&text);
            // What remains is `: message`, `:line: message` or `:line:column: message`; the
            // diagnostic carries the place.
            text.trim_start_matches(|c: char| c == ':' || c.is_ascii_digit()).trim_start().to_string()
        };
        let d = match self {
            Error::Io { path, .. } => Diagnostic::error(path, message(self.to_string(), path)),
            Error::BadVersion { file, reason } => Diagnostic::error(file, reason),
            Error::DuplicateVersion { version, first, second } => {
                Diagnostic::error(second, format!("version {version} is also used by {}", first.display()))
            }
            Error::Parse { file, source } => {
                Diagnostic::error(file, source.to_string()).at(source.line(), None)
            }
            Error::UnsetVariable { file, line, .. } | Error::NeedsNoTransaction { file, line, .. } => {
                Diagnostic::error(file, message(self.to_string(), file)).at(Some(*line), None)
            }
            Error::Unparsable { file, line, column, .. } => {
                Diagnostic::error(file, message(self.to_string(), file)).at(Some(*line), Some(*column))
            }
            Error::ChecksumMismatch { file, .. }
            | Error::NoDown { file, .. }
            | Error::NothingToRepair { file, .. } => Diagnostic::error(file, message(self.to_string(), file)),
            Error::Statement(f) => f.diagnostic(),
            Error::ConnectionLost { reason, during } => {
                let d = during.diagnostic()?;
                let message = format!("{}\nthe connection to the database had ended: {reason}", d.message);
                Diagnostic { message, ..d }
            }
            Error::DirNotFound { .. }
            | Error::UnknownTable { .. }
            | Error::UnknownVersion { .. }
            | Error::NotApplied { .. }
            | Error::Connect { .. }
            | Error::LockTimeout { .. }
            | Error::Db { .. } => return None,
        };
        Some(d)
    }
}

/// A failed migration statement, with everything needed to fix it.
#[derive(Debug, Clone, Serialize)]
pub struct StatementFailure {
    /// The migration file.
    pub file: PathBuf,
    /// Its version.
    pub version: i64,
    /// Up or down.
    pub direction: &'static str,
    /// Line where the failing statement starts.
    pub line: usize,
    /// Line of the error inside the statement, when PostgreSQL reported a position.
    pub error_line: Option<usize>,
    /// Column of the error on `error_line`, when PostgreSQL reported a position.
    pub error_column: Option<usize>,
    /// The statement, trimmed.
    pub statement: String,
    /// SQLSTATE code.
    pub code: String,
    /// PostgreSQL's message.
    pub message: String,
    /// PostgreSQL's detail.
    pub detail: Option<String>,
    /// PostgreSQL's hint.
    pub hint: Option<String>,
    /// For `NO TRANSACTION` migrations: how many earlier statements of the file were applied and stay.
    pub applied_before_failure: Option<usize>,
}

impl StatementFailure {
    /// The failure on the line (and column) PostgreSQL pointed at, else the statement's first
    /// line; the notes carry code, detail, hint and the statement.
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::error(&self.file, Body(self).to_string())
            .at(Some(self.error_line.unwrap_or(self.line)), self.error_line.and(self.error_column))
    }
}

impl std::fmt::Display for StatementFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.error_line.unwrap_or(self.line);
        let column = self.error_line.and(self.error_column).map(|c| format!(":{c}")).unwrap_or_default();
        write!(f, "{}:{at}{column}: {}", self.file.display(), Body(self))
    }
}

/// A failure's message after its location: what failed, then PostgreSQL's words and the statement.
struct Body<'a>(&'a StatementFailure);

impl std::fmt::Display for Body<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Body(this) = *self;
        writeln!(f, "migration {} ({}) failed", this.version, this.direction)?;
        writeln!(f, "  error {}: {}", this.code, this.message)?;
        if let Some(d) = &this.detail {
            writeln!(f, "  detail: {d}")?;
        }
        if let Some(h) = &this.hint {
            writeln!(f, "  hint: {h}")?;
        }
        writeln!(f, "  statement (line {}):", this.line)?;
        for l in this.statement.lines() {
            writeln!(f, "    {l}")?;
        }
        match this.applied_before_failure {
            Some(0) | None => {
                write!(f, "  nothing of this migration was applied; later migrations were not attempted")
            }
            Some(n) => write!(
                f,
                "  this file is NO TRANSACTION: its first {n} statement(s) were applied and remain; the version was not recorded; later migrations were not attempted"
            ),
        }
    }
}
