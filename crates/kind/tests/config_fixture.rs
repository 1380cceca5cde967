//! The monorepo's real WorkflowExecution kind config (fixtures/kind, see fixtures/SOURCES.md).

use kind::{PortMapping, parse_cluster_config};

const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/kind/kind-workflowexecution-config.yaml");

fn tcp(container_port: u16, host_port: u16) -> PortMapping {
    PortMapping { container_port, host_port: Some(host_port), listen_address: None, protocol: "TCP".into() }
}

#[test]
fn workflowexecution_config_has_one_pinned_control_plane_with_five_ports() {
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let config = parse_cluster_config(&text).unwrap();
    assert_eq!(config.name, None);
    assert_eq!(config.node_count(), 1);
    let node = &config.nodes[0];
    assert_eq!(node.role, "control-plane");
    // The trailing `# K8s 1.36.1 …` comment on that line must not leak into the value.
    assert_eq!(
        config.images(),
        ["kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5"]
    );
    assert_eq!(
        node.extra_port_mappings,
        [tcp(30085, 8085), tcp(30185, 9185), tcp(30081, 8092), tcp(30281, 30281), tcp(30095, 30095)]
    );
    assert_eq!(config.host_ports(), [8085, 9185, 8092, 30281, 30095]);
}
