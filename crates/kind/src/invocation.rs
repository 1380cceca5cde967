//! One command as data: what `--dry-run` prints, what tests snapshot, what [`crate::Kind::run`] runs.

use std::fmt;

/// A program, its arguments and the environment variables it gets on top of the inherited ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The program: a name looked up on `PATH`, or a path.
    pub program: String,
    /// The arguments, one entry per argv element (never re-split by a shell).
    pub args: Vec<String>,
    /// Variables set for this child only, in order.
    pub env: Vec<(String, String)>,
}

impl Invocation {
    /// An invocation of `program` with `args` and no extra environment.
    pub fn new(program: impl Into<String>, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { program: program.into(), args: args.into_iter().map(Into::into).collect(), env: Vec::new() }
    }

    /// The full argv, program first.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.clone()).chain(self.args.iter().cloned()).collect()
    }
}

/// `VAR=value program arg…`, shell-quoted where needed, so it can be pasted into a terminal.
impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env = self.env.iter().map(|(k, v)| format!("{k}={}", quote(v)));
        let argv = self.argv();
        let words: Vec<String> = env.chain(argv.iter().map(|a| quote(a))).collect();
        f.write_str(&words.join(" "))
    }
}

/// One word for a POSIX shell: left bare when that is unambiguous, single-quoted otherwise.
fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@,+%^".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_words_a_shell_would_split_or_expand() {
        let mut inv = Invocation::new("kind", ["export", "logs", "/tmp/my logs", "it's", "", "$HOME"]);
        inv.env.push(("KIND_EXPERIMENTAL_PROVIDER".into(), "podman".into()));
        assert_eq!(
            inv.to_string(),
            r"KIND_EXPERIMENTAL_PROVIDER=podman kind export logs '/tmp/my logs' 'it'\''s' '' '$HOME'"
        );
    }
}
