//! The editor integration holds against the tool's real output: the problem matchers in
//! `.vscode/tasks.json`, applied the way VS Code applies them (each regular expression to each
//! line of the task's terminal output), find the files, lines and columns of the problems.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// What a matcher found in one line, as VS Code would show it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Problem {
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    severity: String,
}

/// The problem matchers of the task labelled `label`, as (regex, pattern) pairs.
fn matchers(label: &str) -> Vec<(Regex, Value)> {
    let text = std::fs::read_to_string(root().join(".vscode/tasks.json")).unwrap();
    let tasks: Value = serde_json::from_str(&text).expect("tasks.json is plain JSON");
    let task = tasks["tasks"].as_array().unwrap().iter().find(|t| t["label"] == label).expect(label);
    task["problemMatcher"]
        .as_array()
        .expect("matchers inline")
        .iter()
        .map(|m| {
            let pattern = m["pattern"].clone();
            // VS Code's regular expressions are JavaScript's; these use nothing the two differ on.
            (Regex::new(pattern["regexp"].as_str().unwrap()).unwrap(), pattern)
        })
        .collect()
}

/// Every problem the task's matchers find in `output`; a line matched by two matchers is a bug.
fn problems(label: &str, output: &str) -> Vec<Problem> {
    let matchers = matchers(label);
    let mut found = Vec::new();
    for line in output.lines() {
        let hits: Vec<Problem> = matchers
            .iter()
            .filter_map(|(re, p)| {
                let c = re.captures(line)?;
                let group = |key: &str| p[key].as_u64().and_then(|i| c.get(i as usize)).map(|m| m.as_str());
                Some(Problem {
                    file: group("file")?.to_string(),
                    line: group("line").and_then(|l| l.parse().ok()),
                    column: group("column").and_then(|l| l.parse().ok()),
                    severity: group("severity")?.to_string(),
                })
            })
            .collect();
        assert!(hits.len() <= 1, "{line:?} matched by several matchers: {hits:?}");
        found.extend(hits);
    }
    found.sort();
    found
}

fn run(args: &[&str]) -> String {
    let o =
        Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).env_remove("GITHUB_ACTIONS").output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn problem(file: &Path, line: Option<usize>, column: Option<usize>, severity: &str) -> Problem {
    Problem { file: file.display().to_string(), line, column, severity: severity.into() }
}

#[test]
fn a_lint_error_opens_at_its_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("001_a.sql");
    let b = dir.path().join("002_b.sql");
    std::fs::write(&a, "-- +goose Up\nCREATE TABLE a (id int)\n-- +goose Down\nDROP TABLE a;\n").unwrap();
    std::fs::write(&b, "-- +goose Up\nCREATE TABL b (id int);\n").unwrap();
    let output = run(&["migrate", "lint", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(
        problems("xtask: migrate lint", &output),
        [
            problem(&a, Some(2), None, "error"),
            problem(&b, None, None, "warning"),
            problem(&b, Some(2), Some(8), "error"),
        ],
        "in:\n{output}"
    );
}

#[test]
fn a_suite_file_error_opens_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("broken.yaml");
    std::fs::write(
        &suite,
        "name: broken\ncomponents:\n  - postgres\n  - mysql\ntest:\n  command: [\"true\"]\n",
    )
    .unwrap();
    let output = run(&["e2e", suite.to_str().unwrap()]);
    assert_eq!(
        problems("xtask: e2e", &output),
        [problem(&suite, Some(4), Some(5), "error")],
        "in:\n{output}"
    );
}

#[test]
fn a_repository_file_is_shown_relative_to_the_workspace_and_still_found() {
    // Paths inside the workspace are relative (as compilers print them); the matchers'
    // `autoDetect` resolves them against the workspace folder.
    let dir = tempfile::tempdir_in(root().join("target")).unwrap();
    std::fs::write(dir.path().join("001_a.sql"), "-- +goose Up\nSELECT 1\n").unwrap();
    let output = run(&["migrate", "lint", "--dir", dir.path().to_str().unwrap()]);
    let relative = dir.path().strip_prefix(root()).unwrap().join("001_a.sql");
    let found = problems("xtask: migrate lint", &output);
    assert!(found.contains(&problem(&relative, Some(2), None, "error")), "{found:?} in:\n{output}");
    let tasks = std::fs::read_to_string(root().join(".vscode/tasks.json")).unwrap();
    assert!(tasks.contains("\"autoDetect\""), "relative paths need a base");
}
