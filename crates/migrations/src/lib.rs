//! Goose-format PostgreSQL migrations: discovered, parsed, linted, planned and applied exactly once.
//!
//! Tracking uses goose's own `goose_db_version` table (so a service that runs goose at start-up
//! agrees with this tool) plus a checksum per applied version; runs are serialised with goose's
//! advisory lock, taken by polling; each migration runs in its own transaction unless annotated
//! `-- +goose NO TRANSACTION`; the first failing statement stops the run and is reported with its
//! file, line, text and PostgreSQL's code, message, detail and hint.
//!
//! ```no_run
//! # async fn demo() -> Result<(), migrations::Error> {
//! let report = migrations::apply_all("postgres://app:pw@127.0.0.1:5432/app", "migrations".as_ref()).await?;
//! println!("applied {} migrations", report.done.len());
//! # Ok(()) }
//! ```

pub mod analyze;
pub mod apply;
mod envsubst;
mod error;
mod lex;
pub mod lint;
pub mod parse;
pub mod plan;
pub mod schema;
pub mod source;
pub mod status;
pub mod store;

pub use apply::{
    Connection, Event, Options, Repair, Report, check_checksums, check_plan, connect, down, plan_repair,
    repair, up,
};
pub use error::{Error, StatementFailure};
pub use plan::{Direction, Plan, Selection};
pub use source::{Migration, MigrationSet};
pub use tokio_postgres::Client;

/// Connects to `database_url` and applies every pending migration in `dir`, silently.
pub async fn apply_all(database_url: &str, dir: &std::path::Path) -> Result<Report, Error> {
    let set = MigrationSet::load(dir)?;
    let client = connect(database_url).await?;
    client.explained(up(&client, &set, &Selection::All, &Options::default(), &mut |_| {}).await).await
}
