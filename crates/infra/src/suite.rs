//! Suites as data: `manifests/suites/<name>.yaml` names the components a suite needs, the
//! migrations to apply, and the test command to run against the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datastorage::GoDuration;
use serde::Deserialize;

use crate::components::Registry;

/// Which migrations a suite applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationSelection {
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
    /// The components, by name, each after the components it needs.
    pub components: Vec<String>,
    /// The migrations to apply.
    pub migrations: MigrationSelection,
    /// Images chosen per component (default: each component's own).
    pub images: BTreeMap<String, String>,
    /// Programs the local backend runs instead of a component's own, relative to the workspace
    /// root (`binaries:`, then `--binary`), e.g. the monorepo's own DataStorage build.
    pub binaries: BTreeMap<String, PathBuf>,
    /// Images container backends build instead of a component's own (`builds:`), e.g. from
    /// `docker/data-storage.Dockerfile`.
    pub builds: BTreeMap<String, crate::model::Image>,
    /// The test command.
    pub test: TestCommand,
    /// How long each component may take to become ready.
    pub ready_timeout: Duration,
    /// The controller under test, for suites that list the `controller` component.
    pub controller: Option<ControllerSpec>,
    /// Whether DataStorage serves its API over TLS, with a CA generated per run and handed to
    /// clients (`DATASTORAGE_CA_FILE`, ConfigMap `inter-service-ca` on Kubernetes). `tls:` in
    /// the suite file; on by default, as in the monorepo's end-to-end runs.
    pub tls: bool,
}

/// The controller under test as the suite file names it: where its image and manifests come
/// from, so a monorepo points at its own Dockerfile and deployment files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerSpec {
    /// Its image: built from a Containerfile, a workspace binary, or a reference.
    pub image: crate::model::Image,
    /// Its manifest files (CRDs, RBAC, Deployment), relative to the workspace root, applied in order.
    pub manifests: Vec<PathBuf>,
    /// The Deployment that runs it (its readiness is the controller's).
    pub deployment: String,
    /// The container of that Deployment whose image is replaced by the built one.
    pub container: String,
}

/// A suite file that cannot be used; the message names the file, the field and where it is.
#[derive(Debug)]
pub struct SuiteError {
    /// The suite file.
    pub path: PathBuf,
    /// What is wrong, starting with the field.
    pub message: String,
    /// Line and column of the field (or of the parser's error), when known.
    pub at: Option<(usize, usize)>,
}

impl SuiteError {
    fn new(path: &Path, message: String) -> Self {
        Self { path: path.to_path_buf(), message, at: None }
    }

    /// The error as a diagnostic on the suite file, at the field's line and column.
    pub fn diagnostic(&self) -> diag::Diagnostic {
        diag::Diagnostic::error(&self.path, &self.message).at(self.at.map(|a| a.0), self.at.map(|a| a.1))
    }
}

