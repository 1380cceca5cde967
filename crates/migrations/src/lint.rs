//! Static checks of a migrations folder, without a database: everything that would fail (or
//! surprise) at apply time, reported all at once with file and line.

use pg_query::NodeEnum;

use crate::source::{self, Migration, SourceFile};
use crate::{Error, envsubst};

pub use diag::Severity;

/// One problem found: a diagnostic on a migration file (and line).
pub type Finding = diag::Diagnostic;

/// Checks every migration in `dir`; only a missing folder or unreadable file is an `Err`.
pub fn lint(dir: &std::path::Path) -> Result<Vec<Finding>, Error> {
    let files = source::scan(dir)?;
    let mut findings = Vec::new();
    for pair in files.windows(2) {
        if pair[0].version == pair[1].version {
            findings.push(Finding::error(
                &pair[1].path,
                format!("version {} is also used by {}", pair[0].version, pair[0].path.display()),
            ));
        }
    }
    for file in files {
        lint_file(file, &mut findings);
    }
    Ok(findings)
}

fn lint_file(file: SourceFile, out: &mut Vec<Finding>) {
    let path = file.path.clone();
    let mut push = |(line, column): (Option<usize>, Option<usize>), severity, message: String| {
        out.push(Finding { severity, ..Finding::error(&path, message).at(line, column) })
    };
    let m: Migration = match file.parse() {
        Ok(m) => m,
        Err(Error::Parse { source, .. }) => {
            push((source.line(), None), Severity::Error, source.to_string());
            return;
        }
        Err(e) => {
            push((None, None), Severity::Error, e.to_string());
            return;
        }
    };
    for (line, text) in &m.parsed.unknown_annotations {
        push((Some(*line), None), Severity::Warning, unknown_annotation_message(text));
    }
    if !m.parsed.annotated {
        push((Some(1), None), Severity::Warning, crate::parse::UNANNOTATED.into());
    } else if m.parsed.up.statements.is_empty() {
        push((Some(m.parsed.up.line), None), Severity::Warning, "the Up section has no statements".into());
    }
    if m.parsed.down.is_none() && m.parsed.annotated {
        push(
            (None, None),
            Severity::Warning,
            "no '-- +goose Down' section: this migration cannot be rolled back".into(),
        );
    }
    let sections = std::iter::once(("Up", &m.parsed.up)).chain(m.parsed.down.as_ref().map(|d| ("Down", d)));
    for (dir, section) in sections {
        for stmt in &section.statements {
            let sql = if stmt.envsubst {
                match envsubst::substitute(&stmt.sql, |k| std::env::var(k).ok()) {
                    Ok(s) => s,
                    Err(unset) => {
                        push(
                            (Some(stmt.line), None),
                            Severity::Warning,
                            format!("{dir}: {unset} here, statement not checked"),
                        );
                        continue;
                    }
                }
            } else {
                stmt.sql.clone()
            };
            let Ok(parsed) = pg_query::parse(&sql, 0) else {
                let e = syntax_error(&sql).expect("a statement that does not parse has a syntax error");
                // Where PostgreSQL will say it is at run time: the failing token, not the
                // statement's first line.
                let (line, column) = stmt.position_after(&sql[..e.offset]);
                push(
                    (Some(line), Some(column)),
                    Severity::Error,
                    format!("{dir}: SQL does not parse: {}", e.message),
                );
                continue;
            };
            if m.parsed.no_transaction {
                continue;
            }
            for what in refused_kinds(&parsed) {
                push(
                    (Some(stmt.line), None),
                    Severity::Error,
                    format!(
                        "{dir}: {what} cannot run inside a transaction: add '-- +goose NO TRANSACTION' (and keep such statements in their own file)"
                    ),
                );
            }
        }
    }
}

/// Why a statement does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// The parser's message, e.g. `syntax error at or near "TABL"`.
    pub message: String,
    /// The byte offset in the statement of the token the parser stopped at (its end for `at end
    /// of input`): the position PostgreSQL reports for the same statement.
    pub offset: usize,
}

