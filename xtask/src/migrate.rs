//! `cargo xtask migrate`: apply, inspect, roll back and lint goose-format migrations.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand};
use migrations::lint::Severity;
use migrations::{Event, MigrationSet, Options, Plan, Selection};
use serde_json::json;

use crate::BadInput;

/// Apply goose-format migrations exactly once, tracked in goose_db_version, under a lock.
///
/// Without a subcommand, applies migrations: `--all`, or `--tables a,b` for every migration
/// touching those tables plus every earlier one defining what they need (derived from the SQL).
/// A failing statement stops the run; its migration is rolled back and reported with file,
/// line, statement and PostgreSQL's code, message, detail and hint.
#[derive(Args)]
#[command(group(ArgGroup::new("selection").args(["all", "tables"])))]
#[command(after_help = "Examples:\n  \
  cargo xtask migrate --all\n  \
  cargo xtask migrate --tables remediation_workflow_catalog --dry-run\n  \
  cargo xtask migrate status --json\n  \
  cargo xtask migrate down --to 3\n  \
  cargo xtask migrate lint")]
pub struct Migrate {
    #[command(subcommand)]
    command: Option<MigrateCommand>,
    /// Apply every pending migration.
    #[arg(long)]
    all: bool,
    /// Apply only what these tables need (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "TABLE,...")]
    tables: Vec<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand)]
enum MigrateCommand {
    /// List every version with its state and applied time.
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Roll back the newest applied migration, or with --to, every one above a version.
    Down {
        /// Roll back every applied migration above this version (0 = all).
        #[arg(long, value_name = "VERSION")]
        to: Option<i64>,
        #[command(flatten)]
        common: Common,
    },
    /// Check the migration files without a database.
    Lint {
        #[command(flatten)]
        common: Common,
    },
    /// Accept the edited file of an applied migration as it is now, with a recorded reason.
    ///
    /// For when an applied file had to change and the database already matches it (a comment,
    /// a fix already applied by hand): its checksum replaces the recorded one, and the repair is
    /// kept in goose_db_version_repair (version, both checksums, reason, who, when). Nothing of
    /// the file runs. Anything else deserves a new migration instead.
    #[command(after_help = "Example:
  cargo xtask migrate repair 14 --reason 'comment typo fixed; no schema change'")]
    Repair {
        /// The applied version whose file was edited.
        #[arg(value_name = "VERSION")]
        version: i64,
        /// Why the edit is accepted (kept with the repair).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[command(flatten)]
        common: Common,
    },
}

/// How long a run waits for another's migration lock unless told.
const DEFAULT_LOCK_TIMEOUT_SECS: u64 = 300;

#[derive(Args, Clone)]
struct Common {
    /// Migrations folder [default: migrations/ at the workspace root].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user:password@host:port/db); the password is never printed.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    database_url: Option<String>,
    /// Print what would run, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for another run's lock [default: 300].
    #[arg(long, value_name = "SECONDS")]
    lock_timeout: Option<u64>,
}

impl Common {
    fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| crate::workspace_root().join("migrations"))
    }

    fn url(&self) -> anyhow::Result<&str> {
        let url = self.database_url.as_deref().ok_or_else(|| {
            BadInput(
                "no database: pass --database-url postgres://user:password@host:port/db or set DATABASE_URL"
                    .into(),
            )
        })?;
        // A URL of another database says so, rather than the driver's "unexpected EOF".
        if let Some((scheme, _)) = url.split_once("://")
            && !matches!(scheme, "postgres" | "postgresql")
        {
            return Err(BadInput(format!(
                "--database-url {}: the scheme is `{scheme}`; expected postgres:// or postgresql:// (PostgreSQL only)",
                redact::connection_string(url)
            ))
            .into());
        }
        Ok(url)
    }

    fn options(&self) -> Options {
        Options { lock_timeout: Duration::from_secs(self.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT_SECS)) }
    }
}