/// `path:line:column: message`.
impl std::fmt::Display for SuiteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for SuiteError {}

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
    #[serde(default)]
    images: BTreeMap<String, String>,
    #[serde(default)]
    binaries: BTreeMap<String, PathBuf>,
    #[serde(default)]
    builds: BTreeMap<String, RawBuild>,
    #[serde(default)]
    controller: Option<RawController>,
    #[serde(default)]
    tls: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawController {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    build: Option<RawBuild>,
    manifests: Vec<PathBuf>,
    deployment: String,
    container: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    containerfile: PathBuf,
    #[serde(default)]
    context: Option<PathBuf>,
    #[serde(default)]
    cargo: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawMigrations {
    Word(String),
    Tables(Vec<String>),
    /// Anything else (a map such as `{tables: [...]}`): refused saying what to write instead,
    /// not with serde's "did not match any variant".
    Other(serde::de::IgnoredAny),
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

/// The names of the suites under the workspace root; none when it has no suites folder.
pub fn names(root: &Path) -> std::io::Result<Vec<String>> {
    let dir = root.join("manifests").join("suites");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(std::io::Error::new(e.kind(), format!("reading {}: {e}", dir.display()))),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".yaml")) {
            names.push(stem.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Reads and validates a suite file against the components of `registry`.
pub fn load(path: &Path, registry: &Registry) -> Result<Suite, SuiteError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| SuiteError::new(path, format!("cannot read: {e}")))?;
    parse(&text, path, registry)
}

/// Checks that every table of the suite's `migrations:` list is one the migrations in `dir`
/// touch, before anything starts: a misspelt table is the suite file's mistake, named with its
/// line and column.
pub fn check_tables(path: &Path, suite: &Suite, dir: &Path) -> Result<(), SuiteError> {
    let MigrationSelection::Tables(tables) = &suite.migrations else { return Ok(()) };
    if !suite.components.iter().any(|c| c == "migrations") {
        return Ok(());
    }
    let set = migrations::MigrationSet::load(dir)
        .map_err(|e| SuiteError::new(path, format!("migrations: cannot read {}: {e}", dir.display())))?;
    for (i, table) in tables.iter().enumerate() {
        let one = migrations::Selection::Tables(vec![table.clone()]);
        if let Err(migrations::Error::UnknownTable { known, .. }) = one.resolve(&set) {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let field = format!("migrations[{i}]");
            return Err(SuiteError {
                at: diag::yaml::locate(&text, &field),
                ..SuiteError::new(
                    path,
                    format!(
                        "{field}: no migration in {} touches table `{table}`; they know: {known}",
                        dir.display()
                    ),
                )
            });
        }
    }
    Ok(())
}

/// Parses and validates suite text; `path` names it in errors and must match `name`.
pub fn parse(text: &str, path: &Path, registry: &Registry) -> Result<Suite, SuiteError> {
    let options = serde_saphyr::options! { with_snippet: false };
    let raw: Raw = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let (message, at) = diag::yaml::split_error(&e);
        // A type error is reported at the value: name the field it belongs to.
        let field = at.and_then(|at| diag::yaml::field_at(text, at));
        let message = match field {
            Some(field) if !message.contains(&field) => {
                format!("{field}: {}", diag::yaml::plain_type_error(&message))
            }
            _ => message,
        };
        SuiteError { at, ..SuiteError::new(path, message) }
    })?;
    validate(raw, path, registry).map_err(|mut e| {
        // Every validation message starts with the field it is about (`images.postgres: ...`).
        let field = e.message.split_once(": ").map(|(f, _)| f).filter(|f| !f.contains(' '));
        e.at = field.and_then(|f| diag::yaml::locate(text, f));
        e
    })
}

