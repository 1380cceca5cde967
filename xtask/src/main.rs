//! `cargo xtask`: the workspace's command line (migrations, environments, end-to-end suites).

mod devcluster;
mod doctor;
mod e2e;
mod infra;
mod migrate;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Test environments for the monorepo's services: migrations, infrastructure, end-to-end suites.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about, long_about = None)]
#[command(
    after_help = "Exit status: 0 success; 1 the operation failed (a migration, a connection, a lock, a \
service that never became ready); 2 bad usage or invalid input files; 3 e2e: the suite's tests failed; \
130 interrupted."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Migrate(migrate::Migrate),
    Infra(infra::Infra),
    E2e(e2e::E2e),
    Doctor(doctor::Doctor),
    Devcluster(devcluster::Devcluster),
    Completions(Completions),
}

/// Print a shell completion script for the xtask commands
///
/// `cargo xtask` is a cargo alias, which shells do not complete into; the script completes a
/// command named by --name (default `xtask`), so pair it with an alias, e.g. for bash:
///   alias xtask='cargo xtask'
///   source <(cargo xtask completions bash)
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
struct Completions {
    /// The shell.
    shell: clap_complete::Shell,
    /// The command name the script completes.
    #[arg(long, default_value = "xtask")]
    name: String,
}

/// Failures that are the caller's input rather than the operation: exit status 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// The workspace root (the parent of this crate), where `migrations/` and `manifests/` live.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

impl Command {
    /// The schema of the JSON document the command prints, when `--json` was given.
    fn json_schema(&self) -> Option<&'static str> {
        match self {
            Command::Migrate(m) => m.json_schema(),
            Command::Infra(i) => i.json_schema(),
            Command::E2e(e) => e.json_schema(),
            Command::Doctor(d) => d.json_schema(),
            Command::Devcluster(d) => d.json_schema(),
            Command::Completions(_) => None,
        }
    }
}

/// Values for a completion script (generated once and printed: the strings may live on).
fn values(names: &[String]) -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        names.iter().map(|n| -> &'static str { Box::leak(n.clone().into_boxed_str()) }),
    )
}

/// The command line with what is found at run time: the suites in the help of the commands
/// that take one and, for completion scripts, the suites and components as their values.
fn command(for_completion: bool) -> clap::Command {
    let suites = ::infra::suite::names(&workspace_root()).unwrap_or_default();
    let listed = format!(
        "Suites: {} (manifests/suites/<name>.yaml; a path to a suite file works too).",
        suites.join(", ")
    );
    let with_suites = |c: clap::Command| {
        let help = match c.get_after_help() {
            Some(after) => format!("{listed}\n\n{after}"),
            None => listed.clone(),
        };
        let c = c.after_help(help);
        if for_completion { c.mut_arg("suite", |a| a.value_parser(values(&suites))) } else { c }
    };
    let components: Vec<String> = ::infra::Registry::builtin().all().map(|c| c.name().to_string()).collect();
    <Cli as clap::CommandFactory>::command().mut_subcommand("e2e", with_suites).mut_subcommand(
        "infra",
        |infra| {
            infra.mut_subcommand("up", with_suites).mut_subcommand("restart", |r| {
                if for_completion {
                    r.mut_arg("component", |a| a.value_parser(values(&components)))
                } else {
                    r
                }
            })
        },
    )
}

fn main() -> ExitCode {
    let matches = command(false).get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let schema = cli.command.json_schema();
    let result = match cli.command {
        Command::Migrate(m) => m.run(),
        Command::Infra(i) => i.run(),
        Command::E2e(e) => e.run(),
        Command::Doctor(d) => d.run(),
        Command::Devcluster(d) => d.run(),
        Command::Completions(c) => {
            let mut command = command(true);
            clap_complete::generate(c.shell, &mut command, &c.name, &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => output::report_error(&e, schema),
    }
}

/// Checks of the repository itself: the commands README shows are ones the CLI accepts, and
/// every suite file is valid.
#[cfg(test)]
mod tidy {
    use clap::Parser;

    use super::Cli;

    /// Every `cargo xtask ...` in README's code blocks, optional `[...]` parts dropped, trailing comments cut.
    fn readme_commands() -> Vec<String> {
        let readme = std::fs::read_to_string(super::workspace_root().join("README.md")).unwrap();
        let mut out = Vec::new();
        let mut in_code = false;
        for line in readme.lines() {
            if line.starts_with("```") {
                in_code = !in_code;
            }
            if !in_code {
                continue;
            }
            // Each command of a `a && b` line.
            for part in line.split("&&") {
                let Some(at) = part.find("cargo xtask ") else { continue };
                let mut cmd = &part[at..];
                for end in ["  #", ")\"", "`"] {
                    if let Some(i) = cmd.find(end) {
                        cmd = &cmd[..i];
                    }
                }
                let mut plain = String::new();
                let mut depth = 0;
                for c in cmd.chars() {
                    match c {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ if depth == 0 => plain.push(c),
                        _ => {}
                    }
                }
                out.push(plain.trim().to_string());
            }
        }
        out
    }

    #[test]
    fn readme_commands_are_accepted_by_the_cli() {
        let commands = readme_commands();
        assert!(commands.len() >= 10, "README shows the commands: {commands:?}");
        for cmd in commands {
            let argv: Vec<&str> = cmd.split_whitespace().skip(1).collect();
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("README command `{cmd}` is rejected:\n{e}");
            }
        }
    }

    /// The editor's tasks run commands the CLI accepts, for every suite they offer, and offer
    /// every suite there is.
    #[test]
    fn vscode_tasks_are_accepted_by_the_cli_and_offer_every_suite() {
        let root = super::workspace_root();
        let text = std::fs::read_to_string(root.join(".vscode/tasks.json")).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let input = doc["inputs"].as_array().unwrap().iter().find(|i| i["id"] == "suite").unwrap();
        let offered: Vec<&str> =
            input["options"].as_array().unwrap().iter().filter_map(|o| o.as_str()).collect();
        let mut sorted = offered.clone();
        sorted.sort();
        assert_eq!(sorted, infra::suite::names(&root).unwrap(), "the suite list follows manifests/suites/");
        let tasks = doc["tasks"].as_array().unwrap();
        assert!(tasks.len() >= 6, "{tasks:?}");
        for task in tasks {
            let args: Vec<&str> =
                task["args"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
            assert_eq!((task["command"].as_str(), args.first()), (Some("cargo"), Some(&"xtask")), "{task}");
            for suite in &offered {
                let argv: Vec<String> = args.iter().map(|a| a.replace("${input:suite}", suite)).collect();
                if let Err(e) = Cli::try_parse_from(&argv) {
                    panic!(
                        "task {} runs `cargo {}`, which the CLI rejects:\n{e}",
                        task["label"],
                        argv.join(" ")
                    );
                }
            }
        }
    }

    #[test]
    fn every_suite_file_is_valid() {
        let root = super::workspace_root();
        let names = infra::suite::names(&root).unwrap();
        assert!(names.contains(&"workflowexecution".to_string()), "{names:?}");
        for name in names {
            infra::suite::load(&infra::suite::path(&root, &name), &infra::Registry::builtin()).unwrap();
        }
    }
}
