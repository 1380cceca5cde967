//! DataStorage's key material, generated per run: the RSA pair that signs audit exports
//! (`tls.crt`/`tls.key` in `server.signerCertDir`; the service refuses to start without it, and
//! refuses a key that is not RSA), and TLS for the API port (a CA handed to clients, a serving
//! pair in `server.tls.certDir`). The same checks the service makes at start are here, so a
//! wrong pair is named before anything runs.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;

/// The certificate's file name in both directories (a `kubernetes.io/tls` Secret's key).
pub const CERT_FILE: &str = "tls.crt";
/// The private key's file name in both directories.
pub const KEY_FILE: &str = "tls.key";
/// The CA's file name, as clients get it (the `inter-service-ca` ConfigMap's key).
pub const CA_FILE: &str = "ca.crt";

/// How long generated certificates are valid: longer than any kept environment lives.
const VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// What is wrong with key material.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file of a pair is missing or unreadable.
    #[error("{}: {cause}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it does not read.
        cause: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{}: {reason}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The signing key is not RSA.
    #[error("{}: the signing key must be RSA (DataStorage signs audit exports with RSA), found {found}", .path.display())]
    NotRsa {
        /// The key file.
        path: PathBuf,
        /// What it holds instead.
        found: String,
    },
    /// The certificate's public key is not the key's.
    #[error("{} and {} do not belong together: the certificate's public key is not the private key's", .cert.display(), .key.display())]
    Mismatch {
        /// The certificate.
        cert: PathBuf,
        /// The key.
        key: PathBuf,
    },
    /// Generating failed.
    #[error("generating {what}: {reason}")]
    Generate {
        /// What was being made.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
}

/// A certificate and its private key, PEM. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Pair {
    /// The certificate.
    pub cert: String,
    /// The private key: a secret.
    pub key: String,
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair").field("cert", &self.cert).field("key", &"<redacted>").finish()
    }
}

/// TLS for the API port: the CA clients trust, and the serving pair it signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// The CA certificate (public: handed to every client).
    pub ca: String,
    /// The serving certificate and key.
    pub server: Pair,
}

fn generate(what: &'static str) -> impl FnOnce(rcgen::Error) -> CertError {
    move |e| CertError::Generate { what, reason: e.to_string() }
}

fn validity(params: &mut CertificateParams) {
    let now = std::time::SystemTime::now();
    // An hour back: a clock a little behind ours must not see a certificate from the future.
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + VALIDITY).into();
}

/// A fresh self-signed RSA-2048 signing pair, as the monorepo's end-to-end runs make theirs:
/// common name `datastorage-signing`, SAN localhost, key in PKCS#1.
pub fn signing_pair() -> Result<Pair, CertError> {
    let failed = |reason: String| CertError::Generate { what: "the signing key", reason };
    let key = rsa_2048().map_err(|e| failed(e.to_string()))?;
    let pkcs8 = key.to_pkcs8_der().map_err(|e| failed(e.to_string()))?;
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_bytes().into(), &rcgen::PKCS_RSA_SHA256)
        .map_err(generate("the signing key"))?;
    let mut params =
        CertificateParams::new(vec!["localhost".to_string()]).map_err(generate("the signing certificate"))?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "datastorage-signing");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params);
    let cert = params.self_signed(&pair).map_err(generate("the signing certificate"))?;
    let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| failed(e.to_string()))?;
    Ok(Pair { cert: cert.pem(), key: pem.to_string() })
}

/// A fresh RSA-2048 key: its two 1024-bit primes searched for on two threads at once (the search
/// is most of the time, 0.3 to 1.5 s each here), then combined as `rsa` itself would.
fn rsa_2048() -> Result<rsa::RsaPrivateKey, rsa::Error> {
    use num_bigint_dig::RandPrime;
    let prime = || rsa::rand_core::OsRng.gen_prime(1024);
    loop {
        let (p, q) = std::thread::scope(|s| {
            let other = s.spawn(prime);
            let p = prime();
            (p, other.join().unwrap_or_else(|_| prime()))
        });
        // Equal primes (never seen, but possible) or an exponent without an inverse: draw again.
        match rsa::RsaPrivateKey::from_p_q(p, q, rsa::BigUint::from(65_537u32)) {
            Ok(key) if key.n().bits() == 2048 => return Ok(key),
            Ok(_) | Err(rsa::Error::InvalidPrime) | Err(rsa::Error::InvalidModulus) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A fresh CA and a serving pair it signed for `names` and `ips` (ECDSA P-256, as the
/// monorepo's `datastorage-tls`).
pub fn tls(names: &[String], ips: &[IpAddr]) -> Result<Tls, CertError> {
    let ca_key = KeyPair::generate().map_err(generate("the TLS CA"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(generate("the TLS CA"))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, "xtask-inter-service-ca");
    validity(&mut ca);
    let ca_cert = ca.self_signed(&ca_key).map_err(generate("the TLS CA"))?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(generate("the TLS key"))?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(generate("the TLS certificate"))?;
    params.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, names.first().map_or("datastorage", String::as_str));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params);
    let cert = params.signed_by(&key, &issuer).map_err(generate("the TLS certificate"))?;
    Ok(Tls { ca: ca_cert.pem(), server: Pair { cert: cert.pem(), key: key.serialize_pem() } })
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|cause| CertError::Read { path: path.to_path_buf(), cause })
}

/// The certificate's SubjectPublicKeyInfo, and whether its key is RSA (with its modulus).
fn certificate(path: &Path) -> Result<(Vec<u8>, Option<Vec<u8>>), CertError> {
    let text = read(path)?;
    let invalid = |reason: String| CertError::Invalid { path: path.to_path_buf(), reason };
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes())
        .map_err(|e| invalid(format!("not a PEM certificate ({e})")))?;
    let cert = pem.parse_x509().map_err(|e| invalid(format!("not an X.509 certificate ({e})")))?;
    let spki = cert.public_key();
    let modulus = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => Some(trim(rsa.modulus).to_vec()),
        _ => None,
    };
    Ok((spki.raw.to_vec(), modulus))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[zeros..]
}

