//! The cluster's certificates, made afresh by every `up` (ECDSA P-256; private keys 0600): a CA,
//! the API server's serving certificate, client certificates for the administrator, the node and
//! the API server's calls to the kubelet, the kubelet's serving certificate, and the key pair
//! that signs ServiceAccount tokens.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::Error;
use crate::config::Network;

/// One certificate to issue: its file stem, subject and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// The file stem: `<stem>.crt` and `<stem>.key`.
    pub stem: &'static str,
    /// The subject's common name (a user name for client certificates).
    pub common_name: String,
    /// The subject's organization (a group for client certificates).
    pub organization: Option<&'static str>,
    /// Names and addresses it serves, for serving certificates.
    pub names: Vec<String>,
    /// Addresses it serves.
    pub ips: Vec<IpAddr>,
    /// Whether it is a client certificate (else a serving one).
    pub client: bool,
}

/// Every certificate a cluster needs besides its CA.
pub fn leaves(network: &Network) -> Vec<Leaf> {
    let client = |stem, cn: &str, org| Leaf {
        stem,
        common_name: cn.to_string(),
        organization: org,
        names: Vec::new(),
        ips: Vec::new(),
        client: true,
    };
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
        client("admin", "xtask-devcluster-admin", Some("system:masters")),
        // The node authorizer knows a kubelet by this name and group.
        client("node", &format!("system:node:{}", network.node_name), Some("system:nodes")),
        // The API server's calls to the kubelet (logs, exec, port-forward).
        client("apiserver-kubelet-client", "kube-apiserver-kubelet-client", Some("system:masters")),
    ]
}

fn write_key(dir: &Path, name: &str, pem: &str) -> Result<(), Error> {
    Ok(procs::write_file(&dir.join(name), pem.as_bytes(), 0o600)?)
}

fn write_public(dir: &Path, name: &str, pem: &str) -> Result<(), Error> {
    Ok(procs::write_file(&dir.join(name), pem.as_bytes(), 0o644)?)
}

/// Makes the CA, every leaf and the ServiceAccount key pair in `dir` (created 0700).
pub fn make(dir: &Path, network: &Network) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(Error::io("restricting", dir))?;
    }
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, "xtask-devcluster-ca");
    let ca_cert = ca.self_signed(&ca_key)?;
    write_public(dir, "ca.crt", &ca_cert.pem())?;
    write_key(dir, "ca.key", &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca, ca_key);
    for leaf in leaves(network) {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(leaf.names.clone())?;
        params.subject_alt_names.extend(leaf.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, leaf.common_name.as_str());
        if let Some(org) = leaf.organization {
            params.distinguished_name.push(DnType::OrganizationName, org);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![if leaf.client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer)?;
        write_public(dir, &format!("{}.crt", leaf.stem), &cert.pem())?;
        write_key(dir, &format!("{}.key", leaf.stem), &key.serialize_pem())?;
    }
    let sa = KeyPair::generate()?;
    write_key(dir, "sa.key", &sa.serialize_pem())?;
    write_public(dir, "sa.pub", &sa.public_key_pem())?;
    Ok(())
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
    fn keys_are_private_and_certificates_parse() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), &Network::fixed()).unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            if name.ends_with(".key") {
                assert_eq!(mode, 0o600, "{name}");
                assert!(std::fs::read_to_string(entry.path()).unwrap().contains("PRIVATE KEY"));
            } else {
                assert!(std::fs::read_to_string(entry.path()).unwrap().starts_with("-----BEGIN "), "{name}");
            }
        }
        let dirmode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dirmode, 0o700);
        assert!(dir.path().join("node.crt").exists() && dir.path().join("sa.pub").exists());
    }
}
