//! The cluster's certificates, made afresh by every `up` by `envtest`'s issuer: a CA, the API
//! server's serving certificate, client certificates for the administrator, the node and the
//! API server's calls to the kubelet, the kubelet's serving certificate, and the key pair that
//! signs ServiceAccount tokens.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

pub use envtest::pki::Leaf;

use crate::Error;
use crate::config::Network;

/// Every certificate a cluster needs besides its CA.
pub fn leaves(network: &Network) -> Vec<Leaf> {
    let mut api_names = vec!["localhost".to_string(), "kubernetes".into(), "kubernetes.default".into()];
    api_names.push("kubernetes.default.svc".into());
    api_names.push(format!("kubernetes.default.svc.{}", network.domain));
    vec![
        Leaf {
            stem: "apiserver",
            common_name: "kube-apiserver".into(),
            organization: None,
            names: api_names,
            ips: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V4(network.node_ip),
                IpAddr::V4(network.api_service_ip),
            ],
            client: false,
        },
        Leaf {
            stem: "kubelet",
            common_name: network.node_name.into(),
            organization: None,
            names: vec![network.node_name.into()],
            ips: vec![IpAddr::V4(network.node_ip)],
            client: false,
        },
        // The administrator: everything (xtask, the tests, kubectl, the cluster's own controllers).
        Leaf::client("admin", "xtask-devcluster-admin", Some("system:masters")),
        // The node authorizer knows a kubelet by this name and group.
        Leaf::client("node", &format!("system:node:{}", network.node_name), Some("system:nodes")),
        // The API server's calls to the kubelet (logs, exec, port-forward).
        Leaf::client("apiserver-kubelet-client", "kube-apiserver-kubelet-client", Some("system:masters")),
    ]
}

/// Makes the CA, every leaf and the ServiceAccount key pair in `dir` (created 0700).
pub fn make(dir: &Path, network: &Network) -> Result<(), Error> {
    Ok(envtest::pki::make(dir, "xtask-devcluster-ca", &leaves(network))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_servers_certificate_serves_every_name_clients_use() {
        let n = Network::fixed();
        let api = leaves(&n).into_iter().find(|l| l.stem == "apiserver").unwrap();
        assert!(api.names.contains(&"kubernetes.default.svc.cluster.local".to_string()));
        assert!(api.ips.contains(&IpAddr::V4(n.node_ip)), "the host's clients");
        assert!(api.ips.contains(&IpAddr::V4(n.api_service_ip)), "pods' in-cluster config");
    }

    #[test]
    fn every_part_gets_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), &Network::fixed()).unwrap();
        for stem in ["apiserver", "kubelet", "admin", "node", "apiserver-kubelet-client"] {
            assert!(dir.path().join(format!("{stem}.crt")).exists(), "{stem}.crt");
            assert!(dir.path().join(format!("{stem}.key")).exists(), "{stem}.key");
        }
        assert!(dir.path().join("sa.pub").exists());
    }
}
