//! `cargo xtask doctor`: what this machine has, which backends can run here, what to install.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

/// Show what is installed, which backends can run here, and what to install or configure.
#[derive(Args)]
pub struct Doctor {
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

impl Doctor {
    /// The schema of the `--json` document.
    pub fn json_schema(&self) -> Option<&'static str> {
        self.json.then_some("xtask.doctor/1")
    }

    /// Prints the report; exit status 1 when no backend can run here.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let report = infra::doctor::examine(&infra::Registry::builtin());
        let any = report.backends.iter().any(|b| b.ok);
        if self.json {
            println!("{}", json!({"schema": "xtask.doctor/1", "report": report}));
        } else {
            for c in &report.checks {
                println!("{} {}: {}", if c.ok { "ok  " } else { "MISS" }, c.what, c.found);
                if let Some(h) = &c.hint {
                    println!("       {h}");
                }
            }
            println!();
            for b in &report.backends {
                if b.ok {
                    println!("backend {}: can run here", b.backend);
                } else {
                    println!("backend {}: cannot run here (missing: {})", b.backend, b.missing.join("; "));
                    if let Some(fix) = &b.fix {
                        println!("       {fix}");
                    }
                }
            }
        }
        Ok(if any { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}
