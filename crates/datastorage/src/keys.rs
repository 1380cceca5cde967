//! Which keys of a config file DataStorage reads. The service parses with yaml.v3, which ignores
//! keys it does not know: a snake_case `read_timeout` or a key of an older release is dropped
//! silently and the default used (seed 004's "never ready" DataStorage). Reading a file here
//! names every such key with its line instead: a misspelling of a key the service reads is an
//! error; a key the service reads but this model does not, or one an older release read, is a
//! warning saying what happens to it.

use diag::yaml::{Entry, Tree};

use crate::Problem;

/// The keys of each section this model reads, which are the ones the current service reads.
const MODELLED: [(&str, &[&str]); 6] = [
    ("", &["environment", "server", "logging", "database", "redis"]),
    (
        "server",
        &[
            "port",
            "host",
            "metricsPort",
            "healthPort",
            "maxBatchSize",
            "readTimeout",
            "writeTimeout",
            "shutdownTimeout",
            "signerCertDir",
            "tls",
        ],
    ),
    ("server.tls", &["certDir"]),
    ("logging", &["level"]),
    (
        "database",
        &[
            "host",
            "port",
            "name",
            "user",
            "sslMode",
            "maxOpenConns",
            "maxIdleConns",
            "connMaxLifetime",
            "connMaxIdleTime",
            "statementTimeout",
            "lockTimeout",
            "secretsFile",
            "usernameKey",
            "passwordKey",
        ],
    ),
    ("redis", &["addr", "dlqMaxLen", "secretsFile", "passwordKey"]),
];

/// Keys the current service reads that this model leaves alone (TLS, CORS, retention, ...).
const SERVICE_ONLY: [&str; 11] = [
    "retention",
    "audit",
    "tlsProfile",
    "debug",
    "telemetry",
    "server.disableProfiling",
    "server.maxBodySize",
    "server.corsAllowedOrigins",
    "server.endpointPropagationDelay",
    "server.rateLimit",
    "redis.tls",
];

/// Keys older releases read and the current one ignores, with what to do instead.
const RETIRED: [(&str, &str); 6] = [
    ("shutdownTimeout", "moved to server.shutdownTimeout; at the top level it is ignored and 60s used"),
    ("service", "no longer read; the service's port and level are server.port and logging.level"),
    ("redis.db", "no longer read; DataStorage uses Redis database 0"),
    ("redis.dlqStreamName", "no longer read; the dead-letter stream's name is fixed by the service"),
    ("redis.dlqConsumerGroup", "no longer read; the consumer group's name is fixed by the service"),
    ("logging.format", "no longer read; DataStorage always logs JSON"),
];

/// What the key check found: errors (the file would not do what it says) and warnings.
#[derive(Debug, Default)]
pub(crate) struct KeyReport {
    pub(crate) errors: Vec<Problem>,
    pub(crate) warnings: Vec<Problem>,
}

/// Checks the keys of a config file's text. Text that is not YAML yields an empty report: the
/// typed parse that follows names that error with its position.
pub(crate) fn check(text: &str) -> KeyReport {
    let mut report = KeyReport::default();
    if let Some(Tree::Map(top)) = diag::yaml::tree(text) {
        walk("", &top, &mut report);
    }
    report.errors.sort_by_key(|p| p.at);
    report.warnings.sort_by_key(|p| p.at);
    report
}

fn walk(section: &str, entries: &[Entry], report: &mut KeyReport) {
    let Some((_, known)) = MODELLED.iter().find(|(s, _)| *s == section) else { return };
    for Entry { key, at, value } in entries {
        let name = key.as_str();
        let path = if section.is_empty() { name.to_string() } else { format!("{section}.{name}") };
        let at = Some((at.0 as u64, at.1 as u64));
        let problem = |reason: String| Problem { field: path.clone(), at, reason };
        if known.contains(&name) {
            if let Tree::Map(inner) = value {
                walk(&path, inner, report);
            }
        } else if let Some(meant) = known.iter().find(|k| normalized(k) == normalized(name)) {
            report.errors.push(problem(format!(
                "DataStorage reads `{meant}`; `{name}` would be ignored and the default used"
            )));
        } else if SERVICE_ONLY.contains(&path.as_str()) {
            report
                .warnings
                .push(problem("read by DataStorage but not by this model; left as written".into()));
        } else if let Some((_, hint)) = RETIRED.iter().find(|(k, _)| *k == path) {
            report.warnings.push(problem((*hint).to_string()));
        } else {
            let expected = known.join(", ");
            report.errors.push(problem(format!(
                "not a key DataStorage reads (it would be ignored silently); {} keys are: {expected}",
                if section.is_empty() { "top-level" } else { section }
            )));
        }
    }
}

/// A key with case and separators folded, so `read_timeout` and `ReadTimeout` meet `readTimeout`.
fn normalized(key: &str) -> String {
    key.chars().filter(|c| !matches!(c, '_' | '-')).map(|c| c.to_ascii_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(problems: &[Problem]) -> Vec<(String, u64)> {
        problems.iter().map(|p| (p.field.clone(), p.at.expect("a position").0)).collect()
    }

    #[test]
    fn snake_case_keys_are_errors_at_their_line() {
        let r = check("server:\n  port: 8080\n  read_timeout: 30s\ndatabase:\n  ssl_mode: disable\n");
        assert_eq!(fields(&r.errors), [("server.read_timeout".into(), 3), ("database.ssl_mode".into(), 5)]);
        assert!(r.errors[0].reason.contains("DataStorage reads `readTimeout`"), "{:?}", r.errors);
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn retired_and_service_only_keys_are_warnings() {
        let text =
            "shutdownTimeout: 30s\nserver:\n  rateLimit: {}\nredis:\n  db: 0\nlogging:\n  format: json\n";
        let r = check(text);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(
            fields(&r.warnings),
            [
                ("shutdownTimeout".into(), 1),
                ("server.rateLimit".into(), 3),
                ("redis.db".into(), 5),
                ("logging.format".into(), 7)
            ]
        );
        assert!(r.warnings[0].reason.contains("server.shutdownTimeout"));
    }

    #[test]
    fn the_signing_and_tls_directories_are_read_and_checked() {
        let r = check("server:\n  signerCertDir: /etc/signing-certs\n  tls:\n    certDir: /etc/tls\n");
        assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");
        let r = check("server:\n  tls:\n    cert_dir: /etc/tls\n");
        assert_eq!(fields(&r.errors), [("server.tls.cert_dir".into(), 3)]);
    }

    #[test]
    fn unknown_keys_name_the_section_keys() {
        let r = check("server:\n  helthPort: 8081\n");
        assert_eq!(fields(&r.errors), [("server.helthPort".into(), 2)]);
        assert!(r.errors[0].reason.contains("healthPort"), "{:?}", r.errors);
    }

    #[test]
    fn text_that_is_not_yaml_is_left_to_the_typed_parse() {
        let r = check("server: [unclosed\n");
        assert!(r.errors.is_empty() && r.warnings.is_empty());
    }
}
