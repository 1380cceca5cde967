//! Properties of the goose parser over generated migrations: it never panics, and every
//! statement written comes back whole, once, in order, with the line it starts on; with goose
//! annotations and without (plain SQL applied whole). The preservation oracle the fuzz target
//! `goose_parse` uses runs here too, over generated text and over the repository's files.

mod preservation;

use std::path::{Path, PathBuf};

use migrations::parse::{Parsed, parse};
use proptest::prelude::*;

/// A piece of SQL that holds what splits statements naively: `;` inside strings, quoted
/// identifiers, dollar quotes and comments, and line breaks.
fn piece() -> impl Strategy<Value = String> {
    let word = "[a-z][a-z0-9_]{0,7}";
    let text = "[a-z ;:$'\\-]{0,12}";
    prop_oneof![
        word.prop_map(|w| w.to_string()),
        text.prop_map(|t| format!("'{}'", t.replace('\'', "''"))),
        text.prop_map(|t| format!("\"{}\"", t.replace('"', ""))),
        text.prop_map(|t| format!("$$ {} $$", t.replace('$', ""))),
        (word, text).prop_map(|(tag, t)| format!("$q{tag}$ {} $q{tag}$", t.replace('$', ""))),
        text.prop_map(|t| format!("/* {} */", t.replace("*/", "").replace("/*", ""))),
        text.prop_map(|t| format!("-- {}\n", t.replace("+goose", ""))),
        Just("\n".to_string()),
        Just("(1, 2)".to_string()),
    ]
}

/// One statement: a keyword first (so it holds code), then pieces; no terminating `;`.
fn statement() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("SELECT"), Just("CREATE TABLE t"), Just("INSERT INTO t VALUES")],
        prop::collection::vec(piece(), 0..6),
    )
        .prop_map(|(head, pieces)| {
            let mut s = head.to_string();
            for p in pieces {
                s.push(' ');
                s.push_str(&p);
            }
            // A line comment ends its line: the `;` must not land inside it.
            if s.lines().last().is_some_and(|l| l.contains("--")) || s.ends_with('\n') {
                s.push_str("\n1");
            }
            s
        })
}

/// What separates statements: nothing, blank lines, or whole-line comments.
fn gap() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\n".to_string()),
        Just("-- between\n".to_string()),
        Just("\n-- x ; y\n\n".to_string())
    ]
}

/// A file and the statements (text, first line) it must parse into.
fn file(annotated: bool) -> impl Strategy<Value = (String, Vec<(String, usize)>)> {
    prop::collection::vec((gap(), statement(), any::<bool>()), 1..8).prop_map(move |items| {
        let mut text = String::from("-- a migration\n");
        if annotated {
            text.push_str("-- +goose Up\n");
        }
        let mut expected = Vec::new();
        for (gap, stmt, block) in items {
            text.push_str(&gap);
            let wrap = annotated && block;
            if wrap {
                text.push_str("-- +goose StatementBegin\n");
            }
            let line = text.lines().count() + 1;
            let sql = stmt.trim().to_string();
            text.push_str(&stmt);
            text.push_str(";\n");
            if wrap {
                text.push_str("-- +goose StatementEnd\n");
            }
            expected.push((sql, line));
        }
        (text, expected)
    })
}

proptest! {
    // Failures print their minimal case; nothing is written into the source tree. A longer run:
    // PROPTEST_CASES=1000000 cargo test --release -p migrations --test parse_props
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_text_never_panics_nor_loses_a_byte(text in "(?s).{0,400}") {
        preservation::check(&text).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn goose_lines_and_sql_mixed_never_panic(lines in prop::collection::vec(prop_oneof![
        Just("-- +goose Up".to_string()), Just("-- +goose Down".to_string()),
        Just("-- +goose StatementBegin".to_string()), Just("-- +goose StatementEnd".to_string()),
        Just("-- +goose NO TRANSACTION".to_string()), Just("-- +goose ENVSUB ON".to_string()),
        "[ -~]{0,30}",
    ], 0..20)) {
        preservation::check(&lines.join("\n")).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn every_statement_comes_back_once_in_order_with_its_line((text, expected) in file(true)) {
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        preservation::check(&text).map_err(TestCaseError::fail)?;
        prop_assert!(parsed.annotated);
        let got: Vec<(String, usize)> = parsed.up.statements.into_iter().map(|s| (s.sql, s.line)).collect();
        prop_assert_eq!(got, expected, "{}", text);
    }

    #[test]
    fn a_plain_sql_file_is_its_statements_whole((text, expected) in file(false)) {
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        preservation::check(&text).map_err(TestCaseError::fail)?;
        prop_assert!(!parsed.annotated && parsed.down.is_none());
        let got: Vec<(String, usize)> = parsed.up.statements.into_iter().map(|s| (s.sql, s.line)).collect();
        prop_assert_eq!(got, expected, "{}", text);
    }
}

/// The files of `dir` under the workspace root whose name ends in `suffix`, sorted.
fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect()).unwrap_or_default();
    files.retain(|f| f.to_string_lossy().ends_with(suffix));
    files.sort();
    files
}

#[test]
fn the_repository_migrations_keep_every_statement() {
    let migrations = files("migrations", ".sql");
    assert!(migrations.len() >= 9, "the repository's migrations are where they were: {migrations:?}");
    for file in migrations {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(parse(&text).is_ok(), "{} parses", file.display());
        preservation::check(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

#[test]
fn inputs_the_fuzzer_once_failed_on_keep_every_statement() {
    let regressions = files("fuzz/regressions/goose_parse", "");
    assert!(!regressions.is_empty(), "fuzz/regressions/goose_parse holds the fuzzer's findings");
    for file in regressions {
        let text = std::fs::read_to_string(&file).unwrap();
        preservation::check(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

/// The oracle fails on every way a parser can lose or misplace a statement: each mutation of a
/// correct parse below is a bug the fuzz target must be able to report.
#[test]
fn the_oracle_catches_lost_moved_and_repeated_statements() {
    let text = "-- +goose Up\nSELECT 1; SELECT 'a;b';\n-- note\nCREATE TABLE t (\n  a int\n);\n\
                -- +goose Down\nDROP TABLE t;\n";
    let good = parse(text).unwrap();
    preservation::check_parsed(text, &good).unwrap();
    type Mutation = (&'static str, fn(&mut Parsed));
    let mutations: [Mutation; 9] = [
        ("drop the last Up statement", |p| {
            p.up.statements.pop();
        }),
        ("drop the first Up statement", |p| {
            p.up.statements.remove(0);
        }),
        ("drop the Down statement", |p| p.down.as_mut().unwrap().statements.clear()),
        ("shift a line", |p| p.up.statements[2].line += 1),
        ("shift a column", |p| p.up.statements[1].column += 1),
        ("swap two statements", |p| p.up.statements.swap(0, 1)),
        ("repeat a statement", |p| p.up.statements.push(p.up.statements[2].clone())),
        ("cut a statement short", |p| {
            p.up.statements[2].sql.pop();
        }),
        ("move the Down section", |p| p.down.as_mut().unwrap().line -= 1),
    ];
    for (what, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(preservation::check_parsed(text, &bad).is_err(), "the oracle misses: {what}");
    }
}