impl Migrate {
    /// The schema of the `--json` document the command prints, when asked for.
    pub fn json_schema(&self) -> Option<&'static str> {
        let (common, schema) = match &self.command {
            None => (self.common.clone(), "xtask.migrate/1"),
            Some(MigrateCommand::Status { common }) => {
                (self.common.clone().merge(common.clone()), "xtask.migrate-status/1")
            }
            Some(MigrateCommand::Down { common, .. }) => {
                (self.common.clone().merge(common.clone()), "xtask.migrate-down/1")
            }
            Some(MigrateCommand::Lint { common }) => {
                (self.common.clone().merge(common.clone()), "xtask.migrate-lint/1")
            }
            Some(MigrateCommand::Repair { common, .. }) => {
                (self.common.clone().merge(common.clone()), "xtask.migrate-repair/1")
            }
        };
        let planned = common.dry_run
            && !matches!(
                self.command,
                Some(
                    MigrateCommand::Status { .. }
                        | MigrateCommand::Lint { .. }
                        | MigrateCommand::Repair { .. }
                )
            );
        common.json.then_some(if planned { "xtask.migrate-plan/1" } else { schema })
    }

    /// Runs the command on a single-threaded runtime.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
        rt.block_on(self.dispatch())
    }

    async fn dispatch(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Some(MigrateCommand::Status { common }) => status(self.common.merge(common)).await,
            Some(MigrateCommand::Down { to, common }) => down(self.common.merge(common), to).await,
            Some(MigrateCommand::Lint { common }) => lint(self.common.merge(common)),
            Some(MigrateCommand::Repair { version, reason, common }) => {
                repair(self.common.merge(common), version, reason).await
            }
            None => {
                let selection = if self.all {
                    Selection::All
                } else if !self.tables.is_empty() {
                    Selection::Tables(self.tables)
                } else {
                    return Err(BadInput(
                        "say what to apply: --all, or --tables a,b (or a subcommand: status, down, lint; see --help)".into(),
                    )
                    .into());
                };
                up(self.common, selection).await
            }
        }
    }
}

impl Common {
    /// Flags given before the subcommand apply unless the subcommand repeats them.
    fn merge(self, sub: Common) -> Common {
        Common {
            dir: sub.dir.or(self.dir),
            database_url: sub.database_url.or(self.database_url),
            dry_run: sub.dry_run || self.dry_run,
            json: sub.json || self.json,
            lock_timeout: sub.lock_timeout.or(self.lock_timeout),
        }
    }
}

fn load(common: &Common) -> anyhow::Result<MigrationSet> {
    Ok(MigrationSet::load(&common.dir())?)
}

async fn connect(common: &Common) -> anyhow::Result<migrations::Connection> {
    let url = common.url()?;
    Ok(migrations::connect(url).await?)
}

fn progress(json: bool) -> impl FnMut(Event) + Send {
    move |e| {
        if json {
            crate::output::event_line("xtask.migrate-event/1", &e);
            return;
        }
        match e {
            Event::WaitingForLock { waited_ms, holder } => {
                eprintln!(
                    "waiting for the migration lock ({:.0}s so far), held by {holder}",
                    waited_ms as f64 / 1000.0
                )
            }
            Event::Started { name, direction, .. } => eprintln!("{} {name} ...", direction.as_str()),
            Event::Finished { duration_ms, .. } => eprintln!("  done in {duration_ms} ms"),
            Event::ChecksumAdopted { version } => {
                eprintln!(
                    "version {version} was applied without a checksum (by goose?): recorded the file's checksum now"
                )
            }
        }
    }
}

fn print_plan(plan: &Plan, note: &str) {
    let verb = if plan.direction == migrations::Direction::Up { "apply" } else { "roll back" };
    if plan.steps.is_empty() {
        println!("nothing to {verb}{note}");
        return;
    }
    println!("would {verb} {} migration(s){note}:", plan.steps.len());
    for s in &plan.steps {
        let mode = match (s.no_transaction, s.unannotated) {
            (true, _) => ", no transaction",
            (false, true) => ", no goose annotations: applied whole, goose would refuse it",
            (false, false) => "",
        };
        let why = s.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        println!("  {:>6}  {}  [{} statement(s){mode}]{why}", s.version, s.name, s.statements);
    }
}

