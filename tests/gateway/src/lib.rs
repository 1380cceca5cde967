//! The Gateway end-to-end suite (seed 004): Gateway writes audit events through DataStorage and
//! needs nothing else of its schema. The tests live in `tests/` and run under
//! `cargo xtask e2e gateway`; the environment helpers are the WorkflowExecution suite's.

pub use workflowexecution_suite::{DataStorage, correlation_id, endpoint, event};
