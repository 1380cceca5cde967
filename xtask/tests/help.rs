//! The help text of every subcommand, snapshotted: editor tasks and CI scripts depend on the
//! subcommands and flags staying what they are, and the text is the first thing a user reads.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg("--help")
        // A fixed width, whatever terminal the tests run in.
        .env("COLUMNS", "100")
        .output()
        .expect("run xtask");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_subcommand_has_stable_help() {
    for args in [
        &[][..],
        &["migrate"],
        &["migrate", "repair"],
        &["infra"],
        &["infra", "up"],
        &["infra", "down"],
        &["infra", "status"],
        &["infra", "restart"],
        &["infra", "cache"],
        &["infra", "cache", "list"],
        &["infra", "cache", "prune"],
        &["e2e"],
        &["doctor"],
        &["completions"],
        &["devcluster"],
        &["devcluster", "up"],
        &["devcluster", "down"],
    ] {
        let name = if args.is_empty() { "xtask".to_string() } else { format!("xtask {}", args.join(" ")) };
        insta::assert_snapshot!(name.replace(' ', "_"), help(args), &name);
    }
}

/// The bash script completes subcommands and their flags for the name it was generated for.
#[test]
fn bash_completion_completes_subcommands_and_flags() {
    let script = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["completions", "bash"]).output().unwrap();
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xtask.bash");
    std::fs::write(&path, &script.stdout).unwrap();
    let complete = |words: &str| {
        let n = words.split(' ').count() - 1;
        let cur = words.rsplit(' ').next().unwrap();
        let prev = words.split(' ').nth(n.saturating_sub(1)).unwrap();
        let probe = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD={n}; _xtask xtask '{cur}' '{prev}'; echo \"${{COMPREPLY[*]}}\"",
            path.display()
        );
        let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(complete("xtask inf"), "infra");
    assert_eq!(complete("xtask infra u"), "up");
    assert!(complete("xtask migrate --dr").split(' ').any(|w| w == "--dry-run"));
    assert!(
        complete("xtask e2e --backend ").split(' ').collect::<Vec<_>>().contains(&"kind"),
        "{}",
        complete("xtask e2e --backend ")
    );
    // Suites and components are completed from what the workspace has.
    assert_eq!(complete("xtask e2e work"), "workflowexecution");
    assert_eq!(complete("xtask infra up gat"), "gateway");
    assert!(
        complete("xtask infra restart ").split(' ').any(|w| w == "postgres"),
        "{}",
        complete("xtask infra restart ")
    );
}

/// The Makefile fragment's targets run subcommands that exist: each is run through make with
/// the real binary and `--help`, and `infra-down` is checked by `make -n`.
#[test]
fn the_makefile_fragment_runs_real_subcommands() {
    let fragment = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/make/xtask.mk");
    let make = |args: &[&str]| {
        let out = Command::new("make")
            .args(["--no-print-directory", "-f", fragment])
            .args(args)
            .arg(format!("XTASK={}", env!("CARGO_BIN_EXE_xtask")))
            .output()
            .expect("run make");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    for (target, usage) in [
        ("test-e2e-workflowexecution", "Usage: cargo xtask e2e"),
        ("migrate", "Usage: cargo xtask migrate"),
        ("migrate-lint", "Usage: cargo xtask migrate lint"),
        ("migrate-status", "Usage: cargo xtask migrate status"),
    ] {
        let out = make(&[target, "XTASK_FLAGS=--help"]);
        assert!(out.contains(usage), "{target}: {out}");
    }
    let down = make(&["-n", "infra-down"]);
    assert_eq!(down.trim(), format!("{} infra down --all", env!("CARGO_BIN_EXE_xtask")));
}
