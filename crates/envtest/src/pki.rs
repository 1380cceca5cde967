//! Certificates for a Kubernetes control plane, made afresh for every start (ECDSA P-256;
//! private keys 0600): a CA, the leaves a caller lists (serving or client certificates), and
//! the key pair that signs ServiceAccount tokens. The devcluster issues its own list with the
//! same code.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::Error;

/// One certificate to issue: its file stem, subject and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// The file stem: `<stem>.crt` and `<stem>.key`.
    pub stem: &'static str,
    /// The subject's common name (a user name for client certificates).
    pub common_name: String,
    /// The subject's organization (a group for client certificates).
    pub organization: Option<&'static str>,
    /// Names it serves, for serving certificates.
    pub names: Vec<String>,
    /// Addresses it serves.
    pub ips: Vec<IpAddr>,
    /// Whether it is a client certificate (else a serving one).
    pub client: bool,
}

impl Leaf {
    /// A client certificate for user `common_name` in group `organization`.
    pub fn client(stem: &'static str, common_name: &str, organization: Option<&'static str>) -> Self {
        Self {
            stem,
            common_name: common_name.to_string(),
            organization,
            names: Vec::new(),
            ips: Vec::new(),
            client: true,
        }
    }
}

fn write_key(dir: &Path, name: &str, pem: &str) -> Result<(), Error> {
    Ok(procs::write_file(&dir.join(name), pem.as_bytes(), 0o600)?)
}

fn write_public(dir: &Path, name: &str, pem: &str) -> Result<(), Error> {
    Ok(procs::write_file(&dir.join(name), pem.as_bytes(), 0o644)?)
}

/// Makes `ca.crt`/`ca.key` (common name `ca_name`), every leaf, and `sa.key`/`sa.pub` in `dir`
/// (created 0700).
pub fn make(dir: &Path, ca_name: &str, leaves: &[Leaf]) -> Result<(), Error> {
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
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key)?;
    write_public(dir, "ca.crt", &ca_cert.pem())?;
    write_key(dir, "ca.key", &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca, ca_key);
    for leaf in leaves {
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
    fn keys_are_private_and_certificates_parse() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let leaves = [Leaf::client("admin", "someone", Some("system:masters"))];
        make(dir.path(), "test-ca", &leaves).unwrap();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            let text = std::fs::read_to_string(entry.path()).unwrap();
            if name.ends_with(".key") {
                assert_eq!(mode, 0o600, "{name}");
                assert!(text.contains("PRIVATE KEY"), "{name}");
            } else {
                assert!(text.starts_with("-----BEGIN "), "{name}");
            }
            names.push(name);
        }
        names.sort();
        assert_eq!(names, ["admin.crt", "admin.key", "ca.crt", "ca.key", "sa.key", "sa.pub"]);
        let dirmode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dirmode, 0o700);
    }
}
