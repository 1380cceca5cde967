//! The real DataStorage service's contract, its OpenAPI 3.0.3 document
//! (`fixtures/datastorage/data-storage-v1.yaml`), turned into JSON Schema validators.
//!
//! OpenAPI 3.0 schemas are almost JSON Schema; three things are translated so a JSON Schema
//! validator reads them as the contract means them:
//! - `nullable: true` becomes a type union with `null` (and `null` joins an `enum`);
//! - a `oneOf` with a `discriminator` and a `mapping` becomes "the property is one of the
//!   mapping's keys, and the object matches the schema its key maps to" (`if`/`then` per
//!   target), which is what the discriminator says; a plain `oneOf` would instead demand that
//!   exactly one of ~90 loosely constrained payload schemas matches;
//! - the numeric formats `int32`, `int64` and `float` become the `minimum`/`maximum` their types
//!   hold (JSON Schema knows no numeric formats and would accept 2^31 for an `int32`);
//! - `$ref: '#/components/schemas/X'` is kept, and resolves because every validator is built
//!   from a root document that embeds the translated `components`.
//!
//! Formats are checked (`date-time`, `uuid`, `date`), with one reading of the contract's own:
//! `format: uri` accepts an RFC 3986 URI *reference*, because the contract's example for
//! `RFC7807Problem.instance` is a path (`/api/v1/audit/notifications`) and the real service
//! sends the request's path there, as RFC 7807 allows; JSON Schema's `uri` means absolute only.
//!
//! The server validates requests with it; the tests validate every response they receive.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The spec, byte for byte as the fixture holds it.
pub const SPEC_YAML: &str = include_str!("../../../fixtures/datastorage/data-storage-v1.yaml");

/// Why the contract could not be read or compiled.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The YAML does not parse.
    #[error("the OpenAPI document does not parse: {0}")]
    Parse(String),
    /// Something the caller asked for is not in the document.
    #[error("the OpenAPI document has no {0}")]
    Missing(String),
    /// The translated schema is not a valid JSON Schema.
    #[error("schema {name} does not compile: {reason}")]
    Compile {
        /// Which schema.
        name: String,
        /// The validator's complaint.
        reason: String,
    },
}

/// A parsed OpenAPI document with its component schemas translated to JSON Schema.
pub struct Spec {
    document: Value,
    components: Value,
}

impl Spec {
    /// The fixture compiled into this crate.
    pub fn bundled() -> Result<Self, ContractError> {
        Self::parse(SPEC_YAML)
    }

    /// Parses an OpenAPI 3.0 document (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, ContractError> {
        let document: Value =
            serde_saphyr::from_str(text).map_err(|e| ContractError::Parse(e.to_string()))?;
        let schemas = document
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .ok_or_else(|| ContractError::Missing("components.schemas".into()))?;
        let translated: Map<String, Value> =
            schemas.iter().map(|(name, schema)| (name.clone(), to_json_schema(schema))).collect();
        Ok(Self { document, components: json!({"schemas": translated}) })
    }

    /// The document as parsed (untranslated).
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// A validator for one named component schema, e.g. `AuditEventRequest`.
    pub fn component(&self, name: &str) -> Result<jsonschema::Validator, ContractError> {
        if self.components.pointer(&format!("/schemas/{name}")).is_none() {
            return Err(ContractError::Missing(format!("components.schemas.{name}")));
        }
        self.validator(name, &json!({"$ref": format!("#/components/schemas/{name}")}))
    }

    /// A validator for any OpenAPI schema object of this document (inline or a `$ref`).
    pub fn validator(&self, name: &str, schema: &Value) -> Result<jsonschema::Validator, ContractError> {
        let mut root = match to_json_schema(schema) {
            Value::Object(m) => m,
            other => {
                return Err(ContractError::Compile {
                    name: name.into(),
                    reason: format!("not an object: {other}"),
                });
            }
        };
        root.insert("components".into(), self.components.clone());
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .with_format("uri", is_uri_reference)
            .build(&Value::Object(root))
            .map_err(|e| ContractError::Compile { name: name.into(), reason: e.to_string() })
    }

    /// Every operation of the document: method (upper case), path template and operationId.
    pub fn operations(&self) -> Vec<Operation> {
        const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];
        let Some(paths) = self.document.get("paths").and_then(Value::as_object) else { return Vec::new() };
        let mut out = Vec::new();
        for (path, item) in paths {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    let id = op.get("operationId").and_then(Value::as_str).unwrap_or("(no operationId)");
                    out.push(Operation {
                        method: method.to_ascii_uppercase(),
                        path: path.clone(),
                        operation_id: id.to_string(),
                    });
                }
            }
        }
        out
    }

    /// The schema of an operation's response (`status` or else `default`) and its media type.
    pub fn response(&self, path: &str, method: &str, status: u16) -> Result<(String, Value), ContractError> {
        let responses = self
            .document
            .get("paths")
            .and_then(|p| p.get(path))
            .and_then(|p| p.get(method))
            .and_then(|o| o.get("responses"))
            .ok_or_else(|| ContractError::Missing(format!("operation {method} {path}")))?;
        let response = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
            .ok_or_else(|| ContractError::Missing(format!("response {status} of {method} {path}")))?;
        let (media, body) =
            response.get("content").and_then(Value::as_object).and_then(|c| c.iter().next()).ok_or_else(
                || ContractError::Missing(format!("content of response {status} of {method} {path}")),
            )?;
        let schema = body.get("schema").cloned().ok_or_else(|| {
            ContractError::Missing(format!("schema of response {status} of {method} {path}"))
        })?;
        Ok((media.clone(), schema))
    }
}

