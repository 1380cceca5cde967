//! Deciding what to run: which migrations a selection needs, which of those are pending, and
//! what a rollback undoes. Pure functions of the files and the recorded state, so `--dry-run`
//! prints exactly what a real run would do.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::Error;
use crate::analyze::{self, Object};
use crate::source::MigrationSet;
use crate::store::AppliedVersion;

/// Which migrations a run wants applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every migration.
    All,
    /// Every migration touching these tables, plus every earlier one creating what those need.
    Tables(Vec<String>),
}

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Applying.
    Up,
    /// Rolling back.
    Down,
}

impl Direction {
    /// `"up"` or `"down"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// The migrations a run will carry out, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Up or down.
    pub direction: Direction,
    /// The steps, in execution order.
    pub steps: Vec<Step>,
    /// How many selected migrations were already applied (up) and are skipped.
    pub already_applied: usize,
}

/// One migration to run.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Its version.
    pub version: i64,
    /// Its file name.
    pub name: String,
    /// Statements it will send.
    pub statements: usize,
    /// Whether it runs outside a transaction.
    pub no_transaction: bool,
    /// Whether the file has no goose annotations and runs whole as its Up section.
    pub unannotated: bool,
    /// Why a `--tables` run includes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The versions a selection needs, each with the reason it is needed.
pub type Wanted = BTreeMap<i64, Option<String>>;

impl Selection {
    /// Resolves the selection against the files.
    pub fn resolve(&self, set: &MigrationSet) -> Result<Wanted, Error> {
        match self {
            Selection::All => Ok(set.migrations.iter().map(|m| (m.version, None)).collect()),
            Selection::Tables(tables) => tables_closure(set, tables),
        }
    }
}

impl Plan {
    /// The pending migrations among `wanted`, in version order.
    pub fn up(set: &MigrationSet, applied: &BTreeMap<i64, AppliedVersion>, wanted: &Wanted) -> Plan {
        let mut steps = Vec::new();
        let mut already_applied = 0;
        for m in &set.migrations {
            let Some(reason) = wanted.get(&m.version) else { continue };
            if applied.contains_key(&m.version) {
                already_applied += 1;
                continue;
            }
            steps.push(Step {
                version: m.version,
                name: m.name.clone(),
                statements: m.parsed.up.statements.len(),
                no_transaction: m.parsed.no_transaction,
                unannotated: !m.parsed.annotated,
                reason: reason.clone(),
            });
        }
        Plan { direction: Direction::Up, steps, already_applied }
    }

    /// The applied migrations to roll back, newest first: the newest one, or all above `to`.
    pub fn down(
        set: &MigrationSet,
        applied: &BTreeMap<i64, AppliedVersion>,
        to: Option<i64>,
    ) -> Result<Plan, Error> {
        let versions: Vec<i64> = match to {
            None => applied.keys().next_back().copied().into_iter().collect(),
            Some(to) => applied.keys().rev().copied().filter(|v| *v > to).collect(),
        };
        let mut steps = Vec::new();
        for v in versions {
            // A version applied elsewhere whose file is gone cannot be undone from here.
            let m = set.get(v).ok_or(Error::UnknownVersion { version: v })?;
            let down =
                m.parsed.down.as_ref().ok_or_else(|| Error::NoDown { file: m.path.clone(), version: v })?;
            steps.push(Step {
                version: v,
                name: m.name.clone(),
                statements: down.statements.len(),
                no_transaction: m.parsed.no_transaction,
                unannotated: !m.parsed.annotated,
                reason: None,
            });
        }
        Ok(Plan { direction: Direction::Down, steps, already_applied: 0 })
    }
}

/// Every migration touching `tables`, then, transitively, every earlier migration that defines
/// something those use (a referenced table, a called function, a column type), plus earlier
/// migrations that set up extensions or schemas.
fn tables_closure(set: &MigrationSet, tables: &[String]) -> Result<Wanted, Error> {
    let fps = analyze::footprints(set);
    let mentions: BTreeMap<&str, &BTreeSet<String>> =
        fps.values().flat_map(|fp| fp.function_mentions.iter().map(|(f, m)| (f.as_str(), m))).collect();
    // A migration calling a function also touches what that function's body names.
    let touches = |v: i64| -> BTreeSet<Object> {
        let fp = &fps[&v];
        let mut all = fp.targets.clone();
        for o in &fp.uses {
            if let Object::Function(f) = o
                && let Some(m) = mentions.get(f.as_str())
            {
                all.extend(m.iter().cloned().map(Object::Relation));
            }
        }
        all
    };
    let known: BTreeSet<String> = fps
        .keys()
        .flat_map(|v| touches(*v))
        .filter_map(|o| match o {
            Object::Relation(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut wanted = Wanted::new();
    for table in tables {
        let name = table.trim().to_lowercase();
        let name = name.strip_prefix("public.").unwrap_or(&name).to_string();
        if !known.contains(&name) {
            return Err(Error::UnknownTable {
                table: table.clone(),
                known: known.iter().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        for m in &set.migrations {
            if touches(m.version).contains(&Object::Relation(name.clone())) {
                wanted.entry(m.version).or_insert_with(|| Some(format!("touches {name}")));
            }
        }
    }
    let mut queue: Vec<i64> = wanted.keys().copied().collect();
    while let Some(v) = queue.pop() {
        let needer = set.get(v).map(|m| m.name.clone()).unwrap_or_default();
        // Changing a table (ALTER, INDEX, INSERT) needs it as much as reading it does.
        let mut needs: BTreeSet<Object> = fps[&v].uses.union(&fps[&v].targets).cloned().collect();
        for o in &fps[&v].uses {
            if let Object::Function(f) = o
                && let Some(m) = mentions.get(f.as_str())
            {
                needs.extend(m.iter().cloned().map(Object::Relation));
            }
        }
        for m in set.migrations.iter().take_while(|m| m.version < v) {
            if wanted.contains_key(&m.version) {
                continue;
            }
            let provides = touches(m.version);
            let reason = if let Some(o) = needs.iter().find(|o| provides.contains(o)) {
                format!("defines {o}, needed by {needer}")
            } else if fps[&m.version].global {
                format!("sets up an extension or schema before {needer}")
            } else {
                continue;
            };
            wanted.insert(m.version, Some(reason));
            queue.push(m.version);
        }
    }
    Ok(wanted)
}
