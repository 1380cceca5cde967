//! `cargo xtask e2e`: bring a suite's environment up, run its tests, diagnose, tear down.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use infra::Runs;
use infra::report::{Finished, Tests};
use infra::session::{self, TestOutcome};
use serde_json::json;

use crate::infra::{
    Interrupts, ReportFiles, UpArgs, load_suite, printer, report_up_error_with_files, runtime,
};

/// Bring a suite's environment up, run its tests against it, diagnose failures, tear down.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 tests passed; 1 the environment did not come up; 2 bad usage or suite file; \
3 the tests failed or timed out; 130 interrupted."
)]
pub struct E2e {
    #[command(flatten)]
    up: UpArgs,
    /// Write a JUnit XML report to FILE: a test case per setup step and one for the suite,
    /// failures carrying the diagnosis; written also when the environment did not come up.
    #[arg(long, value_name = "FILE", conflicts_with = "dry_run")]
    junit: Option<PathBuf>,
}

impl E2e {
    /// The schema of the `--json` document.
    pub fn json_schema(&self) -> Option<&'static str> {
        self.up.json_schema("xtask.e2e/1")
    }

    /// Up, run the suite's tests, diagnose on failure, down unless --keep.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let root = crate::workspace_root();
        let runs = Runs::new(&root);
        runtime()?.block_on(e2e(&root, &runs, self.up, self.junit.as_deref()))
    }
}

async fn e2e(root: &Path, runs: &Runs, args: UpArgs, junit: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut ints = Interrupts::install()?;
    let suite = load_suite(root, &args.suite)?;
    if args.dry_run {
        return args.print_plan(root, runs, suite);
    }
    let options = args.options(&suite)?;
    if let Some(path) = junit {
        crate::infra::check_report_file("--junit", path)?;
    }
    check_test_command(root, &suite)?;
    let backend = options.backend.clone();
    let files =
        ReportFiles { timings: args.timings.as_ref(), junit, runs, json: args.json, schema: "xtask.e2e/1" };
    let name = suite.name.clone();
    let command = suite.test.argv.join(" ");
    let registry = infra::Registry::builtin();
    // Each phase (up, tests) awaits its own future; only one is alive at a time.
    let ints = tokio::sync::Mutex::new(&mut ints);
    let interrupt = || {
        let ints = &ints;
        async move { ints.lock().await.recv().await }
    };
    if !args.json && !std::io::stderr().is_terminal() {
        // A log gets the plan's last step; a terminal shows the tests' own output soon enough.
        eprintln!("then: {command}");
    }
    let result = session::e2e(root, runs, suite, &registry, options, interrupt, printer(args.json)).await;
    let run = match result {
        Ok(run) => run,
        Err(e) => return Ok(report_up_error_with_files(&name, &backend, e, &files)),
    };
    let code = match &run.outcome {
        TestOutcome::Passed => ExitCode::SUCCESS,
        TestOutcome::Interrupted => ExitCode::from(130),
        _ => ExitCode::from(3),
    };
    if let Some(d) = &run.diagnosis
        && !args.json
    {
        eprintln!("\ndiagnosis (last log lines of each component):\n{d}");
    }
    let verdict = match &run.outcome {
        TestOutcome::Passed => "PASSED".to_string(),
        TestOutcome::Failed(s) => format!("FAILED ({s})"),
        TestOutcome::TimedOut(d) => format!("TIMED OUT after {d:?}"),
        TestOutcome::Interrupted => "INTERRUPTED".to_string(),
    };
    if run.kept {
        eprintln!(
            "run {} kept: `cargo xtask infra status {}` shows it; endpoints with passwords are in {}",
            run.state.id,
            run.state.id,
            run.state.dir.join("state.json").display()
        );
        crate::infra::print_reach(&run.state);
    } else if run.diagnosis.is_some() {
        eprintln!(
            "logs and diagnosis kept in {}; remove with `cargo xtask infra down {}`",
            run.state.dir.display(),
            run.state.id
        );
    }
    if args.json {
        println!(
            "{}",
            json!({"schema": "xtask.e2e/1", "ok": run.outcome == TestOutcome::Passed, "verdict": verdict,
                   "run": run.state.id, "backend": run.state.backend, "setup": run.setup,
                   "tests_ms": run.tests.as_millis()})
        );
    } else {
        eprint!("{}", infra::report::summary(&run.setup));
        eprintln!(
            "suite {name} on {}: {verdict}; setup {:.1}s (critical path {:.1}s), tests {:.1}s",
            run.state.backend,
            run.setup.wall_ms as f64 / 1000.0,
            run.setup.critical_ms as f64 / 1000.0,
            run.tests.as_secs_f64()
        );
    }
    let tests =
        Tests::Ran { outcome: run.outcome.clone(), took: run.tests, diagnosis: run.diagnosis.clone() };
    let finished = Finished {
        suite: &name,
        backend: &run.state.backend,
        run: Some(&run.state.id),
        setup: &run.setup,
        tests: &tests,
    };
    if !files.write(&finished) && code == ExitCode::SUCCESS {
        // The suite passed, but CI would find no report: that must not look like a success.
        return Ok(ExitCode::FAILURE);
    }
    Ok(code)
}

/// The suite's test command must exist before anything starts: a missing one is the caller's
/// mistake (exit 2), not a failed test run (exit 3) after the environment came up.
fn check_test_command(root: &Path, suite: &infra::Suite) -> anyhow::Result<()> {
    let Some(program) = suite.test.argv.first() else { return Ok(()) };
    let found = if program.contains('/') {
        let path = root.join(program);
        path.is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
    };
    if found {
        Ok(())
    } else {
        Err(crate::BadInput(format!(
            "suite {}: test.command: `{program}` is not a program on PATH (or a file under {})",
            suite.name,
            root.display()
        ))
        .into())
    }
}
