//! Multi-document YAML into Kubernetes objects, with errors that point at the document and line.

use std::path::Path;

use kube::core::DynamicObject;
use serde_json::Value;

use crate::Error;

/// One `---`-separated piece of the file and the 1-based line it starts at.
struct Chunk<'a> {
    text: &'a str,
    line: u64,
}

/// Parses every document of a multi-document manifest into objects, in file order.
///
/// Empty and comment-only documents are skipped. Documents are numbered from 1 as they appear
/// between `---` lines; a comment preamble before the first `---` is not a document.
/// `path` only names the file in errors.
pub fn parse_manifest(path: &Path, text: &str) -> Result<Vec<DynamicObject>, Error> {
    let mut objects = Vec::new();
    let chunks = split_documents(text);
    let preamble = chunks.first().is_some_and(|c| blank(c.text)) && chunks.len() > 1;
    for (i, chunk) in chunks.iter().enumerate().skip(usize::from(preamble)) {
        let document = i + 1 - usize::from(preamble);
        if blank(chunk.text) {
            continue;
        }
        let Some(value) = parse_chunk(path, document, chunk)? else { continue };
        let invalid = |reason: String| Error::NotAnObject {
            path: path.to_path_buf(),
            document,
            line: chunk.line,
            reason,
        };
        if !value.is_object() {
            return Err(invalid(format!("expected a mapping, found {}", json_type(&value))));
        }
        for (field, pointer) in
            [("apiVersion", "/apiVersion"), ("kind", "/kind"), ("metadata.name", "/metadata/name")]
        {
            if value.pointer(pointer).and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(invalid(format!("no `{field}` string")));
            }
        }
        let object: DynamicObject = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        objects.push(object);
    }
    Ok(objects)
}

/// Splits at document start markers (`---` at column 0), which YAML forbids inside any content,
/// so a split here never cuts a block scalar in two.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let (mut start, mut start_line, mut offset) = (0, 1, 0);
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker =
            bare.strip_prefix("---").is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
        if marker && offset > 0 {
            chunks.push(Chunk { text: &text[start..offset], line: start_line });
            (start, start_line) = (offset, n as u64 + 1);
        }
        offset += line.len();
    }
    chunks.push(Chunk { text: &text[start..], line: start_line });
    chunks
}

/// Whether a chunk holds nothing but blank lines, comments and a bare `---`.
fn blank(text: &str) -> bool {
    text.lines().map(str::trim).all(|l| l.is_empty() || l.starts_with('#') || l == "---")
}

/// Parses one chunk; `None` for a null document.
fn parse_chunk(path: &Path, document: usize, chunk: &Chunk<'_>) -> Result<Option<Value>, Error> {
    // Scalars resolve as kubectl's YAML 1.1 parser resolves them (`0644` is octal 420, `yes` is
    // true), since that is the parser upstream manifests are written and tested against.
    let options = serde_saphyr::options! { with_snippet: false, legacy_octal_numbers: true };
    let first = match serde_saphyr::from_str_with_options::<Option<Value>>(chunk.text, options.clone()) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    // Reparse behind blank lines so the parser's own message carries file line numbers, not
    // chunk ones; only a failing document pays for the copy.
    let padding = usize::try_from(chunk.line.saturating_sub(1)).unwrap_or(0);
    let padded = format!("{}{}", "\n".repeat(padding), chunk.text);
    let (error, shift) = match serde_saphyr::from_str_with_options::<Option<Value>>(&padded, options) {
        Err(e) => (e, 0),
        Ok(_) => (first, chunk.line.saturating_sub(1)),
    };
    let line = error.location().map_or(chunk.line, |l| l.line() + shift);
    Err(Error::Parse { path: path.to_path_buf(), document, line, message: error.to_string() })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}
