//! What a kind cluster config asks for that the backend must know before creating it: how many
//! nodes, which host ports they take, and which node images they pin.

use serde::Deserialize;

use crate::Error;

/// The only config `kind:` kind accepts.
const KIND: &str = "Cluster";
/// The only config `apiVersion:` current kind releases accept.
const API_VERSION: &str = "kind.x-k8s.io/v1alpha4";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    kind: Option<String>,
    api_version: Option<String>,
    name: Option<String>,
    nodes: Option<Vec<RawNode>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNode {
    role: Option<String>,
    image: Option<String>,
    #[serde(default)]
    extra_port_mappings: Vec<RawPortMapping>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPortMapping {
    container_port: u16,
    host_port: Option<u16>,
    listen_address: Option<String>,
    protocol: Option<String>,
}

/// The parts of a kind `Cluster` config that matter before `kind create cluster` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The `name:` field, which `--name` overrides.
    pub name: Option<String>,
    /// The nodes, in file order; one default control-plane node when the file lists none.
    pub nodes: Vec<NodeConfig>,
}

/// One node of a kind config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `control-plane` or `worker` (kind's default is `control-plane`).
    pub role: String,
    /// The node image the file pins, if any (`kind create cluster --image` replaces it).
    pub image: Option<String>,
    /// The ports published from the node container to the host.
    pub extra_port_mappings: Vec<PortMapping>,
}

/// One `extraPortMappings` entry: a node container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The port inside the node container (usually a NodePort).
    pub container_port: u16,
    /// The host port; `None` or `Some(0)` lets the engine pick one.
    pub host_port: Option<u16>,
    /// The host address it listens on; `None` means kind's default, all addresses.
    pub listen_address: Option<String>,
    /// `TCP`, `UDP` or `SCTP`; kind's default is `TCP`.
    pub protocol: String,
}

impl ClusterConfig {
    /// How many node containers kind will create.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Every port mapping of every node, in file order.
    pub fn port_mappings(&self) -> impl Iterator<Item = &PortMapping> {
        self.nodes.iter().flat_map(|n| &n.extra_port_mappings)
    }

    /// The host ports the cluster will hold, in file order (engine-picked ports left out).
    pub fn host_ports(&self) -> Vec<u16> {
        self.port_mappings().filter_map(|p| p.host_port).filter(|&p| p != 0).collect()
    }

    /// The node images the file pins, one entry per node that has one.
    pub fn images(&self) -> Vec<&str> {
        self.nodes.iter().filter_map(|n| n.image.as_deref()).collect()
    }
}

/// Parses a kind cluster config, applying kind's defaults for what it leaves out.
///
/// Fields this crate has no use for (mounts, kubeadm patches, networking) are ignored rather than
/// rejected, so a config kind accepts is not refused here for being richer than this model.
pub fn parse_cluster_config(text: &str) -> Result<ClusterConfig, Error> {
    let raw: RawConfig =
        serde_saphyr::from_str(text).map_err(|e| Error::InvalidConfig { reason: e.to_string() })?;
    let invalid = |reason: String| Err(Error::InvalidConfig { reason });
    if raw.kind.as_deref() != Some(KIND) {
        return invalid(format!("`kind:` is {:?}, expected \"{KIND}\"", raw.kind.unwrap_or_default()));
    }
    if raw.api_version.as_deref() != Some(API_VERSION) {
        let found = raw.api_version.unwrap_or_default();
        return invalid(format!("`apiVersion:` is {found:?}, expected \"{API_VERSION}\""));
    }
    let raw_nodes = raw.nodes.filter(|n| !n.is_empty());
    let nodes = raw_nodes.map_or_else(
        || vec![NodeConfig { role: "control-plane".into(), image: None, extra_port_mappings: Vec::new() }],
        |nodes| nodes.into_iter().map(NodeConfig::from).collect(),
    );
    Ok(ClusterConfig { name: raw.name, nodes })
}

impl From<RawNode> for NodeConfig {
    fn from(raw: RawNode) -> Self {
        let ports = raw.extra_port_mappings.into_iter().map(|p| PortMapping {
            container_port: p.container_port,
            host_port: p.host_port,
            listen_address: p.listen_address,
            protocol: p.protocol.unwrap_or_else(|| "TCP".into()),
        });
        NodeConfig {
            role: raw.role.unwrap_or_else(|| "control-plane".into()),
            image: raw.image,
            extra_port_mappings: ports.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_nodes_is_one_default_control_plane() {
        let config = parse_cluster_config("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n").unwrap();
        assert_eq!(config.node_count(), 1);
        assert_eq!(config.nodes[0].role, "control-plane");
        assert!(config.images().is_empty() && config.host_ports().is_empty());
    }

    #[test]
    fn defaults_and_multiple_nodes() {
        let text = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: two
nodes:
- extraPortMappings:
  - containerPort: 80
    hostPort: 0
  - containerPort: 53
    hostPort: 5353
    listenAddress: 127.0.0.1
    protocol: UDP
- role: worker
  image: kindest/node:v1.33.1
";
        let config = parse_cluster_config(text).unwrap();
        assert_eq!(config.name.as_deref(), Some("two"));
        assert_eq!(config.node_count(), 2);
        assert_eq!(config.nodes[0].role, "control-plane");
        assert_eq!(config.nodes[1].role, "worker");
        assert_eq!(config.images(), ["kindest/node:v1.33.1"]);
        assert_eq!(config.host_ports(), [5353]);
        let udp = &config.nodes[0].extra_port_mappings[1];
        assert_eq!((udp.protocol.as_str(), udp.listen_address.as_deref()), ("UDP", Some("127.0.0.1")));
        assert_eq!(config.nodes[0].extra_port_mappings[0].protocol, "TCP");
    }

    #[test]
    fn other_documents_are_refused() {
        let err = parse_cluster_config("kind: Pod\napiVersion: v1\n").unwrap_err();
        assert_eq!(err.to_string(), "invalid kind config: `kind:` is \"Pod\", expected \"Cluster\"");
        let err = parse_cluster_config("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n").unwrap_err();
        assert!(err.to_string().contains("expected \"kind.x-k8s.io/v1alpha4\""), "{err}");
        let err = parse_cluster_config("kind: Cluster\nnodes: 3\n").unwrap_err();
        assert!(err.to_string().starts_with("invalid kind config: "), "{err}");
    }
}
