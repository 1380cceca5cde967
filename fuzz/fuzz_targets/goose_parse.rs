//! Arbitrary text through the goose parser: it never panics, an error names a line of the file,
//! and a parse loses no byte of the file that is not a separator or an annotation.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/migrations/tests/preservation/mod.rs"]
mod preservation;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(why) = preservation::check(text) {
        panic!("{why}\n--- input ---\n{text}");
    }
});
