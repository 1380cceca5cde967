//! Test environments as data. A [`Suite`] names components from the [`Registry`], each defined
//! once ([`model::Component`]); a [`Backend`](backend::Backend) (local processes, podman
//! containers) renders their workloads into actions, [`kubernetes`] into objects; a [`Plan`] is
//! the DAG of steps;
//! [`runner::run`] starts every step whose needs are ready, in parallel, and stops everything on
//! the first failure with a diagnosis; run state under `.xtask/runs/<id>/` lists the resources a
//! run created so another shell can see and tear them down. [`session`] holds the flows a front
//! end drives: up, e2e, restart, down.

pub mod backend;
pub mod background;
mod build;
pub mod cache;
pub mod components;
pub mod doctor;
pub mod error;
mod exec;
mod group;
mod images;
pub mod junit;
pub mod kubernetes;
pub mod model;
pub mod plan;
pub mod report;
pub mod run;
pub mod runner;
pub mod session;
pub mod state;
pub mod suite;
pub mod timings;

pub use components::Registry;
pub use error::InfraError;
pub use plan::Plan;
pub use runner::{Event, RunReport, StepFailure};
pub use state::{RunState, Runs, teardown};
pub use suite::Suite;
