//! The suite's goose migrations, applied by xtask itself to the PostgreSQL endpoint (the same
//! engine, tracking and errors on every backend).

use crate::error::InfraError;
use crate::model::{Component, Ctx, Job, Workload};
use crate::suite::MigrationSelection;

/// The migrations job.
pub struct Migrations;

impl Component for Migrations {
    fn name(&self) -> &'static str {
        "migrations"
    }

    fn about(&self) -> &'static str {
        "the suite's goose migrations, applied as the service's user"
    }

    fn needs(&self) -> &'static [&'static str] {
        &["postgres"]
    }

    fn workload(&self, ctx: &Ctx<'_>) -> Result<Workload, InfraError> {
        let selection = match &ctx.suite.migrations {
            MigrationSelection::All => migrations::Selection::All,
            MigrationSelection::Tables(t) => migrations::Selection::Tables(t.clone()),
        };
        Ok(Workload::Job(Job::Migrations {
            dir: ctx.root.join("migrations"),
            selection,
            database: "postgres",
        }))
    }
}