fn validate(raw: Raw, path: &Path, registry: &Registry) -> Result<Suite, SuiteError> {
    let fail = |message: String| SuiteError::new(path, message);
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if raw.name != stem {
        return Err(fail(format!("name: `{}` does not match the file name `{stem}.yaml`", raw.name)));
    }
    let mut listed: Vec<&str> = Vec::new();
    for (i, name) in raw.components.iter().enumerate() {
        if registry.get(name).is_none() {
            return Err(fail(format!(
                "components[{i}]: unknown component `{name}` (known: {})",
                registry.names()
            )));
        }
        if listed.contains(&name.as_str()) {
            return Err(fail(format!("components[{i}]: `{name}` is listed twice")));
        }
        listed.push(name);
    }
    if listed.is_empty() {
        return Err(fail("components: the list is empty".into()));
    }
    for c in &listed {
        for need in registry.get(c).expect("checked above").needs() {
            if !listed.contains(need) {
                return Err(fail(format!("components: `{c}` needs `{need}`; add it to the list")));
            }
        }
    }
    for name in raw.images.keys() {
        if !listed.contains(&name.as_str()) {
            return Err(fail(format!(
                "images.{name}: the suite has no component `{name}` (it has: {})",
                listed.join(", ")
            )));
        }
    }
    let replaceable: Vec<&str> =
        listed.iter().copied().filter(|c| registry.get(c).is_some_and(|c| c.replaceable())).collect();
    let keys = raw.binaries.keys().map(|k| ("binaries", k)).chain(raw.builds.keys().map(|k| ("builds", k)));
    for (field, name) in keys {
        if !replaceable.contains(&name.as_str()) {
            return Err(fail(format!(
                "{field}.{name}: {}; only {} can run a program of your choosing",
                if listed.contains(&name.as_str()) {
                    format!("`{name}` runs its own program")
                } else {
                    format!("the suite has no component `{name}`")
                },
                if replaceable.is_empty() {
                    "no component of this suite".to_string()
                } else {
                    replaceable.join(", ")
                }
            )));
        }
        if field == "builds" && raw.images.contains_key(name) {
            return Err(fail(format!(
                "builds.{name}: images.{name} names its image already; give one of them"
            )));
        }
    }
    for (name, path) in &raw.binaries {
        if path.as_os_str().is_empty() {
            return Err(fail(format!("binaries.{name}: empty; give the program's path")));
        }
    }
    let mut builds = BTreeMap::new();
    for (name, build) in raw.builds {
        let image = build_image(build, format!("localhost/xtask/{name}"))
            .map_err(|e| fail(format!("builds.{name}: {e}")))?;
        builds.insert(name, image);
    }
    let components = dependency_order(&listed, registry);
    let has_migrations = listed.contains(&"migrations");
    let migrations = match raw.migrations {
        None | Some(RawMigrations::Word(_)) if !has_migrations => MigrationSelection::All,
        Some(RawMigrations::Word(w)) if w == "all" => MigrationSelection::All,
        Some(RawMigrations::Word(w)) => {
            return Err(fail(format!("migrations: `{w}` is neither `all` nor a list of tables")));
        }
        Some(RawMigrations::Tables(t)) if t.is_empty() => {
            return Err(fail(
                "migrations: an empty table list applies nothing; write `all` or name tables".into(),
            ));
        }
        Some(RawMigrations::Tables(t)) => MigrationSelection::Tables(t),
        Some(RawMigrations::Other(_)) => {
            return Err(fail(
                "migrations: write `all` or a list of tables, e.g. `migrations: [audit_events]`".into(),
            ));
        }
        None => return Err(fail("migrations: missing (write `all` or a list of tables)".into())),
    };
    let controller = match (raw.controller, listed.contains(&"controller")) {
        (None, true) => {
            return Err(fail(
                "controller: missing; the `controller` component needs its image (`build` or `image`), `manifests`, `deployment` and `container`".into(),
            ));
        }
        (Some(_), false) => {
            return Err(fail("controller: the suite does not list the `controller` component".into()));
        }
        (None, false) => None,
        (Some(c), true) => Some(controller(c).map_err(fail)?),
    };
    if raw.test.command.is_empty() {
        return Err(fail("test.command: empty; give the program and its arguments as a list".into()));
    }
    Ok(Suite {
        name: raw.name,
        description: raw.description,
        components,
        migrations,
        images: raw.images,
        binaries: raw.binaries,
        builds,
        test: TestCommand {
            argv: raw.test.command,
            timeout: raw.test.timeout.map_or(Duration::from_secs(15 * 60), |d| d.get()),
        },
        ready_timeout: raw.ready_timeout.map_or(Duration::from_secs(120), |d| d.get()),
        controller,
        tls: raw.tls.unwrap_or(true),
    })
}

fn controller(raw: RawController) -> Result<ControllerSpec, String> {
    use crate::model::Image;
    let image = match (raw.image, raw.build) {
        (Some(_), Some(_)) => return Err("controller: give `image` or `build`, not both".into()),
        (None, None) => {
            return Err("controller: missing `image` (a reference) or `build` (how to build it)".into());
        }
        (Some(reference), None) => Image::Pull(reference),
        (None, Some(build)) => build_image(build, format!("localhost/xtask/{}", raw.deployment))
            .map_err(|e| format!("controller.build: {e}"))?,
    };
    if raw.manifests.is_empty() {
        return Err("controller.manifests: empty; list the files with its CRDs, RBAC and Deployment".into());
    }
    for (field, value) in [("deployment", &raw.deployment), ("container", &raw.container)] {
        if value.is_empty() {
            return Err(format!("controller.{field}: empty"));
        }
    }
    Ok(ControllerSpec {
        image,
        manifests: raw.manifests,
        deployment: raw.deployment,
        container: raw.container,
    })
}

/// The image a `build:` block describes, tagged under `repository`.
fn build_image(build: RawBuild, repository: String) -> Result<crate::model::Image, String> {
    use crate::model::Image;
    match build {
        RawBuild { containerfile, context: None, cargo: Some(package) } => {
            Ok(Image::Cargo { package, containerfile })
        }
        RawBuild { containerfile, context: Some(context), cargo: None } => {
            Ok(Image::Build { context, containerfile, repository })
        }
        _ => Err(
            "give `context` (a Containerfile's build context) or `cargo` (a workspace binary), exactly one"
                .into(),
        ),
    }
}

