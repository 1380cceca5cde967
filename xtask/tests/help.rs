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
        &["infra"],
        &["infra", "up"],
        &["infra", "down"],
        &["infra", "status"],
        &["infra", "restart"],
        &["e2e"],
        &["doctor"],
    ] {
        let name = if args.is_empty() { "xtask".to_string() } else { format!("xtask {}", args.join(" ")) };
        insta::assert_snapshot!(name.replace(' ', "_"), help(args), &name);
    }
}
