//! Parser behaviour, including where it follows goose's own strictness.

use super::*;

fn sqls(s: &Section) -> Vec<(usize, &str)> {
    s.statements.iter().map(|st| (st.line, st.sql.as_str())).collect()
}

#[test]
fn up_and_down_with_line_numbers() {
    let p = parse(
        "-- leading comment\n\
         -- +goose Up\n\
         CREATE TABLE a (id int);\n\
         \n\
         -- explain b\n\
         CREATE TABLE b (\n  id int\n);\n\
         -- +goose Down\n\
         DROP TABLE b; DROP TABLE a;\n",
    )
    .unwrap();
    assert_eq!(p.up.line, 2);
    assert_eq!(sqls(&p.up), vec![(3, "CREATE TABLE a (id int)"), (6, "CREATE TABLE b (\n  id int\n)")]);
    let down = p.down.unwrap();
    assert_eq!(down.line, 9);
    assert_eq!(sqls(&down), vec![(10, "DROP TABLE b"), (10, "DROP TABLE a")]);
    assert!(!p.no_transaction);
}

#[test]
fn statement_blocks_are_sent_whole() {
    let p = parse(
        "-- +goose Up\n\
         -- +goose StatementBegin\n\
         CREATE FUNCTION f() RETURNS trigger AS $$\n\
         BEGIN\n  NEW.x := 1;\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n\
         -- +goose StatementEnd\n\
         SELECT 1;\n",
    )
    .unwrap();
    assert_eq!(p.up.statements.len(), 2);
    assert_eq!(p.up.statements[0].line, 3);
    assert!(p.up.statements[0].sql.ends_with("LANGUAGE plpgsql"));
    assert_eq!(sqls(&p.up)[1], (10, "SELECT 1"));
}

#[test]
fn dollar_bodies_without_statement_begin_stay_whole() {
    let p = parse(
        "-- +goose Up\n\
         CREATE FUNCTION g() RETURNS int AS $body$\n\
         BEGIN\n  PERFORM 1;\n  RETURN 2;\nEND;\n$body$ LANGUAGE plpgsql;\n\
         CREATE TABLE t (s text DEFAULT 'a;b');\n",
    )
    .unwrap();
    assert_eq!(p.up.statements.len(), 2);
    assert!(p.up.statements[0].sql.contains("RETURN 2;\nEND;\n$body$ LANGUAGE plpgsql"));
    assert_eq!(p.up.statements[1].line, 8);
}

#[test]
fn no_transaction_and_envsubst_flags() {
    let p = parse(
        "-- +goose NO TRANSACTION\n\
         -- +goose Up\n\
         CREATE INDEX CONCURRENTLY i ON t (a);\n\
         -- +goose ENVSUB ON\n\
         CREATE ROLE ${ROLE};\n\
         -- +goose ENVSUB OFF\n\
         SELECT '${NOT_SUBSTITUTED}';\n",
    )
    .unwrap();
    assert!(p.no_transaction);
    let flags: Vec<bool> = p.up.statements.iter().map(|s| s.envsubst).collect();
    assert_eq!(flags, vec![false, true, false]);
}

#[test]
fn unfinished_statement_before_down_is_an_error_like_in_goose() {
    let err = parse("-- +goose Up\nCREATE TABLE a (id int)\n-- +goose Down\nDROP TABLE a;\n").unwrap_err();
    assert_eq!(err, ParseError::Unfinished { line: 2, before: "'-- +goose Down'" });
    assert!(err.to_string().contains("goose rejects this too"), "{err}");
}

#[test]
fn unfinished_statement_at_end_of_file() {
    let err = parse("-- +goose Up\nSELECT 1;\nSELECT 2\n").unwrap_err();
    assert_eq!(err, ParseError::Unfinished { line: 3, before: "the end of the file" });
}

#[test]
fn unterminated_dollar_body_names_its_line() {
    let err = parse("-- +goose Up\nSELECT 1;\nDO $$\nBEGIN\n  PERFORM 1;\nEND;\n").unwrap_err();
    assert_eq!(err, ParseError::Unterminated { line: 3, what: "dollar-quoted body" });
}

#[test]
fn statement_begin_without_end() {
    let err = parse("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n").unwrap_err();
    assert_eq!(err, ParseError::MissingStatementEnd { line: 2 });
    let err = parse("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose Down\n").unwrap_err();
    assert_eq!(err, ParseError::MissingStatementEnd { line: 2 });
}

#[test]
fn misplaced_annotations() {
    let cases = [
        ("-- +goose Down\n", 1, "before '-- +goose Up'"),
        ("-- +goose Up\n-- +goose Up\n", 2, "duplicate '-- +goose Up'"),
        ("-- +goose Up\n-- +goose Down\n-- +goose Down\n", 3, "duplicate '-- +goose Down'"),
        ("-- +goose Up\n-- +goose StatementEnd\n", 2, "without '-- +goose StatementBegin'"),
        ("-- +goose StatementBegin\n", 1, "must come after"),
    ];
    for (text, line, needle) in cases {
        let err = parse(text).unwrap_err();
        let ParseError::Misplaced { line: got, message } = &err else { panic!("{text:?}: {err:?}") };
        assert_eq!(*got, line, "{text:?}");
        assert!(message.contains(needle), "{text:?}: {message}");
    }
}