/// The syntax error of `sql`, if it does not parse. The parser names the token it stopped at
/// but not its place; that is found as the shortest run of the statement's tokens that
/// already fails before its end (the parser reads left to right, so every longer run fails
/// at the same token), by bisection: a few parses of a statement's prefixes.
pub(crate) fn syntax_error(sql: &str) -> Option<SyntaxError> {
    let message = |e: pg_query::Error| {
        let text = e.to_string();
        text.trim_start_matches("Error parsing query: ").trim_start_matches("Invalid statement: ").to_string()
    };
    let whole = message(pg_query::parse(sql, 0).err()?);
    let end = SyntaxError { message: whole.clone(), offset: sql.len() };
    let Ok(tokens) = pg_query::scan_tokens(sql) else { return Some(end) };
    let fails_inside = |n: usize| {
        let upto = usize::try_from(tokens[n - 1].end).unwrap_or(usize::MAX).min(sql.len());
        match pg_query::parse(&sql[..upto], 0) {
            Ok(_) => false,
            Err(e) => !message(e).ends_with("at end of input"),
        }
    };
    if tokens.is_empty() || !fails_inside(tokens.len()) {
        return Some(end);
    }
    let (mut lo, mut hi) = (1, tokens.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails_inside(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let offset = usize::try_from(tokens[hi - 1].start).unwrap_or(0).min(sql.len());
    Some(SyntaxError { message: whole, offset })
}

/// The warning for a `+goose` line that is not one of goose's annotations.
fn unknown_annotation_message(text: &str) -> String {
    let hint = if text.to_ascii_lowercase().contains("envsubst") {
        "goose spells it ENVSUB: '-- +goose ENVSUB ON' / '-- +goose ENVSUB OFF'"
    } else {
        "goose knows Up, Down, StatementBegin, StatementEnd, NO TRANSACTION, ENVSUB ON and ENVSUB OFF, in any letter case"
    };
    format!("'{text}' is not a goose annotation and is ignored as a comment ({hint})")
}

/// The kind of statement in `sql` that PostgreSQL refuses inside a transaction block, if any
/// (SQL that does not parse here is left for the server to judge).
pub(crate) fn refused_in_transaction(sql: &str) -> Option<&'static str> {
    refused_kinds(&pg_query::parse(sql, 0).ok()?).next()
}

/// The kinds of the parsed statements PostgreSQL refuses inside a transaction block, in order.
fn refused_kinds(parsed: &pg_query::ParseResult) -> impl Iterator<Item = &'static str> + '_ {
    parsed
        .protobuf
        .stmts
        .iter()
        .filter_map(|raw| raw.stmt.as_ref()?.node.as_ref().and_then(needs_no_transaction))
}

/// Statements PostgreSQL refuses inside a transaction block.
fn needs_no_transaction(node: &NodeEnum) -> Option<&'static str> {
    let concurrently = |params: &[pg_query::protobuf::Node]| {
        params.iter().any(|p| matches!(&p.node, Some(NodeEnum::DefElem(d)) if d.defname == "concurrently"))
    };
    match node {
        NodeEnum::IndexStmt(s) if s.concurrent => Some("CREATE INDEX CONCURRENTLY"),
        NodeEnum::DropStmt(s) if s.concurrent => Some("DROP INDEX CONCURRENTLY"),
        NodeEnum::ReindexStmt(s) if concurrently(&s.params) => Some("REINDEX CONCURRENTLY"),
        NodeEnum::VacuumStmt(s) if s.is_vacuumcmd => Some("VACUUM"),
        NodeEnum::CreatedbStmt(_) => Some("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => Some("DROP DATABASE"),
        NodeEnum::AlterSystemStmt(_) => Some("ALTER SYSTEM"),
        _ => None,
    }
}

/// Splits `line N: message` into its parts.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_is_placed_at_the_token_the_parser_stopped_at() {
        let sql = "ALTER TABLE t\n  DROP COLUMN a,\n  DROP COLUMN b\n  DROP COLUMN c";
        let e = syntax_error(sql).unwrap();
        assert_eq!(e.message, "syntax error at or near \"DROP\"");
        // The third DROP, not the first word that reads the same.
        assert_eq!(&sql[e.offset..], "DROP COLUMN c");
        let end = syntax_error("CREATE TABLE t (id int").unwrap();
        assert!(end.message.ends_with("at end of input"), "{}", end.message);
        assert_eq!(end.offset, "CREATE TABLE t (id int".len());
        assert_eq!(syntax_error("SELECT 1"), None);
    }

    #[test]
    fn envsubst_is_named_as_goose_spells_it() {
        let msg = unknown_annotation_message("-- +goose ENVSUBST ON");
        assert_eq!(
            msg,
            "'-- +goose ENVSUBST ON' is not a goose annotation and is ignored as a comment (goose spells it ENVSUB: '-- +goose ENVSUB ON' / '-- +goose ENVSUB OFF')"
        );
        let msg = unknown_annotation_message("-- +goose StatementBeginn");
        assert!(msg.contains("in any letter case"), "{msg}");
        assert!(!msg.contains("case-sensitive"), "{msg}");
    }

    #[test]
    fn lint_warns_about_envsubst_in_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = "-- +goose Up\n-- +goose ENVSUBST ON\nSELECT 1;\n-- +goose Down\nSELECT 1;\n";
        std::fs::write(dir.path().join("001_a.sql"), text).unwrap();
        let findings = lint(dir.path()).unwrap();
        let texts: Vec<String> = findings.iter().map(|f| f.message.clone()).collect();
        assert_eq!(findings.len(), 1, "{texts:?}");
        assert_eq!((findings[0].line, findings[0].severity), (Some(2), Severity::Warning));
        assert!(texts[0].contains("goose spells it ENVSUB"), "{texts:?}");
    }
}
