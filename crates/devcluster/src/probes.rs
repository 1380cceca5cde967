//! The cluster's readiness probes, in `wait`'s shape: containerd's socket answering, the API
//! server's `/readyz`, the node Ready, a ServiceAccount made by the controller manager, and a
//! name the DNS responder resolves.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub(crate) use envtest::ApiReady;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::Api;
use wait::{BoxFuture, Probe, Status};

/// A Unix socket that accepts connections.
pub(crate) struct SocketProbe(pub PathBuf);

impl Probe for SocketProbe {
    fn name(&self) -> String {
        format!("socket {}", self.0.display())
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            match tokio::net::UnixStream::connect(&self.0).await {
                Ok(_) => Status::Ready,
                Err(e) => Status::NotYet(e.to_string()),
            }
        })
    }
}

/// Whether a node's `Ready` condition is true, with the condition's message while it is not.
pub fn node_status(node: &Node) -> Status {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    match conditions.and_then(|c| c.iter().find(|c| c.type_ == "Ready")) {
        Some(c) if c.status == "True" => Status::Ready,
        Some(c) => Status::NotYet(format!(
            "Ready={}: {}",
            c.status,
            c.message.as_deref().or(c.reason.as_deref()).unwrap_or("no message")
        )),
        None => Status::NotYet("no Ready condition yet".into()),
    }
}

/// The node registered and Ready.
pub(crate) struct NodeReady {
    pub api: Api<Node>,
    pub name: String,
}

impl Probe for NodeReady {
    fn name(&self) -> String {
        format!("node {} Ready", self.name)
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            match self.api.get_opt(&self.name).await {
                Ok(Some(node)) => node_status(&node),
                Ok(None) => Status::NotYet("not registered yet".into()),
                Err(e) => Status::NotYet(e.to_string()),
            }
        })
    }
}

/// A ServiceAccount exists (the controller manager's token controller made it).
pub(crate) struct AccountExists {
    pub api: Api<ServiceAccount>,
    pub name: String,
}

impl Probe for AccountExists {
    fn name(&self) -> String {
        format!("ServiceAccount {}", self.name)
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            match self.api.get_opt(&self.name).await {
                Ok(Some(_)) => Status::Ready,
                Ok(None) => Status::NotYet("not made yet (kube-controller-manager)".into()),
                Err(e) => Status::NotYet(e.to_string()),
            }
        })
    }
}

/// The DNS responder answering `name` with `expect`.
pub(crate) struct Resolves {
    pub server: SocketAddr,
    pub name: String,
    pub expect: Ipv4Addr,
}

impl Probe for Resolves {
    fn name(&self) -> String {
        format!("dns {} -> {}", self.name, self.expect)
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            match crate::dns::query(self.server, &self.name, Duration::from_secs(1)).await {
                Ok(ips) if ips.contains(&self.expect) => Status::Ready,
                Ok(ips) => Status::NotYet(format!("answered {ips:?}")),
                Err(e) => Status::NotYet(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_ready_only_when_its_condition_says_so() {
        let node = |status: &str| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "n"},
                "status": {"conditions": [{"type": "Ready", "status": status, "reason": "KubeletNotReady",
                    "message": "container runtime network not ready"}]}
            }))
            .unwrap()
        };
        assert!(node_status(&node("True")).is_ready());
        assert_eq!(
            node_status(&node("False")).reason(),
            Some("Ready=False: container runtime network not ready")
        );
        let bare: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": "n"}})).unwrap();
        assert_eq!(node_status(&bare).reason(), Some("no Ready condition yet"));
    }
}
