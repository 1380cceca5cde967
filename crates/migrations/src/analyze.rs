//! What each migration creates, changes and depends on, read from PostgreSQL's own grammar
//! (pg_query), so `--tables` subsets are derived from the SQL rather than a hand-kept list.

use std::collections::{BTreeMap, BTreeSet};

use pg_query::NodeEnum;
use pg_query::protobuf::RangeVar;

use crate::envsubst;
use crate::source::{Migration, MigrationSet};

/// A database object a statement can define or use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    /// A table, view, sequence or other relation.
    Relation(String),
    /// A function or procedure.
    Function(String),
    /// A type (enum, composite, domain).
    Type(String),
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Relation(n) => write!(f, "table {n}"),
            Object::Function(n) => write!(f, "function {n}"),
            Object::Type(n) => write!(f, "type {n}"),
        }
    }
}

/// The objects one migration's Up section defines or changes, and the ones it uses.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    /// Objects created, altered, dropped, indexed or written to.
    pub targets: BTreeSet<Object>,
    /// Objects referenced but not changed (foreign-key targets, called functions, column types...).
    pub uses: BTreeSet<Object>,
    /// Whether it sets up something global (an extension or schema) that anything may rely on.
    pub global: bool,
    /// Relations mentioned inside function bodies it creates, per function.
    pub function_mentions: BTreeMap<String, BTreeSet<String>>,
}

