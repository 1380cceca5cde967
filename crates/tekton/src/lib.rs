//! A pinned Tekton Pipelines release: the verified manifest, its apply order, and readiness.
