//! `cargo xtask e2e`: bring a suite's environment up, run its tests, diagnose, tear down.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use infra::Runs;
use infra::session::{self, TestOutcome};
use serde_json::json;

use crate::infra::{Interrupts, UpArgs, bring_up, load_suite, runtime, tear_down};

/// Bring a suite's environment up, run its tests against it, diagnose failures, tear down.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 tests passed; 1 the environment did not come up; 2 bad usage or suite file; \
3 the tests failed or timed out; 130 interrupted."
)]
pub struct E2e {
    #[command(flatten)]
    up: UpArgs,
}

impl E2e {
    /// Up, run the suite's tests, diagnose on failure, down unless --keep.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let root = crate::workspace_root();
        let runs = Runs::new(&root);
        runtime()?.block_on(e2e(&root, &runs, self.up))
    }
}

async fn e2e(root: &Path, runs: &Runs, args: UpArgs) -> anyhow::Result<ExitCode> {
    let mut ints = Interrupts::install()?;
    let suite = load_suite(root, &args.suite)?;
    let up = match bring_up(root, runs, suite.clone(), args.json, args.sequential, &mut ints).await {
        Ok(up) => up,
        Err(code) => return Ok(code),
    };
    eprintln!("running: {}", suite.test.argv.join(" "));
    let (outcome, took) = match session::run_tests(root, &suite, &up.state, ints.recv()).await {
        Ok(r) => r,
        Err(e) => {
            tear_down(&up.state).await?;
            return Err(e).context("running the suite's test command");
        }
    };
    let code = match &outcome {
        TestOutcome::Passed => ExitCode::SUCCESS,
        TestOutcome::Interrupted => ExitCode::from(130),
        _ => ExitCode::from(3),
    };
    if outcome != TestOutcome::Passed && outcome != TestOutcome::Interrupted {
        eprintln!(
            "\ndiagnosis (last log lines of each component):\n{}",
            infra::report::log_tails(&up.state, 15)
        );
    }
    let verdict = match &outcome {
        TestOutcome::Passed => "PASSED".to_string(),
        TestOutcome::Failed(s) => format!("FAILED ({s})"),
        TestOutcome::TimedOut(d) => format!("TIMED OUT after {d:?}"),
        TestOutcome::Interrupted => "INTERRUPTED".to_string(),
    };
    if args.keep && outcome != TestOutcome::Interrupted {
        eprintln!(
            "run {} kept: `cargo xtask infra status {}` shows it; endpoints with passwords are in {}",
            up.state.id,
            up.state.id,
            up.state.dir.join("state.json").display()
        );
    } else {
        tear_down(&up.state).await?;
    }
    if args.json {
        println!(
            "{}",
            json!({"ok": outcome == TestOutcome::Passed, "verdict": verdict, "run": up.state.id, "setup": up.report, "tests_ms": took.as_millis()})
        );
    } else {
        eprintln!(
            "suite {}: {verdict}; setup {:.1}s (critical path {:.1}s), tests {:.1}s",
            suite.name,
            up.report.wall_ms as f64 / 1000.0,
            up.report.critical_ms as f64 / 1000.0,
            took.as_secs_f64()
        );
    }
    Ok(code)
}
