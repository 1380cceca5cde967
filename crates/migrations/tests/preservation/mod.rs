//! The statement-preservation oracle for the goose parser, shared by `parse_props.rs` and the
//! `goose_parse` fuzz target (`fuzz/fuzz_targets/goose_parse.rs` includes this file).
//!
//! It checks a parse against its source without splitting statements itself, so it cannot
//! share the parser's mistakes. The text is read as the parser reads it, line by line
//! (`str::lines`: `\n` or `\r\n` ends a line), with goose annotation lines set aside, since the
//! parser consumes them as goose does, even in the middle of a statement. What remains must be
//! exactly the statements' text, each found at the line and column it claims, in file order,
//! never overlapping, with nothing between them but separators: whitespace, `;` and comments.
//! Only those gaps are scanned, and a gap may hold no quote at all, so the scanner needs no
//! string rules: anything it does not recognise is a byte the parser lost.
//!
//! What it does not prove: that statements are cut at the right `;` (a cut inside a string
//! whose remainder reads as a comment would pass). The generated files in `parse_props.rs`,
//! whose statements are known, cover that.

use migrations::parse::{Parsed, parse};

/// Parses `text` and checks the result: an error names a line of the file; a parse keeps
/// every byte that is not a separator or an annotation in exactly one statement, in order,
/// at the line and column the statement claims. The error says what was violated.
pub fn check(text: &str) -> Result<(), String> {
    let line_count = text.lines().count();
    match parse(text) {
        Err(e) => match e.line() {
            Some(line) if line == 0 || line > line_count => {
                Err(format!("error `{e}` names line {line} of a {line_count}-line file"))
            }
            _ => Ok(()),
        },
        Ok(parsed) => check_parsed(text, &parsed),
    }
}

/// A goose annotation as goose recognises one: `--` at the very start of the line, then one of
/// its commands in any letter case with any runs of whitespace.
fn annotation(line: &str) -> Option<String> {
    let rest = line.strip_prefix("--")?;
    let command = rest.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let known = [
        "+goose up",
        "+goose down",
        "+goose statementbegin",
        "+goose statementend",
        "+goose no transaction",
        "+goose envsub on",
        "+goose envsub off",
    ];
    known.contains(&command.as_str()).then_some(command)
}

/// The file without its annotation lines: the kept lines, each followed by `\n`, and where
/// each kept line starts in that text.
struct Kept<'a> {
    text: String,
    lines: Vec<(usize, usize, &'a str)>,
}

impl<'a> Kept<'a> {
    fn new(source: &'a str) -> Self {
        let mut kept = Kept { text: String::new(), lines: Vec::new() };
        for (idx, line) in source.lines().enumerate() {
            if annotation(line).is_none() {
                kept.lines.push((idx + 1, kept.text.len(), line));
                kept.text.push_str(line);
                kept.text.push('\n');
            }
        }
        kept
    }

    /// The offset in the kept text of 1-based `line` and `column` (in characters), if that
    /// line is kept and has a character there.
    fn offset(&self, line: usize, column: usize) -> Option<usize> {
        let idx = self.lines.binary_search_by_key(&line, |l| l.0).ok()?;
        let (_, start, text) = self.lines[idx];
        let (byte, _) = text.char_indices().nth(column.checked_sub(1)?)?;
        Some(start + byte)
    }

    /// The file line holding byte `offset` of the kept text.
    fn line_at(&self, offset: usize) -> usize {
        let idx = self.lines.partition_point(|l| l.1 <= offset);
        self.lines.get(idx.saturating_sub(1)).map_or(0, |l| l.0)
    }
}

/// Checks `parsed`, the parse of `text`, against it (see the module's documentation).
pub fn check_parsed(text: &str, parsed: &Parsed) -> Result<(), String> {
    let lines: Vec<&str> = text.lines().collect();
    let annotation_at = |n: usize| n.checked_sub(1).and_then(|i| lines.get(i)).and_then(|l| annotation(l));
    let down_line = parsed.down.as_ref().map(|d| d.line);
    if parsed.annotated {
        if annotation_at(parsed.up.line).as_deref() != Some("+goose up") {
            return Err(format!(
                "the Up section claims line {}, which is not '-- +goose Up'",
                parsed.up.line
            ));
        }
        if let Some(d) = down_line
            && (d <= parsed.up.line || annotation_at(d).as_deref() != Some("+goose down"))
        {
            return Err(format!(
                "the Down section claims line {d}, which is not a '-- +goose Down' after Up"
            ));
        }
    } else if parsed.up.line != 0 || parsed.down.is_some() {
        return Err("a file without annotations has a Down section or an Up line".into());
    }

    let kept = Kept::new(text);
    let up = parsed.up.statements.iter().map(|s| (s, parsed.up.line, down_line));
    let down = parsed.down.iter().flat_map(|d| d.statements.iter().map(move |s| (s, d.line, None)));
    let mut cursor = 0;
    for (i, (stmt, after, before)) in up.chain(down).enumerate() {
        let at = format!("statement {i} (line {}, column {}, {:?})", stmt.line, stmt.column, stmt.sql);
        if stmt.sql.is_empty() {
            return Err(format!("{at} is empty"));
        }
        if stmt.line <= after {
            return Err(format!("{at} starts before its section's annotation on line {after}"));
        }
        let Some(start) = kept.offset(stmt.line, stmt.column) else {
            return Err(format!("{at}: no such position outside annotation lines"));
        };
        if start < cursor {
            return Err(format!("{at} starts inside the statement before it"));
        }
        if !kept.text[start..].starts_with(&stmt.sql) {
            let found: String = kept.text[start..].chars().take(stmt.sql.chars().count() + 10).collect();
            return Err(format!("{at}: the file reads {found:?} there"));
        }
        separators(&kept.text[cursor..start])
            .map_err(|e| format!("{at}: before it, {e} (line {})", kept.line_at(cursor)))?;
        cursor = start + stmt.sql.len();
        if let Some(end) = before
            && kept.line_at(cursor - 1) >= end
        {
            return Err(format!("{at} runs past the section's end on line {end}"));
        }
    }
    separators(&kept.text[cursor..])
        .map_err(|e| format!("after the last statement, {e} (line {})", kept.line_at(cursor)))
}

/// Checks that `gap` holds only what may separate statements: whitespace as PostgreSQL's
/// scanner knows it (space, tab, newline, carriage return, form feed), `;`, `--` comments that
/// end at a line break within the gap, and `/* */` comments, which nest in PostgreSQL.
fn separators(gap: &str) -> Result<(), String> {
    let b = gap.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"--") {
            let Some(n) = b[i..].iter().position(|&c| c == b'\n') else {
                return Err("a line comment runs into the next statement".into());
            };
            i += n + 1;
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            loop {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if i < b.len() {
                    i += 1;
                } else {
                    return Err("a block comment runs into the next statement".into());
                }
            }
        } else if matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0c | b';') {
            i += 1;
        } else {
            let lost: String = gap[i..].chars().take(20).collect();
            return Err(format!("{lost:?} is in no statement"));
        }
    }
    Ok(())
}
