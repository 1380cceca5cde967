//! How results and failures leave the program: diagnostics in the compiler's line format (and
//! as GitHub annotations under GitHub Actions), JSON documents with a `schema` name, JSON-lines
//! progress events, and the exit status an error maps to.

use std::process::ExitCode;

use diag::Diagnostic;
use serde::Serialize;
use serde_json::{Value, json};

use crate::BadInput;

/// The diagnostics an error carries: the files, lines and columns it is about, from whichever
/// error in its chain knows them. Paths are shown relative to the workspace root.
pub fn diagnostics(e: &anyhow::Error) -> Vec<Diagnostic> {
    for cause in e.chain() {
        let found = if let Some(m) = cause.downcast_ref::<migrations::Error>() {
            m.diagnostic().into_iter().collect()
        } else if let Some(s) = cause.downcast_ref::<infra::suite::SuiteError>() {
            vec![s.diagnostic()]
        } else if let Some(d) = cause.downcast_ref::<datastorage::Error>() {
            d.diagnostics()
        } else {
            Vec::new()
        };
        if !found.is_empty() {
            return found.into_iter().map(shown).collect();
        }
    }
    Vec::new()
}

/// A diagnostic as shown: its path relative to the workspace root when inside it.
pub fn shown(d: Diagnostic) -> Diagnostic {
    d.relative_to(&crate::workspace_root())
}

/// Whether GitHub Actions runs us (it sets `GITHUB_ACTIONS=true`), so annotations are worth adding.
fn on_github() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Prints diagnostics on stderr, one per line in `path:line:column: severity: message` form;
/// under GitHub Actions also as `::error file=...` workflow commands (on stdout, where the
/// runner looks for them, unless stdout carries a JSON document: then on stderr, which the
/// runner reads as well).
pub fn emit(diagnostics: &[Diagnostic], stdout_is_json: bool) {
    for d in diagnostics {
        eprintln!("{d}");
    }
    annotate(diagnostics, stdout_is_json);
}

/// Under GitHub Actions, the diagnostics as workflow commands (see [`emit`] for where).
pub fn annotate(diagnostics: &[Diagnostic], stdout_is_json: bool) {
    if on_github() {
        for d in diagnostics {
            if stdout_is_json {
                eprintln!("{}", d.github());
            } else {
                println!("{}", d.github());
            }
        }
    }
}

/// Whether an error is the caller's to fix (a file, a flag, a name): exit status 2.
pub fn is_bad_input(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<BadInput>()
            || c.is::<infra::suite::SuiteError>()
            || c.downcast_ref::<migrations::Error>().is_some_and(migrations::Error::is_bad_input)
    })
}

/// The exit status for an error: 2 for bad input, 1 for a failed operation.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    if is_bad_input(e) { ExitCode::from(2) } else { ExitCode::FAILURE }
}

/// Reports an error on stderr, as diagnostics or as `error: ...` when it has none; with
/// `schema`, also as that command's JSON document with `ok: false` on stdout.
pub fn report_error(e: &anyhow::Error, schema: Option<&str>) -> ExitCode {
    let diagnostics = diagnostics(e);
    let code = exit_code(e);
    if let Some(schema) = schema {
        let failure = e.chain().find_map(|c| match c.downcast_ref::<migrations::Error>() {
            Some(migrations::Error::Statement(f)) => Some(f.as_ref()),
            _ => None,
        });
        let mut doc = json!({
            "schema": schema, "ok": false, "error": said(e),
            "exit_code": if is_bad_input(e) { 2 } else { 1 }, "diagnostics": diagnostics,
        });
        if let Some(f) = failure {
            doc["failure"] = json!(f);
        }
        println!("{doc}");
    }
    // On stderr as well with --json: a log read by a person (CI's) still says what went wrong.
    if diagnostics.is_empty() {
        eprintln!("error: {}", said(e));
    } else {
        emit(&diagnostics, schema.is_some());
    }
    code
}

/// An error with its causes, each said once: a library's message often repeats its cause's
/// ("error connecting to server: error connecting to server: ..."), and `{:#}` would too.
pub fn said(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// A progress event as one JSON line on stderr, named by `schema` so a reader can tell the
/// streams of different commands apart.
pub fn event_line(schema: &str, event: &impl Serialize) {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("schema".into(), Value::String(schema.into()));
    }
    eprintln!("{value}");
}

#[cfg(test)]
mod tests {
    use super::said;

    #[derive(Debug)]
    struct Cause(&'static str, Option<Box<Cause>>);

    impl std::fmt::Display for Cause {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Cause {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|c| c as _)
        }
    }

    #[test]
    fn an_error_says_each_cause_once() {
        let io = Cause("Connection refused (os error 111)", None);
        let driver = Cause("error connecting to server", Some(Box::new(io)));
        let e = anyhow::Error::new(driver)
            .context("cannot connect to postgres://u:***@h/db: error connecting to server");
        assert_eq!(
            said(&e),
            "cannot connect to postgres://u:***@h/db: error connecting to server: Connection refused (os error 111)"
        );
    }
}
