//! The suite loader places its errors inside the text: over the repository's suites loaded as
//! `fuzz.yaml`, as the `suite_parse` fuzz target loads its input.

#[path = "../../diag/tests/position/mod.rs"]
mod position;

use std::path::{Path, PathBuf};

use infra::Registry;

fn inputs(dir: &str) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|f| (f.clone(), std::fs::read_to_string(&f).unwrap())).collect()
}

/// Loads `text` as the fuzz target does; the error, if any, as text.
fn load(text: &str) -> Result<(), String> {
    match infra::suite::parse(text, Path::new("fuzz.yaml"), &Registry::builtin()) {
        Ok(_) => Ok(()),
        Err(e) => match e.at {
            Some(at) => position::inside(text, at).map_err(|why| format!("error `{e}`: {why}")),
            None => Ok(()),
        },
    }
}

#[test]
fn the_repository_suites_load_under_another_name_with_positions_inside() {
    let suites = inputs("manifests/suites");
    assert!(suites.len() >= 2, "{suites:?}");
    for (file, text) in suites {
        // Under its own name a suite loads; under `fuzz.yaml` it fails on `name:`, at line 1.
        let e = infra::suite::parse(&text, Path::new("fuzz.yaml"), &Registry::builtin()).unwrap_err();
        assert!(e.at.is_some(), "{}: {e}", file.display());
        load(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let renamed: String = text
            .lines()
            .map(|l| if l.starts_with("name:") { "name: fuzz\n".to_string() } else { format!("{l}\n") })
            .collect();
        load(&renamed).unwrap_or_else(|e| panic!("{} as fuzz: {e}", file.display()));
    }
}