/// One operation of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path template, e.g. `/api/v1/audit/legal-hold/{correlation_id}`.
    pub path: String,
    /// Its `operationId`.
    pub operation_id: String,
}

impl Operation {
    /// Whether a request path matches the template (a `{parameter}` matches one segment).
    pub fn matches(&self, path: &str) -> bool {
        let (mut want, mut got) = (self.path.split('/'), path.trim_end_matches('/').split('/'));
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some(w), Some(g)) if w == g || (w.starts_with('{') && w.ends_with('}') && !g.is_empty()) => {
                }
                _ => return false,
            }
        }
    }
}

/// Whether `text` is an RFC 3986 URI reference: only URI characters, `%` only before two hex digits.
pub fn is_uri_reference(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if !(i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit())
            {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

/// Translates one OpenAPI 3.0 schema object (and everything nested in it) to JSON Schema.
pub fn to_json_schema(schema: &Value) -> Value {
    let Value::Object(obj) = schema else { return schema.clone() };
    let mut out = Map::new();
    for (key, value) in obj {
        let translated = match key.as_str() {
            // Maps of schemas.
            "properties" | "patternProperties" => match value {
                Value::Object(props) => {
                    Value::Object(props.iter().map(|(k, v)| (k.clone(), to_json_schema(v))).collect())
                }
                other => other.clone(),
            },
            // Lists of schemas.
            "allOf" | "anyOf" | "oneOf" => match value {
                Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
                other => other.clone(),
            },
            // One schema (or, for additionalProperties, a boolean).
            "items" | "additionalProperties" | "not" => to_json_schema(value),
            // Annotations JSON Schema does not know; dropped so they cannot be mistaken for keywords.
            "nullable" | "discriminator" | "example" | "xml" | "externalDocs" | "deprecated" => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), translated);
    }
    if let Some(discriminated) = discriminator(obj) {
        out.remove("oneOf");
        out.remove("anyOf");
        for (k, v) in discriminated {
            out.insert(k, v);
        }
    }
    numeric_format_bounds(&mut out);
    if obj.get("nullable") == Some(&Value::Bool(true)) {
        return nullable(out);
    }
    Value::Object(out)
}

/// The range an OpenAPI numeric format stands for, as `minimum`/`maximum` (a bound the schema
/// already sets more tightly is kept).
fn numeric_format_bounds(schema: &mut Map<String, Value>) {
    let (low, high): (Value, Value) = match schema.get("format").and_then(Value::as_str) {
        Some("int32") => (json!(i32::MIN), json!(i32::MAX)),
        Some("int64") => (json!(i64::MIN), json!(i64::MAX)),
        Some("float") => (json!(-f64::from(f32::MAX)), json!(f64::from(f32::MAX))),
        _ => return,
    };
    let tighter = |existing: Option<&Value>, bound: &Value, keep: fn(f64, f64) -> bool| match (
        existing.and_then(Value::as_f64),
        bound.as_f64(),
    ) {
        (Some(e), Some(b)) => keep(e, b),
        _ => false,
    };
    if !tighter(schema.get("minimum"), &low, |e, b| e >= b) {
        schema.insert("minimum".into(), low);
    }
    if !tighter(schema.get("maximum"), &high, |e, b| e <= b) {
        schema.insert("maximum".into(), high);
    }
}

/// `{prop: one of the mapping's keys}` plus, per target schema, `if prop is one of its keys then
/// the target`: the discriminator's meaning. `None` without a discriminator mapping.
fn discriminator(obj: &Map<String, Value>) -> Option<Map<String, Value>> {
    let d = obj.get("discriminator")?;
    let property = d.get("propertyName")?.as_str()?;
    let mapping = d.get("mapping")?.as_object()?;
    let mut by_target: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, target) in mapping {
        by_target.entry(target.as_str()?).or_default().push(key);
    }
    let keys: Vec<&String> = mapping.keys().collect();
    let branches: Vec<Value> = by_target
        .into_iter()
        .map(|(target, keys)| {
            json!({
                "if": {"properties": {property: {"enum": keys}}, "required": [property]},
                "then": {"$ref": target},
            })
        })
        .collect();
    let mut out = Map::new();
    out.insert("type".into(), json!("object"));
    out.insert("required".into(), json!([property]));
    out.insert("properties".into(), json!({property: {"type": "string", "enum": keys}}));
    out.insert("allOf".into(), Value::Array(branches));
    Some(out)
}

