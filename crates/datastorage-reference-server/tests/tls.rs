//! HTTPS on the API port when the TLS directory holds a pair, as the service serves it: a client
//! trusting the run's CA gets in, and the health port stays plain HTTP for probes.

mod common;

use std::sync::Arc;

use common::{Env, blocking};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over TLS to `port`, trusting `ca` and checking the name `host`; the raw answer.
async fn https_get(port: u16, ca: &str, host: &str, path: &str) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.map_err(|e| e.to_string())?;
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_port_serves_https_to_clients_that_trust_the_runs_ca() {
    let names = ["localhost".to_string(), "data-storage-service".to_string()];
    let ips = [std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)];
    let tls = datastorage::certs::tls(&names, &ips).unwrap();
    let mut env = blocking(|| Env::with_tls(|_| {}, Some(tls.server.clone())));
    env.migrate().await;
    env.serve().await;
    let server = env.server.as_ref().unwrap();
    assert!(server.url().starts_with("https://"), "{}", server.url());
    let port = server.addr().port();

    let answer = https_get(port, &tls.ca, "localhost", "/readyz").await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let by_ip = https_get(port, &tls.ca, "127.0.0.1", "/readyz").await.unwrap();
    assert!(by_ip.starts_with("HTTP/1.1 200"), "{by_ip}");

    // A client that trusts another CA is refused the handshake.
    let other = datastorage::certs::tls(&names, &ips).unwrap();
    let e = https_get(port, &other.ca, "localhost", "/readyz").await.unwrap_err();
    assert!(e.contains("certificate"), "{e}");

    // Plain HTTP to the TLS port gets no HTTP answer; the health port stays plain for probes.
    assert!(env.http.get(format!("http://127.0.0.1:{port}/readyz")).send().await.is_err());
    let (status, _) = env.health().await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_pair_that_does_not_belong_together_stops_the_start() {
    let names = ["localhost".to_string()];
    let (one, two) =
        (datastorage::certs::tls(&names, &[]).unwrap(), datastorage::certs::tls(&names, &[]).unwrap());
    let mixed = datastorage::certs::Pair { cert: one.server.cert, key: two.server.key };
    let env = blocking(|| Env::with_tls(|_| {}, Some(mixed)));
    let listeners = datastorage_reference_server::Listeners::loopback().await.unwrap();
    let Err(e) = datastorage_reference_server::start_on(
        &env.loaded,
        listeners,
        datastorage_reference_server::Auth::Off,
    )
    .await
    else {
        panic!("a mismatched pair must stop the start")
    };
    let e = e.to_string();
    assert!(e.contains("do not belong together"), "{e}");
    assert!(e.contains(&env.dir.path().join("tls/tls.crt").display().to_string()), "{e}");
}
