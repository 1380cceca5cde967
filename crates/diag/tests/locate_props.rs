//! `diag::yaml::locate` never panics and finds positions inside the text: over the
//! repository's YAML files and generated text (the `yaml_locate` fuzz target's property).

mod position;

use std::path::{Path, PathBuf};

use proptest::prelude::*;

/// Field paths that exist in the repository's suites and Kubernetes manifests, and some that do not.
const PATHS: [&str; 7] = [
    "name",
    "components[1]",
    "test.command[0]",
    "metadata.name",
    "spec.template.spec.containers[0].image",
    "status.conditions[1].type",
    "nothing[2].here",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn fields_of_the_repository_yaml_are_inside_their_files() {
    let mut found = 0;
    for dir in ["manifests/suites", "manifests/kind", "fixtures/k8s-status", "crates/wait/tests/fixtures"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let file = entry.unwrap().path();
            let text = std::fs::read_to_string(&file).unwrap();
            for path in PATHS {
                position::check_locate(&text, path).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                found += usize::from(diag::yaml::locate(&text, path).is_some());
            }
        }
    }
    assert!(found >= 20, "the paths name fields of these files: found {found}");
}

#[test]
fn a_position_past_the_text_is_refused() {
    assert!(position::inside("a: 1\nb: 2\n", (2, 1)).is_ok());
    assert!(position::inside("a: 1\nb: 2", (2, 5)).is_ok());
    assert!(position::inside("a: 1\nb: 2", (2, 6)).is_err());
    assert!(position::inside("a: 1\rb: 2", (3, 1)).is_err());
    assert!(position::inside("a: 1", (1, 0)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_yaml_positions_are_inside_the_text(
        lines in prop::collection::vec(prop_oneof![
            "[ ]{0,4}[a-z]{1,3}:[ ]?[a-z0-9]{0,3}",
            "[ ]{0,4}- [a-z0-9]{0,3}",
            "[ ]{0,4}[a-z]: \\[[a-z, ]{0,6}\\]",
            "(?s).{0,8}",
        ], 0..10),
        breaks in "(\n|\r\n|\r)",
        path in prop::sample::select(&["a", "a[0]", "a.b", "b[1].c", "c"][..]),
    ) {
        position::check_locate(&lines.join(&breaks), path).map_err(TestCaseError::fail)?;
    }
}