/// The RSA private key of a PEM text (PKCS#1 or PKCS#8), if it holds one.
fn rsa_key(text: &str) -> Option<rsa::RsaPrivateKey> {
    rsa::RsaPrivateKey::from_pkcs1_pem(text).or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(text)).ok()
}

/// Checks the signing pair in `dir` as the service does at start: both files there, the key
/// RSA (PKCS#1 or PKCS#8), the certificate's key the same.
pub fn check_signing(dir: &Path) -> Result<(), CertError> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    let (_, modulus) = certificate(&cert_path)?;
    let text = read(&key_path)?;
    let Some(key) = rsa_key(&text) else {
        let found = match KeyPair::from_pem(&text) {
            Ok(pair) => format!("a {:?} key", pair.algorithm()),
            Err(_) => "no private key it can read".to_string(),
        };
        return Err(CertError::NotRsa { path: key_path, found });
    };
    if modulus.as_deref() != Some(trim(&key.n().to_bytes_be())) {
        return Err(CertError::Mismatch { cert: cert_path, key: key_path });
    }
    Ok(())
}

/// Checks the TLS pair in `dir` when there is one: `Ok(false)` when neither file exists (the
/// API port serves plain HTTP), `Ok(true)` when both exist and belong together.
pub fn check_tls(dir: &Path) -> Result<bool, CertError> {
    use rcgen::PublicKeyData;
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if !cert_path.exists() && !key_path.exists() {
        return Ok(false);
    }
    let (spki, modulus) = certificate(&cert_path)?;
    let text = read(&key_path)?;
    let belong = match rsa_key(&text) {
        Some(key) => modulus.as_deref() == Some(trim(&key.n().to_bytes_be())),
        None => {
            let pair = KeyPair::from_pem(&text).map_err(|e| CertError::Invalid {
                path: key_path.clone(),
                reason: format!("not a private key it can read ({e})"),
            })?;
            pair.subject_public_key_info() == spki
        }
    };
    if !belong {
        return Err(CertError::Mismatch { cert: cert_path, key: key_path });
    }
    Ok(true)
}

/// Writes a pair into `dir` as `tls.crt` (0644) and `tls.key` (0600).
pub fn write_pair(dir: &Path, pair: &Pair) -> Result<(), crate::Error> {
    for (name, text, mode) in [(CERT_FILE, &pair.cert, 0o644), (KEY_FILE, &pair.key, 0o600)] {
        let path = dir.join(name);
        procs::write_file(&path, text.as_bytes(), mode)
            .map_err(|e| crate::Error::Write { path: path.clone(), source: std::io::Error::other(e) })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_generated_signing_pair_passes_the_services_checks() {
        let dir = tempfile::tempdir().unwrap();
        let pair = signing_pair().unwrap();
        assert!(pair.key.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "PKCS#1, as the monorepo writes it");
        assert!(!format!("{pair:?}").contains("PRIVATE KEY"), "Debug hides the key");
        write_pair(dir.path(), &pair).unwrap();
        check_signing(dir.path()).unwrap();
    }

    #[test]
    fn a_signing_key_that_is_not_rsa_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let ecdsa = tls(&["localhost".into()], &[]).unwrap().server;
        write_pair(dir.path(), &ecdsa).unwrap();
        let e = check_signing(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&dir.path().join("tls.key").display().to_string()), "{e}");
        assert!(e.contains("must be RSA"), "{e}");
        assert!(e.contains("ECDSA"), "names what it found: {e}");
    }

    #[test]
    fn a_missing_signing_pair_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_signing(dir.path()).unwrap_err().to_string();
        assert!(e.contains("tls.crt"), "{e}");
    }

    #[test]
    fn pairs_that_do_not_belong_together_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (signing_pair().unwrap(), signing_pair().unwrap());
        write_pair(dir.path(), &Pair { cert: a.cert, key: b.key }).unwrap();
        let e = check_signing(dir.path()).unwrap_err().to_string();
        assert!(e.contains("do not belong together"), "{e}");

        let one = tls(&["localhost".into()], &[]).unwrap().server;
        let two = tls(&["localhost".into()], &[]).unwrap().server;
        write_pair(dir.path(), &Pair { cert: one.cert.clone(), key: two.key }).unwrap();
        let e = check_tls(dir.path()).unwrap_err().to_string();
        assert!(e.contains("do not belong together"), "{e}");
        write_pair(dir.path(), &one).unwrap();
        assert!(check_tls(dir.path()).unwrap());
    }

    #[test]
    fn no_tls_files_means_plain_http() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!check_tls(dir.path()).unwrap());
    }

    #[test]
    fn the_serving_certificate_names_what_clients_dial() {
        let t = tls(&["localhost".into(), "data-storage-service".into()], &[IpAddr::V4(Ipv4Addr::LOCALHOST)])
            .unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(t.server.cert.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        use x509_parser::extensions::GeneralName;
        let names = &cert.subject_alternative_name().unwrap().unwrap().value.general_names;
        assert!(names.contains(&GeneralName::DNSName("data-storage-service")), "{names:?}");
        assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])), "{names:?}");
    }
}
