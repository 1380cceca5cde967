//! Arbitrary text as the suite file `fuzz.yaml`: loading it never panics, and an error's
//! position lies inside the text.

#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use infra::Registry;
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/diag/tests/position/mod.rs"]
mod position;

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::builtin);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = infra::suite::parse(text, Path::new("fuzz.yaml"), &REGISTRY)
        && let Some(at) = e.at
        && let Err(why) = position::inside(text, at)
    {
        panic!("error `{e}`: {why}\n--- text ---\n{text}");
    }
});
