//! Test environments as data: a [`Suite`] names components; a [`Plan`] is the DAG of steps that
//! brings them up; [`runner::run`] starts every step whose needs are ready, in parallel, and stops
//! everything on the first failure with a diagnosis; a backend ([`Local`]) carries out the steps;
//! run state under `.xtask/runs/<id>/` lets another shell see and tear down what a run started.

mod build;
mod group;
mod local;
pub mod plan;
pub mod report;
pub mod runner;
pub mod session;
pub mod state;
pub mod suite;

pub use local::Local;
pub use plan::Plan;
pub use runner::{Event, RunReport, StepFailure};
pub use state::{RunState, Runs, teardown};
pub use suite::{Component, Suite};
