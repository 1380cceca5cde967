//! The controller under test: image and manifests from the suite file's `controller:` section,
//! so the monorepo points at its own Dockerfile and deployment files. Only Kubernetes backends
//! run it; it starts once DataStorage is ready and Tekton's API (its CRDs) is served.

use crate::error::InfraError;
use crate::model::{Component, Ctx, Image, Manifests, Workload};

/// The controller the suite tests.
pub struct Controller;

impl Component for Controller {
    fn name(&self) -> &'static str {
        "controller"
    }

    fn about(&self) -> &'static str {
        "the controller under test, from the suite file's image and manifests"
    }

    fn needs(&self) -> &'static [&'static str] {
        &["datastorage", "tekton"]
    }

    fn workload(&self, ctx: &Ctx<'_>) -> Result<Workload, InfraError> {
        let mut spec = ctx.suite.controller.clone().ok_or_else(|| {
            InfraError::Model(format!("controller: suite {} has no `controller:` section", ctx.suite.name))
        })?;
        if let Some(reference) = ctx.images.get(self.name()) {
            spec.image = Image::Pull(reference.clone());
        }
        Ok(Workload::Manifests(Manifests::Controller(spec)))
    }
}
