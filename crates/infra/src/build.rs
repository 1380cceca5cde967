//! Building a workspace binary with cargo.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::runner::StepFailure;

/// Whether `name` is a variable cargo sets for the package it runs (`cargo run`, `cargo test`):
/// xtask has them from `cargo xtask`. Passed on to the build, they reach build scripts that
/// declare them (ring's `cargo:rerun-if-env-changed=CARGO_PKG_NAME`, ...) with xtask's values,
/// so ring and everything above it (rustls, kube) were rebuilt there, and rebuilt again by the
/// next plain cargo command: 45 s per run, seen once DataStorage used rustls.
fn package_env(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
        )
}

/// Builds binary `package` of the workspace at `root` and returns the executable's path.
///
/// Runs in a process group of its own that is killed if the step is aborted, so an interrupted
/// run does not wait for a build; compiler output goes to `log`, and a failure carries its last lines.
pub async fn cargo_build_bin(root: &Path, package: &str, log: &Path) -> Result<PathBuf, StepFailure> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let log_file = std::fs::File::create(log)
        .map_err(|e| StepFailure::new(format!("creating {}: {e}", log.display())))?;
    let mut cmd = procs::command(&cargo);
    procs::own_process_group(&mut cmd);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(package_env) {
            cmd.env_remove(&name);
        }
    }
    let mut child = tokio::process::Command::from(cmd)
        .args(["build", "--package", package, "--bin", package, "--message-format=json-render-diagnostics"])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .map_err(|e| StepFailure::new(format!("running cargo build: {e}")))?;
    // Aborted (another step failed, Ctrl-C): the whole build goes, rustc processes included.
    let mut group = crate::group::GroupGuard::new(child.id());
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut executable = None;
    let mut read_error = None;
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                if msg["reason"] == "compiler-artifact"
                    && msg["target"]["name"] == package
                    && let Some(exe) = msg["executable"].as_str()
                {
                    executable = Some(PathBuf::from(exe));
                }
            }
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    // Closed before waiting: a cargo still writing gets EPIPE instead of blocking on us.
    drop(lines);
    let status = child.wait().await.map_err(|e| StepFailure::new(format!("waiting for cargo build: {e}")))?;
    group.disarm();
    build_outcome(package, status, executable, read_error).map_err(|message| StepFailure {
        message: format!("{message}; see {}", log.display()),
        diagnosis: Some(procs::log_tail(log, 30)),
        diagnosis_json: None,
    })
}

/// What a build came to: its executable, or why there is none (each cause named as itself, so
/// an unreadable output or a missing artifact is not reported as a failed build).
fn build_outcome(
    package: &str,
    status: std::process::ExitStatus,
    executable: Option<PathBuf>,
    read_error: Option<std::io::Error>,
) -> Result<PathBuf, String> {
    match (read_error, status.success(), executable) {
        (Some(e), _, _) => {
            Err(format!("reading the output of cargo build --package {package} ({status}): {e}"))
        }
        (None, false, _) => Err(format!("cargo build --package {package} failed ({status})")),
        (None, true, None) => Err(format!(
            "cargo build --package {package} succeeded but named no executable `{package}` (does the package have a binary of that name?)"
        )),
        (None, true, Some(exe)) => Ok(exe),
    }
}

/// The shared libraries `binary` loads (the dynamic loader included), as `ldd` resolves them, so
/// an image can carry them without a base image to pull.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, crate::error::InfraError> {
    let sh = xshell::Shell::new().map_err(|e| crate::error::InfraError::Model(format!("ldd: {e}")))?;
    let out = xshell::cmd!(sh, "ldd {binary}").quiet().read().map_err(|e| {
        crate::error::InfraError::Model(format!("listing the libraries of {}: {e}", binary.display()))
    })?;
    Ok(parse_ldd(&out))
}

/// The absolute paths in `ldd` output: `libc.so.6 => /lib/.../libc.so.6 (0x...)` and the loader line.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.trim().split(' ').next()?,
                None => l.split(' ').next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cargo_sets_for_xtask_is_not_passed_to_the_build() {
        for name in
            ["CARGO_PKG_NAME", "CARGO_PKG_VERSION_MAJOR", "CARGO_MANIFEST_DIR", "CARGO_PRIMARY_PACKAGE"]
        {
            assert!(package_env(name), "{name}");
        }
        for name in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_BUILD_JOBS", "CARGO_PROFILE_DEV_DEBUG"]
        {
            assert!(!package_env(name), "{name} configures the build: kept");
        }
    }

    #[test]
    fn a_build_outcome_names_its_own_cause() {
        use std::os::unix::process::ExitStatusExt;
        let ok = std::process::ExitStatus::from_raw(0);
        let failed = std::process::ExitStatus::from_raw(101 << 8);
        let exe = Some(PathBuf::from("/t/debug/x"));
        assert_eq!(build_outcome("x", ok, exe.clone(), None), Ok(PathBuf::from("/t/debug/x")));
        let read =
            build_outcome("x", ok, exe, Some(std::io::Error::other("stream did not contain valid UTF-8")));
        let read = read.unwrap_err();
        assert!(
            read.starts_with("reading the output of cargo build --package x") && read.contains("UTF-8"),
            "{read}"
        );
        assert!(!read.contains("failed ("), "{read}");
        let none = build_outcome("x", ok, None, None).unwrap_err();
        assert!(none.contains("succeeded but named no executable `x`"), "{none}");
        let failed = build_outcome("x", failed, None, None).unwrap_err();
        assert_eq!(failed, "cargo build --package x failed (exit status: 101)");
    }

    #[test]
    fn ldd_output_gives_every_library_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x7f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }
}
