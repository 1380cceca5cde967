//! A Plan: the DAG of steps that brings a suite's environment up, and what a run of it recorded
//! (start, end and duration per step, the critical path).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::suite::{Component, Suite};

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Its id, e.g. `postgres`.
    pub id: String,
    /// Steps that must be ready before it starts.
    pub needs: Vec<String>,
    /// What it does, for people.
    pub description: String,
}

/// The DAG of steps for a suite on a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The steps, each after the steps it needs.
    pub steps: Vec<Step>,
}

/// The id of the step that builds the DataStorage binary before it can start.
pub const BUILD_DATASTORAGE: &str = "build-datastorage";

impl Plan {
    /// The plan for the local backend: servers started at once, the DataStorage build alongside,
    /// migrations once PostgreSQL answers, DataStorage once everything it needs is ready.
    pub fn local(suite: &Suite) -> Plan {
        let mut steps = Vec::new();
        if suite.components.contains(&Component::DataStorage) {
            steps.push(Step {
                id: BUILD_DATASTORAGE.into(),
                needs: vec![],
                description: "cargo build -p datastorage-reference-server".into(),
            });
        }
        for c in &suite.components {
            let mut needs: Vec<String> = c.needs().iter().map(|n| n.name().to_string()).collect();
            let description = match c {
                Component::Postgres => {
                    "PostgreSQL on a free loopback port, the service's user and database".into()
                }
                Component::Redis => "Redis on a free loopback port with a per-run password".into(),
                Component::Migrations => "goose migrations applied as the service's user".into(),
                Component::DataStorage => {
                    needs.insert(0, BUILD_DATASTORAGE.into());
                    "DataStorage with rendered config and secrets, until /health says 200".into()
                }
            };
            steps.push(Step { id: c.name().into(), needs, description });
        }
        Plan { steps }
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The chain of steps whose durations add up to the longest wait through the DAG, and that sum.
    pub fn critical_path(&self, durations: &BTreeMap<String, u128>) -> (Vec<String>, u128) {
        let mut finish: BTreeMap<&str, (u128, Option<&str>)> = BTreeMap::new();
        for s in &self.steps {
            let own = durations.get(&s.id).copied().unwrap_or(0);
            let before = s
                .needs
                .iter()
                .filter_map(|n| finish.get(n.as_str()).map(|(t, _)| (*t, n.as_str())))
                .max_by_key(|(t, _)| *t);
            finish.insert(&s.id, (own + before.map_or(0, |b| b.0), before.map(|b| b.1)));
        }
        // Ties go to the step latest in plan order: the one that waited for the others.
        let Some((last, total)) =
            self.steps.iter().map(|s| (s.id.as_str(), finish[s.id.as_str()].0)).max_by_key(|(_, t)| *t)
        else {
            return (vec![], 0);
        };
        let mut path = vec![last.to_string()];
        let mut at = finish[last].1;
        while let Some(id) = at {
            path.push(id.to_string());
            at = finish[id].1;
        }
        path.reverse();
        (path, total)
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for s in &self.steps {
            let after = if s.needs.is_empty() {
                "at once".to_string()
            } else {
                format!("after {}", s.needs.join(", "))
            };
            writeln!(f, "  {:<18} {after}: {}", s.id, s.description)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let suite = crate::suite::parse(
            "name: s\ncomponents: [postgres, redis, migrations, datastorage]\nmigrations: all\ntest: {command: [true]}\n",
            std::path::Path::new("s.yaml"),
        )
        .unwrap();
        Plan::local(&suite)
    }

    #[test]
    fn local_plan_shape() {
        let p = plan();
        let order: Vec<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(order, ["build-datastorage", "postgres", "redis", "migrations", "datastorage"]);
        assert_eq!(
            p.step("datastorage").unwrap().needs,
            ["build-datastorage", "postgres", "redis", "migrations"]
        );
        assert_eq!(p.step("migrations").unwrap().needs, ["postgres"]);
    }

    #[test]
    fn critical_path_follows_the_longest_chain() {
        let d: BTreeMap<String, u128> = [
            ("build-datastorage", 900),
            ("postgres", 700),
            ("redis", 50),
            ("migrations", 300),
            ("datastorage", 200),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(
            plan().critical_path(&d),
            (vec!["postgres".into(), "migrations".into(), "datastorage".into()], 1200)
        );
        let mut slow_build = d.clone();
        slow_build.insert("build-datastorage".into(), 5000);
        assert_eq!(
            plan().critical_path(&slow_build),
            (vec!["build-datastorage".into(), "datastorage".into()], 5200)
        );
    }
}
