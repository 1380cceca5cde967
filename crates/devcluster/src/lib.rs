//! A single-node Kubernetes on this machine, built from Debian's own `kubernetes` source package:
//! the real API server and kubelet the kind and cluster backends are proven against where kind
//! itself cannot run (no node image can be pulled).
//!
//! - [`assets`] builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
//!   kube-proxy and kubectl with Debian's Go, into a cached folder laid out like envtest's
//!   `KUBEBUILDER_ASSETS` (etcd beside kube-apiserver), keyed by what went into it.
//! - [`config`] renders every file the cluster reads (containerd, CNI, kubelet, kube-proxy,
//!   registry, kubeconfigs) as values, so they are snapshot-tested before anything runs.
//! - [`cluster`] starts the processes in dependency order, each gated on real readiness, records
//!   them by PID, and stops them leaving nothing: mounts, the bridge, cgroups, iptables chains,
//!   containerd's `/run/netns/cni-*` namespaces, changed sysctls.
//! - [`dns`] answers `<service>.<namespace>.svc.cluster.local` from a watch on Services, the
//!   part of a cluster Debian has no package for (no CoreDNS).
//!
//! The cluster is a machine singleton: its bridge, node address and ranges are fixed
//! ([`config::Network`]), and a second `up` from another checkout is refused.

pub mod assets;
pub mod cluster;
pub mod config;
pub mod dns;
mod error;
mod image;
mod net;
pub mod pki;
mod probes;
pub mod teardown;

pub use error::Error;
