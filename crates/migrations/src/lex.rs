//! A small SQL lexer that finds statement boundaries the way PostgreSQL does: a `;` ends a
//! statement only outside quoted strings, quoted identifiers, dollar-quoted bodies and comments.

/// Where the lexer stands at the end of the text it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// Not inside anything: a `;` here would end a statement.
    Nothing,
    /// Inside a `'...'` string that started at this byte offset.
    String(usize),
    /// Inside a `"..."` identifier that started at this byte offset.
    Identifier(usize),
    /// Inside a `$tag$...$tag$` body that started at this byte offset.
    DollarQuote(usize),
    /// Inside a `/* ... */` comment that started at this byte offset.
    Comment(usize),
}

/// The statements found in a text: byte ranges of each piece ended by a top-level `;` (the `;`
/// excluded), the unfinished rest, and what is open at the end.
#[derive(Debug)]
pub(crate) struct Split {
    /// Complete statements as byte ranges; pieces holding only whitespace and comments are dropped.
    pub statements: Vec<std::ops::Range<usize>>,
    /// Text after the last top-level `;`, if it holds more than whitespace and comments.
    pub rest: Option<std::ops::Range<usize>>,
    /// The construct still open at the end of the text.
    pub open: Open,
}

/// Splits `sql` at top-level semicolons.
pub(crate) fn split(sql: &str) -> Split {
    let b = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut significant = false;
    let mut i = 0;
    let mut open = Open::Nothing;
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = memchr(b'\n', &b[i..]).map_or(b.len(), |n| i + n);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => match skip_block_comment(b, i) {
                Some(end) => {
                    i = end;
                    continue;
                }
                None => {
                    open = Open::Comment(i);
                    break;
                }
            },
            b'\'' => {
                significant = true;
                let escapes = i > 0 && matches!(b[i - 1], b'e' | b'E') && !(i > 1 && is_ident(b[i - 2]));
                match skip_string(b, i, escapes) {
                    Some(end) => i = end,
                    None => {
                        open = Open::String(i);
                        break;
                    }
                }
                continue;
            }
            b'"' => {
                significant = true;
                match skip_string(b, i, false) {
                    Some(end) => i = end,
                    None => {
                        open = Open::Identifier(i);
                        break;
                    }
                }
                continue;
            }
            b'$' if i == 0 || !is_ident(b[i - 1]) => {
                significant = true;
                if let Some(tag_len) = dollar_tag(&b[i..]) {
                    let tag = &b[i..i + tag_len];
                    match find(&b[i + tag_len..], tag) {
                        Some(n) => i += tag_len + n + tag_len,
                        None => {
                            open = Open::DollarQuote(i);
                            break;
                        }
                    }
                    continue;
                }
            }
            b';' => {
                if significant {
                    statements.push(start..i);
                }
                start = i + 1;
                significant = false;
            }
            c if !c.is_ascii_whitespace() => significant = true,
            _ => {}
        }
        i += 1;
    }
    let rest = (significant || open != Open::Nothing).then_some(start..b.len());
    Split { statements, rest, open }
}

/// Whether `sql` holds anything but whitespace and comments.
pub(crate) fn has_code(sql: &str) -> bool {
    let s = split(sql);
    !s.statements.is_empty() || s.rest.is_some()
}

pub(crate) fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Length of a dollar-quote opening tag (`$$` or `$name$`) at the start of `b`.
pub(crate) fn dollar_tag(b: &[u8]) -> Option<usize> {
    if b.get(1) == Some(&b'$') {
        return Some(2);
    }
    let first = *b.get(1)?;
    if !(first.is_ascii_alphabetic() || first == b'_' || first >= 0x80) {
        return None;
    }
    let mut j = 2;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

/// Skips a quoted string or identifier starting at `i`; a doubled quote is an escaped quote.
fn skip_string(b: &[u8], i: usize, backslash_escapes: bool) -> Option<usize> {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if backslash_escapes && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

/// Skips a block comment starting at `i`; PostgreSQL's block comments nest.
fn skip_block_comment(b: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0;
    let mut j = i;
    while j + 1 < b.len() {
        if b[j] == b'/' && b[j + 1] == b'*' {
            depth += 1;
            j += 2;
        } else if b[j] == b'*' && b[j + 1] == b'/' {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return Some(j);
            }
        } else {
            j += 1;
        }
    }
    None
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == needle)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(sql: &str) -> Vec<&str> {
        split(sql).statements.into_iter().map(|r| sql[r].trim()).collect()
    }

    #[test]
    fn semicolons_inside_quotes_bodies_and_comments_do_not_split() {
        let sql = "SELECT ';' AS a, \"we;ird\" FROM t; -- a ; comment\n\
                   CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;\n\
                   /* block ; /* nested ; */ still ; */ SELECT $tag$ a;b $tag$;\n\
                   SELECT E'it\\'s; fine', 'it''s; fine';";
        assert_eq!(
            pieces(sql),
            vec![
                "SELECT ';' AS a, \"we;ird\" FROM t",
                "-- a ; comment\nCREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql",
                "/* block ; /* nested ; */ still ; */ SELECT $tag$ a;b $tag$",
                "SELECT E'it\\'s; fine', 'it''s; fine'",
            ]
        );
    }

    #[test]
    fn positional_parameters_and_identifiers_with_dollars_are_not_quotes() {
        assert_eq!(
            pieces("PREPARE p AS SELECT $1; SELECT a$b$ FROM t;"),
            vec!["PREPARE p AS SELECT $1", "SELECT a$b$ FROM t"]
        );
    }

    #[test]
    fn open_constructs_are_reported_with_their_start() {
        assert_eq!(split("SELECT 1; SELECT $$ unfinished;").open, Open::DollarQuote(17));
        assert_eq!(split("SELECT 'abc").open, Open::String(7));
        assert_eq!(split("/* never closed").open, Open::Comment(0));
        let s = split("SELECT 1; SELECT 2");
        assert_eq!(s.open, Open::Nothing);
        assert_eq!(s.rest, Some(9..18));
    }

    #[test]
    fn empty_pieces_and_trailing_comments_are_dropped() {
        let s = split(";; SELECT 1; -- done\n");
        assert_eq!(s.statements.len(), 1);
        assert_eq!(s.rest, None);
        assert!(!has_code("  -- only a comment\n/* and this */"));
    }
}