#[test]
fn annotations_are_case_insensitive_as_in_goose() {
    let p = parse(
        "-- +goose up\n\
         -- +goose StatementBEGIN\n\
         SELECT 1;\n\
         -- +GOOSE statementend\n\
         --+goose   no  transaction  \n\
         -- +goose envsub on\n\
         SELECT '${ROLE}';\n\
         -- +Goose EnvSub Off\n\
         SELECT 2;\n\
         --   +goose DOWN\n\
         SELECT 3;\n",
    )
    .unwrap();
    assert_eq!(p.up.line, 1);
    assert_eq!(sqls(&p.up), vec![(3, "SELECT 1"), (7, "SELECT '${ROLE}'"), (9, "SELECT 2")]);
    let flags: Vec<bool> = p.up.statements.iter().map(|s| s.envsubst).collect();
    assert_eq!(flags, vec![false, true, false]);
    assert!(p.no_transaction);
    assert_eq!(p.down.map(|d| d.line), Some(10));
    assert!(p.unknown_annotations.is_empty(), "{:?}", p.unknown_annotations);
}

#[test]
fn an_indented_annotation_is_a_comment_as_in_goose() {
    let err = parse("  -- +goose Up\nSELECT 1;\n").unwrap_err();
    assert_eq!(err, ParseError::CodeBeforeUp { line: 2, near_miss: None });
}

#[test]
fn near_miss_annotations_are_comments_as_in_goose_but_named_in_errors() {
    let err = parse("-- +goose Upp\nCREATE TABLE a (id int);\n").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("SQL before '-- +goose Up'"), "{text}");
    assert_eq!(err.line(), Some(2), "the line is the error's, for whoever names the file");
    assert!(text.contains("line 1 reads '-- +goose Upp'"), "{text}");
    assert!(text.contains("in any letter case"), "{text}");

    let p = parse("-- +goose Up\n-- +goose ENVSUBST ON\nSELECT 1;\n").unwrap();
    assert_eq!(p.unknown_annotations, vec![(2, "-- +goose ENVSUBST ON".to_string())]);
    assert!(!p.up.statements[0].envsubst, "goose ignores the misspelt annotation, and so do we");
}

#[test]
fn empty_file_has_no_up() {
    assert_eq!(parse("").unwrap_err(), ParseError::MissingUp { near_miss: None });
    assert_eq!(parse("-- just a comment\n\n").unwrap_err(), ParseError::MissingUp { near_miss: None });
}

#[test]
fn up_only_migration_has_no_down_section() {
    let p = parse("-- +goose Up\nSELECT 1;\n").unwrap();
    assert!(p.down.is_none());
}

#[test]
fn a_file_without_annotations_is_its_up_section_whole() {
    let p = parse("-- the monorepo's plain SQL\nCREATE TABLE a (id int);\n\nCREATE INDEX a_id ON a (id);\n")
        .unwrap();
    assert!(!p.annotated);
    let lines: Vec<(usize, &str)> = p.up.statements.iter().map(|s| (s.line, s.sql.as_str())).collect();
    assert_eq!(lines, [(2, "CREATE TABLE a (id int)"), (4, "CREATE INDEX a_id ON a (id)")]);
    assert_eq!((p.up.line, p.down, p.no_transaction), (0, None, false));
    // Still SQL as PostgreSQL reads it: an unterminated statement is named by line.
    assert_eq!(
        parse("CREATE TABLE a (id int);\nSELECT 1\n").unwrap_err(),
        ParseError::Unfinished { line: 2, before: "the end of the file" }
    );
    // Nothing to run at all is not a migration.
    assert!(matches!(parse("-- only a comment\n\n").unwrap_err(), ParseError::MissingUp { .. }));
}

#[test]
fn sql_before_up_stays_an_error_in_a_file_with_annotations() {
    let err = parse("CREATE TABLE a (id int);\n-- +goose Up\nSELECT 1;\n").unwrap_err();
    assert_eq!(err, ParseError::CodeBeforeUp { line: 1, near_miss: None });
    let err = parse("CREATE TABLE a (id int);\n-- +goose Down\nSELECT 1;\n").unwrap_err();
    assert!(matches!(err, ParseError::CodeBeforeUp { line: 1, .. }), "{err}");
}

#[test]
fn only_ascii_whitespace_is_trimmed_from_statements() {
    // Found by the goose_parse fuzz target: the lexer counts `\v` and Unicode spaces as code, and
    // `str::trim` removed them, leaving an empty statement or one shorter than its text.
    let p = parse("\x0b;").unwrap();
    assert_eq!(sqls(&p.up), vec![(1, "\x0b")]);
    let p = parse("-- +goose Up\nSELECT 1;\u{a0};\nSELECT 2\u{3000};\n").unwrap();
    assert_eq!(sqls(&p.up), vec![(2, "SELECT 1"), (2, "\u{a0}"), (3, "SELECT 2\u{3000}")]);
    let p =
        parse("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\u{a0}\n-- +goose StatementEnd\n").unwrap();
    assert_eq!(sqls(&p.up), vec![(3, "SELECT 1;\u{a0}")]);
    // A line holding only such a space is code, not a blank line to skip.
    assert_eq!(
        parse("\u{a0}\n-- +goose Up\n").unwrap_err(),
        ParseError::CodeBeforeUp { line: 1, near_miss: None }
    );
}
