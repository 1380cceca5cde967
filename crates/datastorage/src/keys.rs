//! Which keys of a config file DataStorage reads. The service parses with yaml.v3, which ignores
//! keys it does not know: a snake_case `read_timeout` or a key of an older release is dropped
//! silently and the default used (seed 004's "never ready" DataStorage). Reading a file here
//! names every such key with its line instead: a misspelling of a key the service reads is an
//! error; a key the service reads but this model does not, or one an older release read, is a
//! warning saying what happens to it.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::Spanned;

use crate::Problem;

/// The keys of each section this model reads, which are the ones the current service reads.
const MODELLED: [(&str, &[&str]); 5] = [
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
        ],
    ),
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
const SERVICE_ONLY: [&str; 13] = [
    "retention",
    "audit",
    "tlsProfile",
    "debug",
    "telemetry",
    "server.disableProfiling",
    "server.tls",
    "server.maxBodySize",
    "server.corsAllowedOrigins",
    "server.signerCertDir",
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
    let options = serde_saphyr::options! { with_snippet: false };
    if let Ok(Tree::Map(top)) = serde_saphyr::from_str_with_options::<Tree>(text, options) {
        walk("", &top, &mut report);
    }
    report.errors.sort_by_key(|p| p.at);
    report.warnings.sort_by_key(|p| p.at);
    report
}

fn walk(section: &str, entries: &[(Spanned<String>, Tree)], report: &mut KeyReport) {
    let Some((_, known)) = MODELLED.iter().find(|(s, _)| *s == section) else { return };
    for (key, value) in entries {
        let name = key.value.as_str();
        let path = if section.is_empty() { name.to_string() } else { format!("{section}.{name}") };
        let at = Some((key.referenced.line(), key.referenced.column()));
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

/// A YAML document reduced to its mappings' keys, each with its position.
enum Tree {
    Map(Vec<(Spanned<String>, Tree)>),
    Leaf,
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        // A duplicate key never gets here: the parser's default policy refuses it.
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Tree>()?;
            entries.push((Spanned::new(key.value.0, key.referenced, key.defined), value));
        }
        Ok(Tree::Map(entries))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Tree::Leaf)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_str<E>(self, _: &str) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
}

/// A mapping key of any scalar type, as text (`8080: x` has the key `8080`).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
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
        let text = "shutdownTimeout: 30s\nserver:\n  signerCertDir: /etc/c\nredis:\n  db: 0\nlogging:\n  format: json\n";
        let r = check(text);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(
            fields(&r.warnings),
            [
                ("shutdownTimeout".into(), 1),
                ("server.signerCertDir".into(), 3),
                ("redis.db".into(), 5),
                ("logging.format".into(), 7)
            ]
        );
        assert!(r.warnings[0].reason.contains("server.shutdownTimeout"));
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
