//! What can go wrong talking to the engine, with the evidence: argv, exit status, stderr.

/// How many lines of stderr an error keeps.
const STDERR_LINES: usize = 10;

/// A failed engine operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine program is not on `PATH` (or the given path does not exist).
    #[error(
        "{program} is not installed: install podman (apt-get install podman runc) or set XTASK_CONTAINER_ENGINE"
    )]
    NotInstalled {
        /// The program that was looked for.
        program: String,
    },
    /// The engine ran and exited unsuccessfully.
    #[error("`{argv}` failed ({status}): {stderr}")]
    Failed {
        /// The command line (never carries a secret: secret data goes on stdin).
        argv: String,
        /// How it ended, e.g. `exit status: 125`.
        status: String,
        /// The last lines of its stderr, without podman's harmless syslog complaints.
        stderr: String,
    },
    /// `run` failed; `hint` says what to change when the cause is a known one.
    #[error("starting container {name} from image {image}: {failure}{}", hint_suffix(hint))]
    Run {
        /// The container's name.
        name: String,
        /// The image it was to run.
        image: String,
        /// What to do about it, when known.
        hint: Option<String>,
        /// The engine's failure (a [`Error::Failed`] with argv and stderr).
        failure: Box<Error>,
    },
    /// A container spec the engine would misread (e.g. a comma inside a mount path).
    #[error("invalid spec for container {name}: {reason}")]
    InvalidSpec {
        /// The container's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An operation on a container that does not exist.
    #[error("container {name} does not exist")]
    NoSuchContainer {
        /// The container's name.
        name: String,
    },
    /// A container port that has no host port.
    #[error("container {name} does not publish port {port}/tcp on 127.0.0.1")]
    NotPublished {
        /// The container's name.
        name: String,
        /// The container port.
        port: u16,
    },
    /// The engine's output did not have the expected shape.
    #[error("parsing {what}: {source}")]
    Parse {
        /// What was parsed, e.g. `podman container inspect pg-1`.
        what: String,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// A local file or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// The stderr of a [`Error::Failed`] (also inside [`Error::Run`]), empty for other errors.
    pub fn stderr(&self) -> &str {
        match self {
            Error::Failed { stderr, .. } => stderr,
            Error::Run { failure, .. } => failure.stderr(),
            _ => "",
        }
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default()
}

/// The last lines of an engine's stderr, without the noise podman prints when syslog is absent.
pub(crate) fn clean_stderr(stderr: &str) -> String {
    let wanted: Vec<&str> = stderr.lines().filter(|l| !l.contains("failed to connect to syslog")).collect();
    procs::tail(&wanted.join("\n"), STDERR_LINES)
}

/// A command line for people: arguments with spaces or quotes are single-quoted.
pub(crate) fn display_argv(argv: &[String]) -> String {
    let quote = |a: &String| {
        if !a.is_empty() && !a.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)) {
            a.clone()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    argv.iter().map(quote).collect::<Vec<_>>().join(" ")
}

/// What to tell the user about a failed `run`, from its stderr (and whether the image is here).
pub(crate) fn run_hint(
    stderr: &str,
    image: &str,
    image_present: impl FnOnce() -> Option<bool>,
) -> Option<String> {
    let lower = stderr.to_lowercase();
    if lower.contains("rlimit") || lower.contains("ulimit") {
        return Some(
            "the runtime cannot set resource limits on this host; set XTASK_CONTAINER_RUN_ARGS \
             (see `cargo xtask doctor`)"
                .to_string(),
        );
    }
    let pulled = ["trying to pull", "pull access denied", "image not known", "unable to find image"];
    if pulled.iter().any(|p| lower.contains(p)) && image_present() == Some(false) {
        return Some(format!("image {image} is not present locally and could not be pulled; build it first"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_keeps_the_last_lines_without_syslog_noise() {
        let mut text = String::from("failed to connect to syslog: Initialization\n");
        for i in 1..=12 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str("Error: it broke\nfailed to connect to syslog: Initialization\n\n");
        let cleaned = clean_stderr(&text);
        assert!(cleaned.starts_with("line 4\n"), "{cleaned}");
        assert!(cleaned.ends_with("line 12\nError: it broke"), "{cleaned}");
    }

    #[test]
    fn argv_is_quoted_only_where_needed() {
        let argv = ["podman", "run", "--env", "A=b c", "it's", ""].map(String::from);
        assert_eq!(display_argv(&argv), r"podman run --env 'A=b c' 'it'\''s' ''");
    }

    #[test]
    fn run_hints_name_the_fix() {
        let rlimit = "Error: runc create failed: error setting rlimit type 7: operation not permitted";
        assert!(run_hint(rlimit, "img", || None).unwrap().contains("XTASK_CONTAINER_RUN_ARGS"));
        let pull = "Trying to pull localhost/x:1...\nError: initializing source docker://localhost/x:1";
        assert_eq!(
            run_hint(pull, "localhost/x:1", || Some(false)).unwrap(),
            "image localhost/x:1 is not present locally and could not be pulled; build it first"
        );
        assert_eq!(run_hint(pull, "localhost/x:1", || Some(true)), None);
        assert_eq!(run_hint("Error: name already in use", "img", || Some(false)), None);
    }
}