/// Footprints of every migration in a set, by version.
pub fn footprints(set: &MigrationSet) -> BTreeMap<i64, Footprint> {
    let mut raw: Vec<(i64, Footprint, Vec<String>)> = Vec::new();
    for m in &set.migrations {
        let (fp, opaque) = footprint(m);
        raw.push((m.version, fp, opaque));
    }
    // Bodies of DO blocks and functions are opaque to the SQL grammar; any known table named in
    // them counts, so a table changed only inside a DO block is never missed.
    let known: BTreeSet<String> = raw
        .iter()
        .flat_map(|(_, fp, _)| fp.targets.iter())
        .filter_map(|o| match o {
            Object::Relation(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    raw.into_iter()
        .map(|(v, mut fp, opaque)| {
            for body in opaque {
                let (kind, text) = body.split_once('\0').unwrap_or(("do", &body));
                let mentioned: BTreeSet<String> = words(text).filter(|w| known.contains(w)).collect();
                if let Some(func) = kind.strip_prefix("fn:") {
                    fp.function_mentions.entry(func.to_string()).or_default().extend(mentioned);
                } else {
                    fp.targets.extend(mentioned.into_iter().map(Object::Relation));
                }
            }
            (v, fp)
        })
        .collect()
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| !w.is_empty())
        .map(|w| normalise(&w.to_lowercase()))
}

/// Strips the default `public.` schema so `public.t` and `t` are the same object.
fn normalise(name: &str) -> String {
    name.strip_prefix("public.").unwrap_or(name).to_string()
}

fn rel(v: &RangeVar) -> Object {
    let name =
        if v.schemaname.is_empty() { v.relname.clone() } else { format!("{}.{}", v.schemaname, v.relname) };
    Object::Relation(normalise(&name))
}

fn qualified(names: &[pg_query::protobuf::Node]) -> String {
    let parts: Vec<&str> = names
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    normalise(&parts.join("."))
}

/// Footprint of one migration's Up section, plus the opaque bodies to scan once all tables are known.
fn footprint(m: &Migration) -> (Footprint, Vec<String>) {
    let mut fp = Footprint::default();
    let mut opaque = Vec::new();
    for stmt in &m.parsed.up.statements {
        let sql = if stmt.envsubst {
            envsubst::substitute(&stmt.sql, |k| std::env::var(k).ok()).unwrap_or_else(|_| stmt.sql.clone())
        } else {
            stmt.sql.clone()
        };
        let Ok(parsed) = pg_query::parse(&sql, 0) else {
            // Unparseable SQL is reported by lint; here its words still count, conservatively.
            opaque.push(format!("do\0{sql}"));
            continue;
        };
        for raw in &parsed.protobuf.stmts {
            let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else { continue };
            statement_footprint(node, &sql, &mut fp, &mut opaque);
        }
        // pg_query's own helpers skip column types and foreign keys inside ALTER TABLE; walking the
        // whole tree finds every relation, type and function the statement names.
        if let Ok(tree) = serde_json::to_value(&parsed.protobuf) {
            collect_refs(&tree, &mut fp.uses);
        }
    }
    let targets = fp.targets.clone();
    fp.uses.retain(|o| !targets.contains(o));
    (fp, opaque)
}

/// Every relation, type and function named anywhere in a serialised parse tree, recognised by
/// the fields of PostgreSQL's `RangeVar`, `TypeName` and `FuncCall` nodes.
fn collect_refs(v: &serde_json::Value, out: &mut BTreeSet<Object>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            if let (Some(Value::String(rel)), true) = (map.get("relname"), map.contains_key("relpersistence"))
            {
                let schema = map.get("schemaname").and_then(Value::as_str).unwrap_or("");
                let name = if schema.is_empty() { rel.clone() } else { format!("{schema}.{rel}") };
                out.insert(Object::Relation(normalise(&name)));
            }
            if let (Some(names), true) = (map.get("names"), map.contains_key("typemod")) {
                let name = svals(names).join(".");
                if !name.is_empty() && !name.starts_with("pg_catalog.") {
                    out.insert(Object::Type(normalise(&name)));
                }
            }
            if let (Some(names), true) = (map.get("funcname"), map.contains_key("agg_order")) {
                out.insert(Object::Function(normalise(&svals(names).join("."))));
            }
            map.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The `sval` strings of a list of `String` nodes, in order.
fn svals(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.pointer("/node/String/sval").and_then(|s| s.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn statement_footprint(node: &NodeEnum, sql: &str, fp: &mut Footprint, opaque: &mut Vec<String>) {
    let t = &mut fp.targets;
    match node {
        NodeEnum::CreateStmt(s) => {
            t.extend(s.relation.as_ref().map(rel));
            if s.partbound.is_some() {
                // A partition is part of its parent's schema.
                for parent in &s.inh_relations {
                    if let Some(NodeEnum::RangeVar(v)) = &parent.node {
                        t.insert(rel(v));
                    }
                }
            }
        }
        NodeEnum::AlterTableStmt(s) => t.extend(s.relation.as_ref().map(rel)),
        NodeEnum::IndexStmt(s) => t.extend(s.relation.as_ref().map(rel)),
        NodeEnum::CreateTrigStmt(s) => {
            t.extend(s.relation.as_ref().map(rel));
            fp.uses.insert(Object::Function(qualified(&s.funcname)));
        }
        NodeEnum::RuleStmt(s) => t.extend(s.relation.as_ref().map(rel)),
        NodeEnum::InsertStmt(s) => t.extend(s.relation.as_ref().map(rel)),
        NodeEnum::UpdateStmt(s) => t.extend(s.relation.as_ref().map(rel)),
        NodeEnum::DeleteStmt(s) => t.extend(s.relation.as_ref().map(rel)),
        NodeEnum::MergeStmt(s) => t.extend(s.relation.as_ref().map(rel)),
        NodeEnum::ViewStmt(s) => t.extend(s.view.as_ref().map(rel)),
        NodeEnum::CreateTableAsStmt(s) => t.extend(s.into.as_ref().and_then(|i| i.rel.as_ref()).map(rel)),
        NodeEnum::CreateSeqStmt(s) => t.extend(s.sequence.as_ref().map(rel)),
        NodeEnum::AlterSeqStmt(s) => t.extend(s.sequence.as_ref().map(rel)),
        NodeEnum::RenameStmt(s) => {
            t.extend(s.relation.as_ref().map(rel));
            if s.relation.is_some() && !s.newname.is_empty() && s.subname.is_empty() {
                t.insert(Object::Relation(normalise(&s.newname)));
            }
        }
        NodeEnum::TruncateStmt(s) => {
            for r in &s.relations {
                if let Some(NodeEnum::RangeVar(v)) = &r.node {
                    t.insert(rel(v));
                }
            }
        }
        NodeEnum::CommentStmt(_) | NodeEnum::GrantStmt(_) | NodeEnum::DropStmt(_) => {
            if let Ok(p) = pg_query::parse(sql, 0) {
                t.extend(p.ddl_tables().into_iter().map(|n| Object::Relation(normalise(&n))));
                t.extend(p.ddl_functions().into_iter().map(|n| Object::Function(normalise(&n))));
            }
        }
        NodeEnum::CreateFunctionStmt(s) => {
            let name = qualified(&s.funcname);
            t.insert(Object::Function(name.clone()));
            opaque.push(format!("fn:{name}\0{sql}"));
        }
        NodeEnum::CreateEnumStmt(s) => {
            t.insert(Object::Type(qualified(&s.type_name)));
        }
        NodeEnum::AlterEnumStmt(s) => {
            t.insert(Object::Type(qualified(&s.type_name)));
        }
        NodeEnum::CompositeTypeStmt(s) => {
            if let Some(v) = &s.typevar {
                t.insert(Object::Type(normalise(&v.relname)));
            }
        }
        NodeEnum::CreateDomainStmt(s) => {
            t.insert(Object::Type(qualified(&s.domainname)));
        }
        NodeEnum::DoStmt(_) => opaque.push(format!("do\0{sql}")),
        NodeEnum::CreateExtensionStmt(_) | NodeEnum::CreateSchemaStmt(_) => fp.global = true,
        _ => {}
    }
}
