//! A pinned Tekton Pipelines release: the verified manifest, its apply order, and readiness.
//!
//! The flow is: [`Release::load`] reads the pinned `release.yaml` from a [`Source`], refuses it
//! unless its SHA-256 matches [`Pin`], and parses every document before anything is applied;
//! [`Release::plan`] orders the objects ([`apply_order`], pure data); [`Installer`] applies the
//! plan with server-side apply, waits for the CRDs to be `Established`, then for Tekton to be
//! ready, which includes its admission webhook answering a dry-run create of [`probe_task`].
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), tekton::Error> {
//! let release = tekton::Release::load(&tekton::Source::Cache("/var/cache/xtask".into()))?;
//! tekton::Installer::new(client).on_event(|e| eprintln!("{e}")).install(&release).await?;
//! # Ok(()) }
//! ```

mod error;
mod install;
mod manifest;
mod pin;
mod plan;
mod readiness;
mod release;

pub use error::Error;
pub use install::{Event, Installer, Timing, with_protocols};
pub use manifest::parse_manifest;
pub use pin::Pin;
pub use plan::{NEEDS_PODS, Plan, Step, apply_order, object_ref, refused_empty_default};
pub use readiness::{
    CONTROLLER, NAMESPACE, PROBE_TASK, WEBHOOK, WEBHOOK_CONFIGURATIONS, admission_status, crd_established,
    deployment_available, probe_task, release_in_place, tekton_status, webhook_configured,
};
pub use release::{Release, Source};
/// Readiness as the `wait` crate states it: ready, not yet (with why), or failed for good.
pub use wait::Status;

/// The field manager of every server-side apply, so a re-run owns the same fields.
pub const FIELD_MANAGER: &str = "xtask";
