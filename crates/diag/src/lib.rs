//! One format for every problem that has a place in a file: the compiler convention
//! `path:line:column: error|warning: message`, which terminals, editors' problem matchers and CI
//! log viewers already turn into links. Library crates build [`Diagnostic`]s from their errors;
//! the binary decides how paths are shown ([`Diagnostic::relative_to`]) and whether GitHub
//! annotations are added ([`Diagnostic::github`]).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub mod yaml;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look; what was asked still happens.
    Warning,
    /// What was asked cannot happen, or would misbehave.
    Error,
}

impl Severity {
    /// The word the line format uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One problem with the file it is in and, when known, its line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// The line, when one applies.
    pub line: Option<usize>,
    /// The column, when known (only with a line).
    pub column: Option<usize>,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong: the first line is the summary, further lines are notes.
    pub message: String,
}

impl Diagnostic {
    /// An error in `file`, not yet placed on a line.
    pub fn error(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    /// A warning in `file`, not yet placed on a line.
    pub fn warning(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, ..Self::error(file, message) }
    }

    /// The same problem placed at `line` (and `column`, when known).
    pub fn at(mut self, line: Option<usize>, column: Option<usize>) -> Self {
        self.line = line.filter(|l| *l > 0);
        self.column = column.filter(|c| *c > 0 && self.line.is_some());
        self
    }

    /// The same problem with its path shown relative to `root` when the file is inside it, the
    /// way compilers print paths of the project they build.
    pub fn relative_to(mut self, root: &Path) -> Self {
        if let Ok(rel) = self.file.strip_prefix(root) {
            self.file = rel.to_path_buf();
        }
        self
    }

    /// GitHub Actions' workflow command that annotates the file in the run's summary and the
    /// pull request: `::error file=F,line=L,col=C::message`, escaped as the runner requires.
    pub fn github(&self) -> String {
        let mut props = format!("file={}", escape_property(&self.file.to_string_lossy()));
        if let Some(l) = self.line {
            props.push_str(&format!(",line={l}"));
        }
        if let Some(c) = self.column {
            props.push_str(&format!(",col={c}"));
        }
        format!("::{} {props}::{}", self.severity.as_str(), escape_data(&self.message))
    }
}

/// `path:line:column: severity: summary`, then any notes on lines of their own, indented.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        let mut lines = self.message.lines();
        write!(f, ": {}: {}", self.severity.as_str(), lines.next().unwrap_or_default())?;
        for note in lines {
            // Notes keep their own indentation (a statement's layout), else get two spaces.
            let indent = if note.starts_with(char::is_whitespace) { "" } else { "  " };
            write!(f, "\n{indent}{note}")?;
        }
        Ok(())
    }
}

/// Escapes a workflow command's message (`%`, CR and LF), per GitHub's runner.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a workflow command's property value: as data, plus `:` and `,`, which delimit properties.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_the_compiler_shape() {
        let d = Diagnostic::error("migrations/003_x.sql", "statement is not terminated by ';'")
            .at(Some(12), Some(5));
        assert_eq!(d.to_string(), "migrations/003_x.sql:12:5: error: statement is not terminated by ';'");
        let d = Diagnostic::warning("m.sql", "empty").at(Some(3), None);
        assert_eq!(d.to_string(), "m.sql:3: warning: empty");
        assert_eq!(Diagnostic::error("m.sql", "unreadable").to_string(), "m.sql: error: unreadable");
    }

    #[test]
    fn a_column_needs_a_line_and_zero_is_no_position() {
        let d = Diagnostic::error("f", "m").at(None, Some(4));
        assert_eq!((d.line, d.column), (None, None));
        let d = Diagnostic::error("f", "m").at(Some(0), Some(0));
        assert_eq!((d.line, d.column), (None, None));
    }

    #[test]
    fn notes_follow_on_their_own_indented_lines() {
        let d = Diagnostic::error("f.sql", "migration 3 failed\nerror 42P01: relation \"x\" does not exist")
            .at(Some(2), None);
        assert_eq!(
            d.to_string(),
            "f.sql:2: error: migration 3 failed\n  error 42P01: relation \"x\" does not exist"
        );
    }

    #[test]
    fn paths_inside_the_root_are_shown_relative_and_others_as_given() {
        let root = Path::new("/w/repo");
        let inside = Diagnostic::error("/w/repo/migrations/1_a.sql", "m").relative_to(root);
        assert_eq!(inside.file, Path::new("migrations/1_a.sql"));
        let outside = Diagnostic::error("/elsewhere/1_a.sql", "m").relative_to(root);
        assert_eq!(outside.file, Path::new("/elsewhere/1_a.sql"));
    }

    #[test]
    fn github_annotations_escape_what_the_runner_would_split_on() {
        let d = Diagnostic::error("dir,with:odd/f.sql", "100% wrong\nsecond line").at(Some(7), Some(2));
        assert_eq!(
            d.github(),
            "::error file=dir%2Cwith%3Aodd/f.sql,line=7,col=2::100%25 wrong%0Asecond line"
        );
        let w = Diagnostic::warning("f.yaml", "m");
        assert_eq!(w.github(), "::warning file=f.yaml::m");
    }

    #[test]
    fn serialized_for_json_output() {
        let d = Diagnostic::warning("a.sql", "m").at(Some(1), None);
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({"file": "a.sql", "line": 1, "column": null, "severity": "warning", "message": "m"})
        );
    }
}
