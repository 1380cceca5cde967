//! The goose SQL migration format: `-- +goose Up|Down`, `StatementBegin|End`, `NO TRANSACTION`,
//! `ENVSUB ON|OFF`, split into statements with the line each one starts on.
//!
//! Annotations follow goose (v3.19+) exactly: a line starting with `--` (no leading whitespace)
//! whose rest, trimmed, lowercased and with runs of whitespace collapsed, is one of `+goose up`,
//! `+goose down`, `+goose statementbegin`, `+goose statementend`, `+goose no transaction`,
//! `+goose envsub on` or `+goose envsub off`; so `-- +goose up` and `-- +goose StatementBEGIN` are
//! annotations, and a file goose accepts is accepted here. Any other `+goose` line is a comment to
//! goose and to this parser, and is recorded in [`Parsed::unknown_annotations`] for lint.
//!
//! One deliberate difference: goose ends a statement at any line whose last word ends in `;`,
//! which cuts `$$` function bodies apart unless they are wrapped in `StatementBegin`/`StatementEnd`;
//! this parser knows quotes, dollar quotes and comments, so such bodies also work unwrapped.

use serde::Serialize;

use crate::lex::{self, Open};

/// One SQL statement of a migration, as it will be sent to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// The statement text, trimmed, without its terminating `;`.
    pub sql: String,
    /// 1-based line of the file where the statement starts.
    pub line: usize,
    /// 1-based column (in characters) of that line where the statement starts.
    pub column: usize,
    /// Whether `${VAR}` references are substituted from the environment (`-- +goose ENVSUB ON`).
    pub envsubst: bool,
}

impl Statement {
    /// The file line and column of the point in the statement after `before`, a prefix of the
    /// text sent (the statement's own, or after `${VAR}` substitution): how a position
    /// PostgreSQL reports, or `lint` finds, becomes a place in the file.
    pub fn position_after(&self, before: &str) -> (usize, usize) {
        match before.rsplit_once('\n') {
            Some((above, last)) => (self.line + above.matches('\n').count() + 1, last.chars().count() + 1),
            None => (self.line, self.column + before.chars().count()),
        }
    }
}

/// The statements of one direction of a migration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Section {
    /// 1-based line of the `-- +goose Up|Down` annotation.
    pub line: usize,
    /// The statements in file order.
    pub statements: Vec<Statement>,
}

/// A parsed migration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parsed {
    /// The `Up` section.
    pub up: Section,
    /// The `Down` section, if the file has one.
    pub down: Option<Section>,
    /// Whether `-- +goose NO TRANSACTION` was given: statements run one by one, outside a transaction.
    pub no_transaction: bool,
    /// Lines that look like goose annotations but are not (goose treats them as comments).
    pub unknown_annotations: Vec<(usize, String)>,
    /// Whether the file has goose annotations at all. A file without any (plain SQL, as the
    /// monorepo applied with `psql`) is its Up section whole, with no Down; goose itself
    /// refuses such a file, which lint, status and dry runs say ([`UNANNOTATED`]).
    pub annotated: bool,
}

/// What lint, status and dry runs say of a file without goose annotations.
pub const UNANNOTATED: &str = "no goose annotations: applied whole as its Up section (as `psql -f` would), with no Down; \
     goose itself refuses this file (\"SQL before '-- +goose Up'\"): make '-- +goose Up' its first line, \
     and add a '-- +goose Down' section to make it reversible";

/// Why a migration file could not be parsed; every variant but `MissingUp` has a line
/// ([`ParseError::line`]), which the message leaves to whoever names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The file has no `-- +goose Up`.
    #[error("no '-- +goose Up' annotation: goose requires one before any SQL{}", describe_near_miss(.near_miss))]
    MissingUp {
        /// An annotation-like line that may have been meant, as (line, text).
        near_miss: Option<(usize, String)>,
    },
    /// SQL appears before `-- +goose Up`.
    #[error("SQL before '-- +goose Up' (goose rejects this too){}", describe_near_miss(.near_miss))]
    CodeBeforeUp {
        /// The offending line.
        line: usize,
        /// An annotation-like line that may have been meant.
        near_miss: Option<(usize, String)>,
    },
    /// An annotation in a place goose does not allow it.
    #[error("{message}")]
    Misplaced {
        /// The annotation's line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A statement is not terminated by `;` before the next section or the end of the file.
    #[error("statement is not terminated by ';' before {before} (missing semicolon? goose rejects this too)")]
    Unfinished {
        /// Where the unfinished statement starts.
        line: usize,
        /// What came next: `'-- +goose Down'` or `the end of the file`.
        before: &'static str,
    },
    /// A quoted string, identifier, dollar-quoted body or comment is never closed.
    #[error("{what} is never closed")]
    Unterminated {
        /// Where it starts.
        line: usize,
        /// What it is.
        what: &'static str,
    },
    /// `StatementBegin` without `StatementEnd`.
    #[error("'-- +goose StatementBegin' has no matching '-- +goose StatementEnd'")]
    MissingStatementEnd {
        /// The `StatementBegin` line.
        line: usize,
    },
}

