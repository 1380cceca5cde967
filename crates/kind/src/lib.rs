//! Typed wrappers for `kind` and the container engine it runs on (argv as data).
//!
//! Every command is first built as an [`Invocation`] (program, arguments, environment) so that
//! `--dry-run` can print it and tests can snapshot it; [`Kind::run`] and the typed methods built
//! on it execute it through `xshell`. [`Kind`] carries the configuration that differs between
//! machines: which `kind` binary, and which engine (docker or podman) kind drives.
//!
//! ```no_run
//! # fn demo() -> Result<(), kind::Error> {
//! use kind::{CreateCluster, Kind, NODE_IMAGE};
//! let kind = Kind::from_env()?;
//! let mut spec = CreateCluster::new("xtask-we", "kind-config.yaml");
//! spec.image = Some(NODE_IMAGE.to_string());
//! println!("{}", kind.create_cluster_cmd(&spec)); // what --dry-run shows
//! kind.create_cluster(&spec)?;
//! let images = kind.node_images("xtask-we")?;
//! if !kind::has_image(&images, "localhost/xtask/foo:abc") {
//!     kind.load_image_archive("foo.tar".as_ref(), "xtask-we")?;
//! }
//! # Ok(()) }
//! ```

mod cli;
mod config;
mod error;
mod images;
mod invocation;
mod provider;

pub use cli::{CreateCluster, KIND_VAR, Kind, Kubeconfig, parse_clusters};
pub use config::{ClusterConfig, NodeConfig, PortMapping, parse_cluster_config};
pub use error::Error;
pub use images::{has_image, parse_crictl_images};
pub use invocation::Invocation;
pub use provider::{KIND_PROVIDER_VAR, PROVIDER_VAR, Provider};

/// The node image `kind create cluster --image` gets, pinned by digest.
///
/// This is the image that the kind v0.29.0 release notes list for Kubernetes 1.33.1. A digest
/// rather than a tag, because a tag can be re-pushed, and node images are built for one kind
/// release: a newer kind may need a newer image. It matches `k8s-openapi`'s `v1_33` feature in
/// the workspace.
pub const NODE_IMAGE: &str =
    "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f";
