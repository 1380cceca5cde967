//! Readiness that means ready: probes, a wait loop that fails fast and says why, and a diagnosis.
//!
//! A [`Probe`] answers one question, "is this dependency usable yet?", with a [`Status`]:
//! [`Status::Ready`], [`Status::NotYet`] with the reason it is still missing, or
//! [`Status::Failed`] when it will never recover (wrong password, process exited, image missing).
//! [`Waiter`] drives several probes at once under a deadline, reports progress every few seconds,
//! returns as soon as one probe fails, and on failure or timeout hands back a [`Diagnosis`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), wait::WaitError> {
//! use std::time::Duration;
//! let mut pg = wait::PostgresProbe::from_url("postgres://svc:pw@127.0.0.1:5432/app").unwrap();
//! let mut redis = wait::RedisProbe::from_url("redis://:pw@127.0.0.1:6379").unwrap();
//! wait::Waiter::new(Duration::from_secs(60))
//!     .on_progress(|p| eprintln!("{p}"))
//!     .wait_all(&mut [&mut pg, &mut redis])
//!     .await?;
//! # Ok(()) }
//! ```

mod diagnosis;
mod http;
pub mod kube;
mod postgres;
mod process;
mod redis;
mod tcp;
mod waiter;

use std::future::Future;
use std::pin::Pin;

pub use diagnosis::{Detail, Diagnosis, ProbeDiagnosis, ProcessReport};
pub use http::HttpProbe;
pub use postgres::PostgresProbe;
pub use process::{ChildNotReady, ChildProcess, ProcessProbe, Spawn};
pub use redis::RedisProbe;
pub use tcp::TcpProbe;
pub use waiter::{Progress, WaitError, WaitReport, Waiter, wait_for};

/// A boxed future that can move between threads, the return type of [`Probe`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The answer of one probe check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Status {
    /// The dependency is usable.
    Ready,
    /// Not usable yet but may still become so; the reason says what is missing.
    NotYet(String),
    /// Will not become usable without someone changing something; the reason says why.
    Failed(String),
}

impl Status {
    /// Whether the status is [`Status::Ready`].
    pub fn is_ready(&self) -> bool {
        matches!(self, Status::Ready)
    }

    /// The reason of a [`Status::NotYet`] or [`Status::Failed`].
    pub fn reason(&self) -> Option<&str> {
        match self {
            Status::Ready => None,
            Status::NotYet(r) | Status::Failed(r) => Some(r),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Ready => f.write_str("ready"),
            Status::NotYet(r) => write!(f, "not ready: {r}"),
            Status::Failed(r) => write!(f, "failed: {r}"),
        }
    }
}

/// One readiness check that can be repeated, e.g. "PostgreSQL answers `SELECT 1` as `svc`".
pub trait Probe: Send {
    /// What is probed, for people: e.g. `postgres svc@127.0.0.1:5432/app` (never a secret).
    fn name(&self) -> String;

    /// Checks once; called repeatedly by the [`Waiter`] until it is not [`Status::NotYet`].
    fn check(&mut self) -> BoxFuture<'_, Status>;

    /// Gathers evidence for a [`Diagnosis`] after a failure or timeout (logs, pod states, ...).
    fn diagnose(&mut self) -> BoxFuture<'_, Vec<Detail>> {
        Box::pin(async { Vec::new() })
    }
}

/// A boxed probe is a probe, so probes chosen at run time (`Box<dyn Probe>`) combine like others.
impl<P: Probe + ?Sized> Probe for Box<P> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        (**self).check()
    }

    fn diagnose(&mut self) -> BoxFuture<'_, Vec<Detail>> {
        (**self).diagnose()
    }
}

/// Why a probe could not be built from its description.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A URL or address did not parse.
    #[error("invalid {what} `{input}`: {reason}")]
    InvalidAddress {
        /// What kind of address it was meant to be (postgres URL, redis URL, ...).
        what: &'static str,
        /// The input with any password removed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// An error and its sources, joined with `: `, so the root cause is visible in a reason.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// A probe that checks `second` only once `first` has been ready, e.g. a Deployment rolled
/// out, then PostgreSQL answering through a port-forward to it. Failing fast on either.
pub struct Then<A, B> {
    first: A,
    second: B,
    first_ready: bool,
}

/// `first`, then `second`: see [`Then`].
pub fn then<A: Probe, B: Probe>(first: A, second: B) -> Then<A, B> {
    Then { first, second, first_ready: false }
}

impl<A: Probe, B: Probe> Probe for Then<A, B> {
    fn name(&self) -> String {
        format!("{} (after {})", self.second.name(), self.first.name())
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            if !self.first_ready {
                match self.first.check().await {
                    Status::Ready => self.first_ready = true,
                    other => return other,
                }
            }
            self.second.check().await
        })
    }

    fn diagnose(&mut self) -> BoxFuture<'_, Vec<Detail>> {
        Box::pin(async move {
            let mut details = self.first.diagnose().await;
            if self.first_ready {
                details.extend(self.second.diagnose().await);
            }
            details
        })
    }
}
