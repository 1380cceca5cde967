//! Suites as data: `manifests/suites/<name>.yaml` names the components a suite needs, the
//! migrations to apply, and the test command to run against the environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use datastorage::GoDuration;
use serde::Deserialize;

/// A part of an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    /// A PostgreSQL server with the service's user and database.
    Postgres,
    /// A Redis server.
    Redis,
    /// The goose migrations applied to the database.
    Migrations,
    /// The DataStorage service, healthy.
    DataStorage,
}

impl Component {
    /// Every component, in a stable order.
    pub const ALL: [Component; 4] =
        [Component::Postgres, Component::Redis, Component::Migrations, Component::DataStorage];

    /// The name used in suite files.
    pub fn name(self) -> &'static str {
        match self {
            Component::Postgres => "postgres",
            Component::Redis => "redis",
            Component::Migrations => "migrations",
            Component::DataStorage => "datastorage",
        }
    }

    /// The components this one cannot work without.
    pub fn needs(self) -> &'static [Component] {
        match self {
            Component::Postgres | Component::Redis => &[],
            Component::Migrations => &[Component::Postgres],
            Component::DataStorage => &[Component::Postgres, Component::Redis, Component::Migrations],
        }
    }

    fn parse(name: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Which migrations a suite applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migrations {
    /// Every migration.
    All,
    /// What these tables need.
    Tables(Vec<String>),
}

/// The command a suite runs against its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCommand {
    /// Program and arguments, run from the workspace root.
    pub argv: Vec<String>,
    /// How long it may run.
    pub timeout: Duration,
}

/// A validated suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// The suite's name (its file name without `.yaml`).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The components, in dependency order.
    pub components: Vec<Component>,
    /// The migrations to apply.
    pub migrations: Migrations,
    /// The test command.
    pub test: TestCommand,
    /// How long each component may take to become ready.
    pub ready_timeout: Duration,
}

/// A suite file that cannot be used; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", .path.display())]
pub struct SuiteError {
    /// The suite file.
    pub path: PathBuf,
    /// What is wrong, starting with the field.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    #[serde(default)]
    description: String,
    components: Vec<String>,
    #[serde(default)]
    migrations: Option<RawMigrations>,
    test: RawTest,
    #[serde(default)]
    ready_timeout: Option<GoDuration>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawMigrations {
    Word(String),
    Tables(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    command: Vec<String>,
    #[serde(default)]
    timeout: Option<GoDuration>,
}

/// The file of suite `name` under the workspace root.
pub fn path(root: &Path, name: &str) -> PathBuf {
    root.join("manifests").join("suites").join(format!("{name}.yaml"))
}

/// The names of the suites under the workspace root.
pub fn names(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("manifests").join("suites"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".yaml").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads and validates a suite file.
pub fn load(path: &Path) -> Result<Suite, SuiteError> {
    let fail = |message: String| SuiteError { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    parse(&text, path)
}

/// Parses and validates suite text; `path` names it in errors and must match `name`.
pub fn parse(text: &str, path: &Path) -> Result<Suite, SuiteError> {
    let fail = |message: String| SuiteError { path: path.to_path_buf(), message };
    let raw: Raw = serde_saphyr::from_str(text).map_err(|e| fail(e.to_string()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if raw.name != stem {
        return Err(fail(format!("name: `{}` does not match the file name `{stem}.yaml`", raw.name)));
    }
    let mut components = Vec::new();
    for (i, name) in raw.components.iter().enumerate() {
        let c = Component::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Component::ALL.iter().map(|c| c.name()).collect();
            fail(format!("components[{i}]: unknown component `{name}` (known: {})", known.join(", ")))
        })?;
        if components.contains(&c) {
            return Err(fail(format!("components[{i}]: `{name}` is listed twice")));
        }
        components.push(c);
    }
    if components.is_empty() {
        return Err(fail("components: the list is empty".into()));
    }
    for c in &components {
        for need in c.needs() {
            if !components.contains(need) {
                return Err(fail(format!(
                    "components: `{}` needs `{}`; add it to the list",
                    c.name(),
                    need.name()
                )));
            }
        }
    }
    components.sort();
    let migrations = match raw.migrations {
        None | Some(RawMigrations::Word(_)) if !components.contains(&Component::Migrations) => {
            Migrations::All
        }
        Some(RawMigrations::Word(w)) if w == "all" => Migrations::All,
        Some(RawMigrations::Word(w)) => {
            return Err(fail(format!("migrations: `{w}` is neither `all` nor a list of tables")));
        }
        Some(RawMigrations::Tables(t)) if t.is_empty() => {
            return Err(fail(
                "migrations: an empty table list applies nothing; write `all` or name tables".into(),
            ));
        }
        Some(RawMigrations::Tables(t)) => Migrations::Tables(t),
        None => return Err(fail("migrations: missing (write `all` or a list of tables)".into())),
    };
    if raw.test.command.is_empty() {
        return Err(fail("test.command: empty; give the program and its arguments as a list".into()));
    }
    Ok(Suite {
        name: raw.name,
        description: raw.description,
        components,
        migrations,
        test: TestCommand {
            argv: raw.test.command,
            timeout: raw.test.timeout.map_or(Duration::from_secs(15 * 60), |d| d.get()),
        },
        ready_timeout: raw.ready_timeout.map_or(Duration::from_secs(120), |d| d.get()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: demo\ncomponents: [datastorage, postgres, redis, migrations]\nmigrations: [audit_events]\n\
                        test:\n  command: [cargo, test]\n  timeout: 5m\nready_timeout: 30s\n";

    fn err(text: &str) -> String {
        parse(text, Path::new("suites/demo.yaml")).unwrap_err().to_string()
    }

    #[test]
    fn a_good_suite() {
        let s = parse(GOOD, Path::new("suites/demo.yaml")).unwrap();
        assert_eq!(s.components, Component::ALL.to_vec(), "sorted into dependency order");
        assert_eq!(s.migrations, Migrations::Tables(vec!["audit_events".into()]));
        assert_eq!(s.test.timeout, Duration::from_secs(300));
        assert_eq!(s.ready_timeout, Duration::from_secs(30));
    }

    #[test]
    fn bad_suites_name_file_and_field() {
        assert_eq!(
            err(&GOOD.replace("redis, migrations]", "redis, migrations, mysql]")),
            "suites/demo.yaml: components[4]: unknown component `mysql` (known: postgres, redis, migrations, datastorage)"
        );
        assert_eq!(
            err(&GOOD.replace("postgres, redis, ", "")),
            "suites/demo.yaml: components: `datastorage` needs `postgres`; add it to the list"
        );
        assert_eq!(
            err(&GOOD.replace("name: demo", "name: other")),
            "suites/demo.yaml: name: `other` does not match the file name `demo.yaml`"
        );
        assert_eq!(
            err(&GOOD.replace("[audit_events]", "some")),
            "suites/demo.yaml: migrations: `some` is neither `all` nor a list of tables"
        );
        assert!(
            err(&GOOD.replace("[cargo, test]", "[]")).starts_with("suites/demo.yaml: test.command: empty")
        );
        let typo = err(&GOOD.replace("ready_timeout", "ready_timout"));
        assert!(typo.starts_with("suites/demo.yaml: ") && typo.contains("ready_timout"), "{typo}");
        let bad_duration = err(&GOOD.replace("30s", "thirty"));
        assert!(bad_duration.contains("thirty"), "{bad_duration}");
    }
}