fn nullable(mut schema: Map<String, Value>) -> Value {
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut)
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    match schema.get("type").cloned() {
        Some(Value::String(t)) => {
            schema.insert("type".into(), json!([t, "null"]));
            Value::Object(schema)
        }
        // No type of its own (a $ref, an allOf): null or whatever it says.
        _ => json!({"anyOf": [{"type": "null"}, Value::Object(schema)]}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Spec {
        Spec::parse(yaml).unwrap()
    }

    const DOC: &str = r#"
openapi: 3.0.3
components:
  schemas:
    Outer:
      type: object
      required: [kind, data]
      properties:
        kind: {type: string, maxLength: 5}
        count: {type: integer, format: int32, minimum: 0}
        note: {type: string, nullable: true}
        level: {type: string, enum: [low, high], nullable: true}
        parent: {type: string, format: uuid, nullable: true}
        data:
          oneOf:
            - $ref: '#/components/schemas/A'
            - $ref: '#/components/schemas/B'
          discriminator:
            propertyName: t
            mapping:
              a.one: '#/components/schemas/A'
              a.two: '#/components/schemas/A'
              b: '#/components/schemas/B'
    A:
      type: object
      required: [t, x]
      properties: {t: {type: string}, x: {type: integer}}
    B:
      type: object
      required: [t]
      properties: {t: {type: string}, y: {type: string}}
"#;

    #[test]
    fn nullable_fields_take_null_and_nothing_else_new() {
        let v = spec(DOC).component("Outer").unwrap();
        let ok = json!({"kind": "k", "data": {"t": "b"}, "note": null, "level": null, "parent": null});
        assert!(v.is_valid(&ok), "{:?}", v.iter_errors(&ok).map(|e| e.to_string()).collect::<Vec<_>>());
        assert!(!v.is_valid(&json!({"kind": "k", "data": {"t": "b"}, "level": "medium"})));
        assert!(!v.is_valid(&json!({"kind": "k", "data": {"t": "b"}, "parent": "not-a-uuid"})));
        assert!(!v.is_valid(&json!({"kind": "toolong", "data": {"t": "b"}})));
    }

    #[test]
    fn numeric_formats_are_ranges() {
        let v = spec(DOC).component("Outer").unwrap();
        let with = |count: Value| json!({"kind": "k", "data": {"t": "b"}, "count": count});
        assert!(v.is_valid(&with(json!(2_147_483_647))));
        assert!(!v.is_valid(&with(json!(2_147_483_648_i64))), "int32 holds no 2^31");
        assert!(!v.is_valid(&with(json!(-1))), "the schema's own tighter minimum stays");
    }

    #[test]
    fn the_discriminator_picks_the_schema_its_mapping_names() {
        let v = spec(DOC).component("Outer").unwrap();
        // B's rules alone would accept this; the key says A, and A needs x.
        assert!(!v.is_valid(&json!({"kind": "k", "data": {"t": "a.two"}})));
        assert!(v.is_valid(&json!({"kind": "k", "data": {"t": "a.one", "x": 1}})));
        assert!(!v.is_valid(&json!({"kind": "k", "data": {"t": "c"}})), "a key outside the mapping");
        assert!(!v.is_valid(&json!({"kind": "k", "data": {"x": 1}})), "no discriminator value");
    }

    #[test]
    fn uri_references_are_uris_here() {
        for ok in ["/api/v1/audit/events", "https://kubernaut.ai/problems/x", "urn:uuid:1", "a%20b", ""] {
            assert!(is_uri_reference(ok), "{ok}");
        }
        for bad in ["a b", "%zz", "%2", "ü", "a\u{0}"] {
            assert!(!is_uri_reference(bad), "{bad}");
        }
    }

    #[test]
    fn response_schemas_fall_back_to_default() {
        let s = Spec::bundled().unwrap();
        let (media, schema) = s.response("/api/v1/audit/events", "post", 201).unwrap();
        assert_eq!(
            (media.as_str(), &schema),
            ("application/json", &json!({"$ref": "#/components/schemas/AuditEventResponse"}))
        );
        let (media, _) = s.response("/api/v1/audit/events/batch", "post", 400).unwrap();
        assert_eq!(media, "application/problem+json");
        s.component("AuditEventRequest").unwrap();
    }
}