async fn up(common: Common, selection: Selection) -> anyhow::Result<ExitCode> {
    let set = load(&common)?;
    let wanted = selection.resolve(&set)?;
    if common.dry_run {
        let (applied, note) = match &common.database_url {
            Some(_) => (migrations::store::applied(&*connect(&common).await?).await?, String::new()),
            None => {
                (Default::default(), " (no database given: planned as for an empty database)".to_string())
            }
        };
        // A real run refuses an edited applied file before anything else; so does its rehearsal.
        migrations::check_checksums(&set, &applied)?;
        let plan = Plan::up(&set, &applied, &wanted);
        migrations::check_plan(&set, &plan)?;
        if common.json {
            println!(
                "{}",
                json!({ "schema": "xtask.migrate-plan/1", "ok": true, "dry_run": true, "plan": plan })
            );
        } else {
            print_plan(&plan, &note);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let client = connect(&common).await?;
    if !common.json {
        eprintln!("migrating {} ({})", redact::connection_string(common.url()?), common.dir().display());
    }
    let applied =
        migrations::up(&client, &set, &selection, &common.options(), &mut progress(common.json)).await;
    let report = client.explained(applied).await?;
    if common.json {
        println!("{}", json!({ "schema": "xtask.migrate/1", "ok": true, "report": report }));
    } else if report.done.is_empty() {
        println!(
            "nothing to apply: all {} selected migration(s) already applied",
            report.plan.already_applied
        );
    } else {
        let total: u128 = report.done.iter().map(|d| d.duration_ms).sum();
        println!(
            "applied {} migration(s) in {total} ms ({} already applied)",
            report.done.len(),
            report.plan.already_applied
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn down(common: Common, to: Option<i64>) -> anyhow::Result<ExitCode> {
    let set = load(&common)?;
    let client = connect(&common).await?;
    if common.dry_run {
        let applied = migrations::store::applied(&client).await?;
        migrations::check_checksums(&set, &applied)?;
        let plan = Plan::down(&set, &applied, to)?;
        migrations::check_plan(&set, &plan)?;
        if common.json {
            println!(
                "{}",
                json!({ "schema": "xtask.migrate-plan/1", "ok": true, "dry_run": true, "plan": plan })
            );
        } else {
            print_plan(&plan, "");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = client
        .explained(migrations::down(&client, &set, to, &common.options(), &mut progress(common.json)).await)
        .await?;
    if common.json {
        println!("{}", json!({ "schema": "xtask.migrate-down/1", "ok": true, "report": report }));
    } else if report.done.is_empty() {
        println!("nothing to roll back");
    } else {
        let names: Vec<&str> = report.done.iter().map(|d| d.name.as_str()).collect();
        println!("rolled back {} migration(s): {}", names.len(), names.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

async fn repair(common: Common, version: i64, reason: String) -> anyhow::Result<ExitCode> {
    if reason.trim().is_empty() {
        return Err(BadInput(
            "--reason: say why the edited file is accepted (it is kept with the repair)".into(),
        )
        .into());
    }
    let set = load(&common)?;
    let client = connect(&common).await?;
    let repair = if common.dry_run {
        let applied = client.explained(migrations::store::applied(&client).await).await?;
        migrations::plan_repair(&set, &applied, version)?
    } else {
        client
            .explained(
                migrations::repair(
                    &client,
                    &set,
                    version,
                    &reason,
                    &common.options(),
                    &mut progress(common.json),
                )
                .await,
            )
            .await?
    };
    let done = !common.dry_run;
    if common.json {
        println!(
            "{}",
            json!({ "schema": "xtask.migrate-repair/1", "ok": true, "dry_run": common.dry_run, "repair": repair, "reason": reason })
        );
    } else {
        let verb = if done { "recorded" } else { "would record" };
        println!(
            "{verb} the repair of version {} ({}): checksum {} replaces {}, reason kept in {}",
            repair.version,
            repair.file,
            repair.actual,
            repair.recorded,
            migrations::store::REPAIR_TABLE
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(common: Common) -> anyhow::Result<ExitCode> {
    let set = load(&common)?;
    let client = connect(&common).await?;
    let status = client.explained(migrations::status::status(&client, &set).await).await?;
    if common.json {
        println!(
            "{}",
            json!({ "schema": "xtask.migrate-status/1", "ok": true, "pending": status.pending(), "versions": status.rows })
        );
    } else {
        print!("{status}");
        println!("{} pending", status.pending());
    }
    Ok(ExitCode::SUCCESS)
}

fn lint(common: Common) -> anyhow::Result<ExitCode> {
    let findings: Vec<_> =
        migrations::lint::lint(&common.dir())?.into_iter().map(crate::output::shown).collect();
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
    // The findings are what lint produces, so they go to stdout (errors of the run to stderr).
    if common.json {
        println!("{}", json!({ "schema": "xtask.migrate-lint/1", "ok": errors == 0, "findings": findings }));
    } else {
        for f in &findings {
            println!("{f}");
        }
        println!("{errors} error(s), {} warning(s)", findings.len() - errors);
    }
    crate::output::annotate(&findings, common.json);
    Ok(if errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        migrate: Migrate,
    }

    fn merged(argv: &[&str]) -> Common {
        let cli = Cli::try_parse_from(argv).unwrap();
        match cli.migrate.command {
            Some(MigrateCommand::Status { common }) => cli.migrate.common.merge(common),
            _ => cli.migrate.common,
        }
    }

    #[test]
    fn a_subcommand_flag_wins_even_when_it_equals_the_default() {
        let c = merged(&["x", "--lock-timeout", "10", "status", "--lock-timeout", "300"]);
        assert_eq!(c.options().lock_timeout, Duration::from_secs(300));
        let c = merged(&["x", "--lock-timeout", "10", "status"]);
        assert_eq!(c.options().lock_timeout, Duration::from_secs(10));
        let c = merged(&["x", "status"]);
        assert_eq!(c.options().lock_timeout, Duration::from_secs(DEFAULT_LOCK_TIMEOUT_SECS));
    }
}
