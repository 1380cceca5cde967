//! The registry: every component a suite can name, each defined once in its own file.
//!
//! Adding a component is one new file here plus one line in [`Registry::builtin`].

mod controller;
mod datastorage;
mod kube_api;
mod migrations;
mod postgres;
mod redis;
mod tekton;

use std::sync::Arc;

use crate::model::Component;

pub use controller::Controller;
pub use datastorage::{DataStorage, runnable};
pub use kube_api::{
    CONTAINER_PORT as KUBE_API_PORT, ETCD_IMAGE_KEY, KubeApi, NAMESPACE as KUBE_API_NAMESPACE, etcd_image,
    tests_account,
};
pub use migrations::Migrations;
pub use postgres::Postgres;
pub use redis::Redis;
pub use tekton::Tekton;

/// The components a suite may name.
#[derive(Clone)]
pub struct Registry {
    components: Vec<Arc<dyn Component>>,
}

impl Registry {
    /// This workspace's components.
    pub fn builtin() -> Self {
        Self {
            components: vec![
                Arc::new(Postgres),
                Arc::new(Redis),
                Arc::new(Migrations),
                Arc::new(KubeApi),
                Arc::new(DataStorage),
                Arc::new(Tekton),
                Arc::new(Controller),
            ],
        }
    }

    /// The registry plus `component` (a test, another front end, a team's own component).
    pub fn with(mut self, component: impl Component) -> Self {
        self.components.push(Arc::new(component));
        self
    }

    /// The component named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Component>> {
        self.components.iter().find(|c| c.name() == name)
    }

    /// Every component, in registration order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Component>> {
        self.components.iter()
    }

    /// Every name, comma-separated, for error messages and help.
    pub fn names(&self) -> String {
        self.components.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.components.iter().map(|c| c.name())).finish()
    }
}
