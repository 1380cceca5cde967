//! Where a field of a YAML document is: errors found after parsing (a value a schema refuses,
//! a name that is not known) name a field path like `components[1]` or `images.postgres`; this
//! finds its line and column, so they can be reported as precisely as the parser's own errors.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Line and column (1-based) of the field at `path` in `text`: a mapping key's position for
/// `a.b`, an element's for `a[2]`. The longest prefix of the path that exists is used, so a
/// missing key is reported where its parent is; `None` when nothing matches or the text is
/// not YAML.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let options = serde_saphyr::options! { with_snippet: false };
    let tree: Tree = serde_saphyr::from_str_with_options(text, options).ok()?;
    let mut node = &tree;
    let mut found = None;
    for segment in segments(path) {
        let next = match (node, segment) {
            (Tree::Map(entries), Segment::Key(k)) => {
                entries.iter().find(|e| e.key == k).map(|e| (e.at, &e.value))
            }
            (Tree::Seq(items), Segment::Index(i)) => items.get(i).map(|(at, t)| (*at, t)),
            _ => None,
        };
        let Some((at, child)) = next else { break };
        found = Some(at);
        node = child;
    }
    found
}

/// The field path (`test.command`, `steps[2].name`) of the last key or element that starts at
/// or before `at` in document order: for a type error the parser reports at a value, the
/// field that value belongs to. `None` when `text` is not YAML or nothing comes before `at`.
pub fn field_at(text: &str, at: At) -> Option<String> {
    fn walk(tree: &Tree, path: &str, at: At, best: &mut Option<(At, String)>) {
        let mut consider = |pos: At, path: String, child: &Tree| {
            if pos <= at {
                if best.as_ref().is_none_or(|(b, _)| pos >= *b) {
                    *best = Some((pos, path.clone()));
                }
                walk(child, &path, at, best);
            }
        };
        match tree {
            Tree::Map(entries) => {
                for e in entries {
                    let p = if path.is_empty() { e.key.clone() } else { format!("{path}.{}", e.key) };
                    consider(e.at, p, &e.value);
                }
            }
            Tree::Seq(items) => {
                for (i, (pos, child)) in items.iter().enumerate() {
                    consider(*pos, format!("{path}[{i}]"), child);
                }
            }
            Tree::Leaf => {}
        }
    }
    let tree = tree(text)?;
    let mut best = None;
    walk(&tree, "", at, &mut best);
    best.map(|(_, p)| p)
}

/// A parser's type error in words a suite author reads: `expected sequence start` is a list
/// that was not given as one.
pub fn plain_type_error(message: &str) -> String {
    match message {
        "expected sequence start" => "expected a list, e.g. `[a, b]`".into(),
        "expected mapping start" => "expected a map of `key: value`".into(),
        other => other.to_string(),
    }
}

/// A parser error (from text parsed with `with_snippet: false`) as its message and position:
/// the message without the ` at line L, column C` the parser appends, which the diagnostic's
/// location says instead.
pub fn split_error(e: &serde_saphyr::Error) -> (String, Option<(usize, usize)>) {
    let text = e.to_string();
    let Some(l) = e.location() else { return (text, None) };
    let at = (l.line() as usize, l.column() as usize);
    let suffix = format!(" at line {}, column {}", at.0, at.1);
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
    (message, Some(at))
}

#[derive(Debug, PartialEq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[2].c` as keys and indices; `[x]` that is not a number ends the path.
fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let Some((index, after)) = inner.split_once(']') else { return out };
            let Ok(i) = index.parse() else { return out };
            out.push(Segment::Index(i));
            rest = after;
        }
    }
    out
}

/// Line and column, 1-based.
pub type At = (usize, usize);

/// A YAML document's shape with the position of every key and sequence element; scalars are
/// leaves (their values do not matter to whoever asks where things are).
#[derive(Debug)]
pub enum Tree {
    /// A mapping's entries in document order.
    Map(Vec<Entry>),
    /// A sequence's elements with their positions.
    Seq(Vec<(At, Tree)>),
    /// A scalar.
    Leaf,
}

/// One key of a mapping.
#[derive(Debug)]
pub struct Entry {
    /// The key as text (`8080: x` has the key `8080`).
    pub key: String,
    /// Where the key is.
    pub at: At,
    /// Its value.
    pub value: Tree,
}

/// The shape of `text` with positions; `None` when it is not YAML (the typed parse that
/// follows names that error with its position). Duplicate keys are refused, as by the parser.
pub fn tree(text: &str) -> Option<Tree> {
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(text, options).ok()
}

fn position<T>(s: &Spanned<T>) -> At {
    (s.referenced.line() as usize, s.referenced.column() as usize)
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Tree>()?;
            entries.push(Entry { key: key.value.0.clone(), at: position(&key), value });
        }
        Ok(Tree::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Tree>>()? {
            let at = position(&item);
            items.push((at, item.value));
        }
        Ok(Tree::Seq(items))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_str<E>(self, _: &str) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Leaf)
    }
}

/// A mapping key of any scalar type, as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_names_the_field_its_value_belongs_to() {
        let text = "name: s\ncomponents: postgres\ntest: {command: true, timeout: 1m}\nimages: [x]\n";
        assert_eq!(field_at(text, (2, 13)).as_deref(), Some("components"));
        assert_eq!(field_at(text, (3, 17)).as_deref(), Some("test.command"));
        assert_eq!(field_at(text, (4, 9)).as_deref(), Some("images"));
        assert_eq!(field_at("a: [1, 2]\n", (1, 8)).as_deref(), Some("a[1]"));
        assert_eq!(field_at("a: 1\n", (0, 0)), None);
    }

    const SUITE: &str = "name: we\ncomponents:\n  - postgres\n  - redis\nimages:\n  postgres: pg:16\ntest:\n  command: [cargo, test]\n";

    #[test]
    fn keys_and_elements_are_found_where_they_are_written() {
        assert_eq!(locate(SUITE, "name"), Some((1, 1)));
        assert_eq!(locate(SUITE, "components"), Some((2, 1)));
        assert_eq!(locate(SUITE, "components[1]"), Some((4, 5)));
        assert_eq!(locate(SUITE, "images.postgres"), Some((6, 3)));
        assert_eq!(locate(SUITE, "test.command[1]"), Some((8, 20)));
    }

    #[test]
    fn a_missing_field_is_placed_at_its_nearest_parent() {
        assert_eq!(locate(SUITE, "test.timeout"), Some((7, 1)));
        assert_eq!(locate(SUITE, "components[9]"), Some((2, 1)));
        assert_eq!(locate(SUITE, "nothing"), None);
    }

    #[test]
    fn text_that_is_not_yaml_has_no_positions() {
        assert_eq!(locate("a: [", "a"), None);
    }

    #[test]
    fn parser_errors_split_into_message_and_position() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct R {
            n: Vec<u32>,
        }
        let options = serde_saphyr::options! { with_snippet: false };
        let e = serde_saphyr::from_str_with_options::<R>("n: [1, x]\n", options).unwrap_err();
        assert_eq!(split_error(&e), ("invalid u32".to_string(), Some((1, 8))));
    }

    #[test]
    fn paths_split_into_keys_and_indices() {
        assert_eq!(
            segments("a.b[2][0].c"),
            [Segment::Key("a"), Segment::Key("b"), Segment::Index(2), Segment::Index(0), Segment::Key("c")]
        );
        assert_eq!(segments("a[x].b"), [Segment::Key("a")]);
    }
}