impl ParseError {
    /// The line the problem is on; `None` for a file with no Up section at all.
    pub fn line(&self) -> Option<usize> {
        match self {
            ParseError::MissingUp { .. } => None,
            ParseError::CodeBeforeUp { line, .. }
            | ParseError::Misplaced { line, .. }
            | ParseError::Unfinished { line, .. }
            | ParseError::Unterminated { line, .. }
            | ParseError::MissingStatementEnd { line } => Some(*line),
        }
    }
}

fn describe_near_miss(n: &Option<(usize, String)>) -> String {
    match n {
        Some((line, text)) => format!(
            "; line {line} reads '{text}', which goose ignores as a comment (goose knows only '-- +goose Up', 'Down', 'StatementBegin', 'StatementEnd', 'NO TRANSACTION', 'ENVSUB ON' and 'ENVSUB OFF', in any letter case, with '--' at the start of the line)"
        ),
        None => String::new(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Start,
    Up,
    Down,
}

/// Accumulates the lines of the statement being read and remembers where each line starts.
#[derive(Default)]
struct Buffer {
    text: String,
    line_starts: Vec<(usize, usize)>,
}

impl Buffer {
    fn push(&mut self, line_no: usize, line: &str) {
        self.line_starts.push((self.text.len(), line_no));
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn first_line(&self) -> usize {
        self.line_starts.first().map_or(0, |l| l.1)
    }

    /// The file line and column holding byte `offset` of the buffer.
    fn position_at(&self, offset: usize) -> (usize, usize) {
        let idx = self.line_starts.partition_point(|(start, _)| *start <= offset).saturating_sub(1);
        let (line_start, line) = self.line_starts[idx];
        (line, self.text[line_start..offset].chars().count() + 1)
    }

    fn statement(&self, range: std::ops::Range<usize>, envsubst: bool) -> Statement {
        let piece = &self.text[range.clone()];
        let lead = piece.len() - piece.trim_start_matches(space).len();
        let (line, column) = self.position_at(range.start + lead);
        Statement { sql: piece.trim_matches(space).to_string(), line, column, envsubst }
    }

    fn clear(&mut self) {
        self.text.clear();
        self.line_starts.clear();
    }
}

/// Parses one goose SQL migration.
pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    // Any `+goose` comment, even a misspelt or indented one, means the file was meant for goose:
    // then goose's rules hold, and SQL before `-- +goose Up` stays an error.
    let annotated = text.lines().any(|l| {
        l.trim_start()
            .strip_prefix("--")
            .map(normalise)
            .is_some_and(|c| c.replace(' ', "").starts_with("+goose"))
    });
    let mut dir = if annotated { Dir::Start } else { Dir::Up };
    let mut up = Section::default();
    let mut down: Option<Section> = None;
    let mut no_transaction = false;
    let mut envsubst = false;
    let mut block: Option<usize> = None;
    let mut buf = Buffer::default();
    let mut unknown = Vec::new();

    for (idx, line) in text.lines().enumerate() {
        let n = idx + 1;
        if let Some(cmd) = line.strip_prefix("--").map(normalise) {
            let handled = match cmd.as_str() {
                "+goose up" => {
                    if dir != Dir::Start {
                        return Err(misplaced(n, "duplicate '-- +goose Up' annotation"));
                    }
                    dir = Dir::Up;
                    up.line = n;
                    true
                }
                "+goose down" => {
                    match dir {
                        Dir::Start => {
                            return Err(misplaced(n, "'-- +goose Down' before '-- +goose Up'"));
                        }
                        Dir::Down => return Err(misplaced(n, "duplicate '-- +goose Down' annotation")),
                        Dir::Up => {}
                    }
                    if let Some(b) = block {
                        return Err(ParseError::MissingStatementEnd { line: b });
                    }
                    finish(&buf, "'-- +goose Down'")?;
                    buf.clear();
                    dir = Dir::Down;
                    down = Some(Section { line: n, statements: Vec::new() });
                    true
                }
                "+goose statementbegin" => {
                    if dir == Dir::Start {
                        return Err(misplaced(
                            n,
                            "'-- +goose StatementBegin' must come after '-- +goose Up' or '-- +goose Down'",
                        ));
                    }
                    if let Some(b) = block {
                        return Err(misplaced(
                            n,
                            &format!("'-- +goose StatementBegin' inside the block opened at line {b}"),
                        ));
                    }
                    finish(&buf, "'-- +goose StatementBegin'")?;
                    buf.clear();
                    block = Some(n);
                    true
                }
                "+goose statementend" => {
                    if block.take().is_none() {
                        return Err(misplaced(
                            n,
                            "'-- +goose StatementEnd' without '-- +goose StatementBegin'",
                        ));
                    }
                    let body = buf.text.trim_end_matches(space);
                    // goose sends the block as one string; a trailing `;` is harmless to the server
                    // but stripped so every statement looks alike in messages.
                    let body = body.strip_suffix(';').unwrap_or(body);
                    if lex::has_code(body) {
                        let stmt = buf.statement(0..body.len(), envsubst);
                        section(&mut up, &mut down, dir).statements.push(stmt);
                    }
                    buf.clear();
                    true
                }
                "+goose no transaction" => {
                    no_transaction = true;
                    true
                }
                "+goose envsub on" => {
                    envsubst = true;
                    true
                }
                "+goose envsub off" => {
                    envsubst = false;
                    true
                }
                other => {
                    if other.replace(' ', "").starts_with("+goose") {
                        unknown.push((n, line.trim().to_string()));
                    }
                    false
                }
            };
            if handled {
                continue;
            }
        }
        let content = line.trim_start_matches(space);
        if buf.is_empty() && (content.is_empty() || content.starts_with("--")) {
            continue;
        }
        if dir == Dir::Start {
            return Err(ParseError::CodeBeforeUp { line: n, near_miss: unknown.first().cloned() });
        }
        buf.push(n, line);
        if block.is_some() {
            continue;
        }
        let split = lex::split(&buf.text);
        if split.rest.is_none() {
            let stmts: Vec<_> = split.statements.into_iter().map(|r| buf.statement(r, envsubst)).collect();
            section(&mut up, &mut down, dir).statements.extend(stmts);
            buf.clear();
        }
    }

    if let Some(line) = block {
        return Err(ParseError::MissingStatementEnd { line });
    }
    if dir == Dir::Start {
        return Err(ParseError::MissingUp { near_miss: unknown.first().cloned() });
    }
    finish(&buf, "the end of the file")?;
    if !annotated && up.statements.is_empty() {
        // Neither goose SQL nor plain SQL: most likely not the file that was meant.
        return Err(ParseError::MissingUp { near_miss: None });
    }
    Ok(Parsed { up, down, no_transaction, unknown_annotations: unknown, annotated })
}

/// Whitespace as the lexer reads it: ASCII only. `str::trim` would also drop `\v` and Unicode
/// spaces, which the lexer (like PostgreSQL before 16, and for Unicode spaces every version)
/// counts as part of a statement, so they would vanish from the text sent to the server.
fn space(c: char) -> bool {
    c.is_ascii_whitespace()
}

/// An annotation candidate as goose compares it: trimmed, lowercased, whitespace runs collapsed.
fn normalise(cmd: &str) -> String {
    cmd.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn section<'a>(up: &'a mut Section, down: &'a mut Option<Section>, dir: Dir) -> &'a mut Section {
    match dir {
        Dir::Down => down.as_mut().expect("down section exists in Down state"),
        _ => up,
    }
}

fn misplaced(line: usize, message: &str) -> ParseError {
    ParseError::Misplaced { line, message: message.to_string() }
}

/// Fails if the buffer holds a statement that was never terminated.
fn finish(buf: &Buffer, before: &'static str) -> Result<(), ParseError> {
    if buf.is_empty() {
        return Ok(());
    }
    let split = lex::split(&buf.text);
    let what = match split.open {
        Open::Nothing => return Err(ParseError::Unfinished { line: buf.first_line(), before }),
        Open::String(at) => (at, "quoted string"),
        Open::Identifier(at) => (at, "quoted identifier"),
        Open::DollarQuote(at) => (at, "dollar-quoted body"),
        Open::Comment(at) => (at, "block comment"),
    };
    Err(ParseError::Unterminated { line: buf.position_at(what.0).0, what: what.1 })
}

#[cfg(test)]
mod tests;
