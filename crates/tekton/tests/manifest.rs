//! Multi-document parsing: what is skipped, and where errors point.

use std::path::Path;

use tekton::{Error, parse_manifest};

fn parse(text: &str) -> Result<Vec<String>, Error> {
    let objects = parse_manifest(Path::new("m.yaml"), text)?;
    Ok(objects.iter().map(tekton::object_ref).collect())
}

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n";

#[test]
fn empty_and_comment_only_documents_are_skipped() {
    let text = format!(
        "# preamble\n---\n{NS}---\n---\n# only a comment\n\n---   \n{}\n---\n",
        NS.replace("a\n", "b")
    );
    assert_eq!(parse(&text).unwrap(), ["Namespace/a", "Namespace/b"]);
    assert_eq!(parse("").unwrap(), Vec::<String>::new());
    assert_eq!(parse("# nothing\n").unwrap(), Vec::<String>::new());
}

#[test]
fn windows_line_endings_and_inline_document_markers_parse() {
    let text = format!("{}---\r\n--- # c\r\n{}", NS.replace('\n', "\r\n"), NS.replace("a\n", "b\n"));
    assert_eq!(parse(&text).unwrap(), ["Namespace/a", "Namespace/b"]);
}

#[test]
fn a_block_scalar_holding_dashes_is_not_split() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: ns\ndata:\n  x: |\n    ---\n    y\n";
    let objects = parse_manifest(Path::new("m.yaml"), text).unwrap();
    assert_eq!(objects[0].data["data"]["x"], "---\ny\n");
}

#[test]
fn scalars_resolve_as_kubectl_resolves_them() {
    let text = "apiVersion: v1\nkind: X\nmetadata: {name: x}\nmode: 0644\nflag: yes\nquoted: 'yes'\n";
    let objects = parse_manifest(Path::new("m.yaml"), text).unwrap();
    assert_eq!(objects[0].data["mode"], 420);
    assert_eq!(objects[0].data["flag"], true);
    assert_eq!(objects[0].data["quoted"], "yes");
}

#[test]
fn an_unparsable_document_names_its_index_and_file_line() {
    // Document 1, an empty document 2, then document 3 breaks on its third line (file line 9).
    let text = format!("{NS}---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: [x\n");
    let error = parse(&text).unwrap_err();
    let message = error.to_string();
    let Error::Parse { path, document, line, .. } = error else { panic!("{message}") };
    assert_eq!((path.as_path(), document, line), (Path::new("m.yaml"), 3, 9), "{message}");
    assert!(message.starts_with("m.yaml: document 3 does not parse (line 9)"), "{message}");
    assert!(!message.contains("line 3,"), "the parser's message kept a document-relative line: {message}");
}

#[test]
fn documents_that_are_not_objects_are_errors_naming_the_document() {
    for (text, reason) in [
        ("- a\n- b\n", "expected a mapping, found a sequence"),
        ("kind: Namespace\nmetadata: {name: a}\n", "no `apiVersion` string"),
        ("apiVersion: v1\nmetadata: {name: a}\n", "no `kind` string"),
        ("apiVersion: v1\nkind: Namespace\nmetadata: {labels: {}}\n", "no `metadata.name` string"),
        ("apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: [x]}\n", "invalid type"),
    ] {
        let text = format!("{NS}---\n{text}");
        match parse(&text) {
            Err(Error::NotAnObject { document: 2, line: 5, reason: r, .. }) => {
                assert!(r.contains(reason), "{text}: {r}")
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}
