//! `migrate status`: every version, whether it is applied and when, and whether its file changed.

use std::collections::BTreeSet;

use serde::Serialize;
use tokio_postgres::Client;

use crate::source::MigrationSet;
use crate::{Error, store};

/// The state of one version.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The version.
    pub version: i64,
    /// Its file name, if the file exists.
    pub name: Option<String>,
    /// When it was applied (goose's `tstamp`, server time without zone), if it was.
    pub applied_at: Option<String>,
    /// `applied`, `pending`, `edited` (applied, file changed since), or `missing-file`.
    pub state: &'static str,
    /// What to know about the file, e.g. that it has no goose annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

/// The state of every version known to the files or the database.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// One row per version, in version order.
    pub rows: Vec<Row>,
}

impl Status {
    /// How many versions are not applied yet.
    pub fn pending(&self) -> usize {
        self.rows.iter().filter(|r| r.state == "pending").count()
    }
}

/// Reads the state without changing anything (no lock, no table creation).
pub async fn status(client: &Client, set: &MigrationSet) -> Result<Status, Error> {
    let applied = store::applied(client).await?;
    let versions: BTreeSet<i64> =
        set.migrations.iter().map(|m| m.version).chain(applied.keys().copied()).collect();
    let rows = versions
        .into_iter()
        .map(|v| {
            let file = set.get(v);
            let db = applied.get(&v);
            let state = match (file, db) {
                (Some(_), None) => "pending",
                (None, _) => "missing-file",
                (Some(m), Some(a)) if a.checksum.as_ref().is_some_and(|c| *c != m.checksum) => "edited",
                (Some(_), Some(_)) => "applied",
            };
            Row {
                version: v,
                name: file.map(|m| m.name.clone()),
                applied_at: db.map(|a| a.applied_at.format("%Y-%m-%d %H:%M:%S").to_string()),
                state,
                note: file.filter(|m| !m.parsed.annotated).map(|_| crate::parse::UNANNOTATED),
            }
        })
        .collect();
    Ok(Status { rows })
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:>8}  {:<12}  {:<19}  file", "version", "state", "applied at")?;
        for r in &self.rows {
            writeln!(
                f,
                "{:>8}  {:<12}  {:<19}  {}",
                r.version,
                r.state,
                r.applied_at.as_deref().unwrap_or("-"),
                r.name.as_deref().unwrap_or("(no file)")
            )?;
            if let Some(note) = r.note {
                writeln!(f, "{:>8}  {note}", "")?;
            }
        }
        Ok(())
    }
}
