//! Tekton Pipelines, the pinned release (`manifests/tekton/release.yaml`): what the controller
//! under test creates PipelineRuns with. Only Kubernetes backends run it.

use crate::error::InfraError;
use crate::model::{Component, Ctx, Manifests, Workload};

/// The pinned Tekton Pipelines release.
pub struct Tekton;

impl Component for Tekton {
    fn name(&self) -> &'static str {
        "tekton"
    }

    fn about(&self) -> &'static str {
        "Tekton Pipelines, the pinned release, ready when its admission webhook answers"
    }

    fn needs(&self) -> &'static [&'static str] {
        &[]
    }

    fn workload(&self, _ctx: &Ctx<'_>) -> Result<Workload, InfraError> {
        Ok(Workload::Manifests(Manifests::Tekton))
    }
}
