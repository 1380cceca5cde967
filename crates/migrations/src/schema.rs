//! The schema as applied: tables with their columns, indexes and the applied versions, read
//! from the catalogs. Kept with a failed run's evidence, so "which migration did not happen"
//! is answered from the database itself, not from what the files say.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use tokio_postgres::Client;

use crate::{Error, store};

/// One table's columns, in their order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// `schema.table`.
    pub name: String,
    /// `column type [NOT NULL]`, in column order.
    pub columns: Vec<String>,
}

/// What a database holds, outside PostgreSQL's own schemas.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Schema {
    /// Tables (partitioned ones and partitions included), by name.
    pub tables: Vec<Table>,
    /// Index definitions as PostgreSQL prints them.
    pub indexes: Vec<String>,
    /// Applied migration versions (goose's table), oldest first.
    pub versions: Vec<i64>,
}

const OWN_SCHEMAS: &str = "('pg_catalog', 'information_schema', 'pg_toast')";

/// Reads the schema without changing anything.
pub async fn describe(client: &Client) -> Result<Schema, Error> {
    let db = |action: &'static str| move |source| Error::Db { action: action.into(), source };
    let rows = client
        .query(
            &format!(
                "SELECT c.table_schema || '.' || c.table_name, c.column_name, c.data_type, c.is_nullable = 'NO' \
                 FROM information_schema.columns c \
                 JOIN information_schema.tables t USING (table_schema, table_name) \
                 WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN {OWN_SCHEMAS} \
                 ORDER BY 1, c.ordinal_position"
            ),
            &[],
        )
        .await
        .map_err(db("reading the tables' columns"))?;
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        let (table, column, ty, not_null): (String, String, String, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        tables
            .entry(table)
            .or_default()
            .push(format!("{column} {ty}{}", if not_null { " NOT NULL" } else { "" }));
    }
    let indexes = client
        .query(
            &format!("SELECT indexdef FROM pg_indexes WHERE schemaname NOT IN {OWN_SCHEMAS} ORDER BY schemaname, tablename, indexname"),
            &[],
        )
        .await
        .map_err(db("reading the indexes"))?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let versions = store::applied(client).await?.into_keys().collect();
    Ok(Schema {
        tables: tables.into_iter().map(|(name, columns)| Table { name, columns }).collect(),
        indexes,
        versions,
    })
}

impl Schema {
    /// One line: how many tables and indexes, how many versions applied and the newest.
    pub fn summary(&self) -> String {
        let tracking = [store::VERSION_TABLE, store::CHECKSUM_TABLE];
        let tables = self
            .tables
            .iter()
            .filter(|t| !tracking.iter().any(|k| t.name.ends_with(&format!(".{k}"))))
            .count();
        let versions = match self.versions.last() {
            Some(last) => format!("{} migration(s) applied, the newest {last}", self.versions.len()),
            None => "no migration applied".into(),
        };
        format!("{tables} table(s), {} index(es); {versions}", self.indexes.len())
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "-- {}", self.summary())?;
        let versions: Vec<String> = self.versions.iter().map(i64::to_string).collect();
        writeln!(
            f,
            "-- applied versions: {}",
            if versions.is_empty() { "none".into() } else { versions.join(", ") }
        )?;
        for t in &self.tables {
            writeln!(f, "\ntable {}", t.name)?;
            for c in &t.columns {
                writeln!(f, "  {c}")?;
            }
        }
        if !self.indexes.is_empty() {
            writeln!(f)?;
        }
        for i in &self.indexes {
            writeln!(f, "{i};")?;
        }
        Ok(())
    }
}
