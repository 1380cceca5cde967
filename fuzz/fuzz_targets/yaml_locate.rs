//! A field path (the input's first line) and YAML text (the rest) through
//! `diag::yaml::locate`: it never panics, and a position it finds lies inside the text.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/diag/tests/position/mod.rs"]
mod position;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let (path, text) = input.split_once('\n').unwrap_or((input, ""));
    if let Err(why) = position::check_locate(text, path) {
        panic!("{why}\n--- text ---\n{text}");
    }
});
