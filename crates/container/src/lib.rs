//! Typed wrappers for a container engine (podman, or docker with the same CLI): argv as data.
//!
//! An [`Engine`] is the program plus the host's quirks (an OCI runtime, extra `run` arguments),
//! taken from the environment so that no code depends on one machine. A [`ContainerSpec`]
//! describes one container as data; [`Engine::run_argv`] renders it without running anything,
//! [`Engine::run`] starts it. [`ContainerProbe`] is a `wait::Probe` that fails as soon as the
//! container stops, with its exit code and last log lines.
//!
//! ```no_run
//! # fn demo() -> Result<(), container::Error> {
//! use container::{ContainerSpec, Engine};
//! let engine = Engine::from_env();
//! let mut spec = ContainerSpec::new("web-1", "localhost/xtask/web:1");
//! spec.publish.push(8080);
//! engine.run(&spec)?;
//! let port = engine.host_port("web-1", 8080)?;
//! # let _ = port; Ok(()) }
//! ```

mod containers;
mod engine;
mod error;
mod objects;
mod parse;
mod probe;
mod spec;
mod state;

pub use engine::{ENGINE_VAR, Engine, Kind, RUN_ARGS_VAR, RUNTIME_VAR};
pub use error::Error;
pub use parse::Listed;
pub use probe::ContainerProbe;
pub use spec::{ContainerSpec, Mount, SecretMount};
pub use state::{ContainerState, container_status};
