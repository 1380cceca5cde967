//! Whether a reported position lies inside the text it is about; shared by `locate_props.rs`
//! and the `yaml_locate` and `suite_parse` fuzz targets (`fuzz/` includes this file).

// Each includer uses part of it.
#![allow(dead_code)]

/// Checks that 1-based `at` (line, column) lies inside `text`: on one of its lines and at most
/// one column past that line's last character. Lines end where YAML says they do (`\r\n`,
/// `\r` or `\n`), and columns count characters, as the YAML parser counts them.
pub fn inside(text: &str, at: (usize, usize)) -> Result<(), String> {
    let (line, column) = at;
    let lines: Vec<&str> = text.split("\r\n").flat_map(|l| l.split(['\r', '\n'])).collect();
    let Some(content) = line.checked_sub(1).and_then(|i| lines.get(i)) else {
        return Err(format!("line {line} of a text with {} lines", lines.len()));
    };
    let width = content.chars().count();
    if column == 0 || column > width + 1 {
        return Err(format!("column {column} of line {line}, which has {width} characters: {content:?}"));
    }
    Ok(())
}

/// `diag::yaml::locate` never panics, and a position it finds lies inside the text.
pub fn check_locate(text: &str, path: &str) -> Result<(), String> {
    match diag::yaml::locate(text, path) {
        Some(at) => inside(text, at).map_err(|e| format!("locate({path:?}) = {at:?}: {e}")),
        None => Ok(()),
    }
}