/// `listed` ordered so that every component comes after the ones it needs (registry order
/// breaks ties, so the order is stable); needs were checked to be listed.
fn dependency_order(listed: &[&str], registry: &Registry) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest: Vec<&str> = registry.all().map(|c| c.name()).filter(|n| listed.contains(n)).collect();
    while !rest.is_empty() {
        let before = rest.len();
        rest.retain(|name| {
            let c = registry.get(name).expect("listed");
            let ready = c
                .needs()
                .iter()
                .chain(c.uses().iter().filter(|u| listed.contains(*u)))
                .all(|n| out.iter().any(|o| o == n));
            if ready {
                out.push(name.to_string());
            }
            !ready
        });
        if rest.len() == before {
            // A cycle among needs: keep the remaining ones in registry order rather than loop.
            out.extend(rest.drain(..).map(str::to_string));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: demo\ncomponents: [datastorage, postgres, redis, migrations]\nmigrations: [audit_events]\n\
                        test:\n  command: [cargo, test]\n  timeout: 5m\nready_timeout: 30s\n";

    fn err(text: &str) -> String {
        parse(text, Path::new("suites/demo.yaml"), &Registry::builtin()).unwrap_err().to_string()
    }

    #[test]
    fn tls_is_on_unless_the_suite_turns_it_off() {
        let load = |text: &str| parse(text, Path::new("suites/demo.yaml"), &Registry::builtin()).unwrap();
        assert!(load(GOOD).tls, "on by default, as in the monorepo's end-to-end runs");
        assert!(!load(&format!("{GOOD}tls: false\n")).tls);
        let e = err(&format!("{GOOD}tls: sometimes\n"));
        assert!(e.contains("suites/demo.yaml") && e.contains("tls"), "{e}");
    }

    #[test]
    fn a_suite_names_its_own_datastorage_binary_and_build() {
        let text = format!(
            "{GOOD}binaries: {{datastorage: bin/data-storage}}\n\
             builds: {{datastorage: {{context: ., containerfile: docker/data-storage.Dockerfile}}}}\n"
        );
        let s = parse(&text, Path::new("suites/demo.yaml"), &Registry::builtin()).unwrap();
        assert_eq!(s.binaries["datastorage"], PathBuf::from("bin/data-storage"));
        assert_eq!(
            s.builds["datastorage"],
            crate::model::Image::Build {
                context: ".".into(),
                containerfile: "docker/data-storage.Dockerfile".into(),
                repository: "localhost/xtask/datastorage".into(),
            }
        );
    }

    #[test]
    fn only_a_replaceable_component_takes_another_program_and_one_image_source_at_a_time() {
        assert_eq!(
            err(&format!("{GOOD}binaries: {{postgres: /usr/bin/postgres}}\n")),
            "suites/demo.yaml:8:12: binaries.postgres: `postgres` runs its own program; only datastorage can run a program of your choosing"
        );
        assert_eq!(
            err(&format!("{GOOD}builds: {{gateway: {{context: ., containerfile: x}}}}\n")),
            "suites/demo.yaml:8:10: builds.gateway: the suite has no component `gateway`; only datastorage can run a program of your choosing"
        );
        assert_eq!(
            err(&format!(
                "{GOOD}images: {{datastorage: ds:1}}\nbuilds: {{datastorage: {{context: ., containerfile: x}}}}\n"
            )),
            "suites/demo.yaml:9:10: builds.datastorage: images.datastorage names its image already; give one of them"
        );
        assert_eq!(
            err(&format!("{GOOD}builds: {{datastorage: {{containerfile: x}}}}\n")),
            "suites/demo.yaml:8:10: builds.datastorage: give `context` (a Containerfile's build context) or `cargo` (a workspace binary), exactly one"
        );
    }

    #[test]
    fn a_good_suite() {
        let s = parse(GOOD, Path::new("suites/demo.yaml"), &Registry::builtin()).unwrap();
        assert_eq!(s.components, ["postgres", "redis", "migrations", "datastorage"], "dependency order");
        assert_eq!(s.migrations, MigrationSelection::Tables(vec!["audit_events".into()]));
        assert_eq!(s.test.timeout, Duration::from_secs(300));
        assert_eq!(s.ready_timeout, Duration::from_secs(30));
    }

    #[test]
    fn bad_suites_name_file_and_field() {
        assert_eq!(
            err(&GOOD.replace("redis, migrations]", "redis, migrations, mysql]")),
            "suites/demo.yaml:2:56: components[4]: unknown component `mysql` (known: postgres, redis, migrations, kube-api, datastorage, tekton, controller)"
        );
        assert_eq!(
            err(&GOOD.replace("postgres, redis, ", "")),
            "suites/demo.yaml:2:1: components: `datastorage` needs `postgres`; add it to the list"
        );
        assert_eq!(
            err(&GOOD.replace("name: demo", "name: other")),
            "suites/demo.yaml:1:1: name: `other` does not match the file name `demo.yaml`"
        );
        assert_eq!(
            err(&GOOD.replace("[audit_events]", "some")),
            "suites/demo.yaml:3:1: migrations: `some` is neither `all` nor a list of tables"
        );
        assert_eq!(
            err(&GOOD.replace("[audit_events]", "{tables: [audit_events]}")),
            "suites/demo.yaml:3:1: migrations: write `all` or a list of tables, e.g. `migrations: [audit_events]`"
        );
        assert!(
            err(&GOOD.replace("[cargo, test]", "[]"))
                .starts_with("suites/demo.yaml:5:3: test.command: empty")
        );
        let typo = err(&GOOD.replace("ready_timeout", "ready_timout"));
        assert!(typo.starts_with("suites/demo.yaml:7:1: ") && typo.contains("ready_timout"), "{typo}");
        assert_eq!(
            err(&format!("{GOOD}images: {{mysql: x}}\n")),
            "suites/demo.yaml:8:10: images.mysql: the suite has no component `mysql` (it has: datastorage, postgres, redis, migrations)"
        );
        let bad_duration = err(&GOOD.replace("30s", "thirty"));
        assert!(bad_duration.contains("thirty"), "{bad_duration}");
    }

    const CONTROLLER: &str = "controller:\n  build: {cargo: standin, containerfile: c.Containerfile}\n  \
                              manifests: [m.yaml]\n  deployment: ctl\n  container: manager\n";

    fn with_controller(controller: &str) -> String {
        format!("{}{controller}", GOOD.replace("migrations]", "migrations, tekton, controller]"))
    }

    #[test]
    fn a_controller_section_names_image_manifests_deployment_and_container() {
        let s =
            parse(&with_controller(CONTROLLER), Path::new("suites/demo.yaml"), &Registry::builtin()).unwrap();
        let c = s.controller.unwrap();
        assert_eq!(
            c.image,
            crate::model::Image::Cargo { package: "standin".into(), containerfile: "c.Containerfile".into() }
        );
        assert_eq!((c.deployment.as_str(), c.container.as_str()), ("ctl", "manager"));
        assert_eq!(s.components.last().map(String::as_str), Some("controller"), "after what it needs");
        let built = with_controller(&CONTROLLER.replace("cargo: standin", "context: ."));
        let c =
            parse(&built, Path::new("suites/demo.yaml"), &Registry::builtin()).unwrap().controller.unwrap();
        assert_eq!(
            c.image,
            crate::model::Image::Build {
                context: ".".into(),
                containerfile: "c.Containerfile".into(),
                repository: "localhost/xtask/ctl".into()
            }
        );
    }

    #[test]
    fn bad_controller_sections_name_the_field() {
        let e = |text: String| {
            parse(&text, Path::new("suites/demo.yaml"), &Registry::builtin()).unwrap_err().to_string()
        };
        assert!(e(with_controller("")).starts_with("suites/demo.yaml: controller: missing;"));
        assert_eq!(
            e(format!("{GOOD}{CONTROLLER}")),
            "suites/demo.yaml:8:1: controller: the suite does not list the `controller` component"
        );
        assert!(
            e(with_controller(&CONTROLLER.replace("cargo: standin", "cargo: standin, context: .")))
                .starts_with("suites/demo.yaml:9:3: controller.build: give `context`")
        );
        assert!(
            e(with_controller(&CONTROLLER.replace("[m.yaml]", "[]")))
                .starts_with("suites/demo.yaml:10:3: controller.manifests: empty")
        );
        assert_eq!(
            e(with_controller(&CONTROLLER.replace("container: manager", "container: \"\""))),
            "suites/demo.yaml:12:3: controller.container: empty"
        );
        let typo = e(with_controller(&CONTROLLER.replace("deployment:", "deploymnt:")));
        assert!(typo.contains("deploymnt"), "{typo}");
    }
}
