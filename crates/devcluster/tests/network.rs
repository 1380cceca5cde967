//! The running devcluster's network, as a pod and this machine see it: Service names resolve
//! through its DNS responder (a Service created now resolves within seconds, an unknown one is
//! NXDOMAIN), and the cluster's ranges never leave the machine: an unused Service address is
//! refused at once, the pods' range is routed to the bridge only.
//!
//! Run by `.ci/with-cluster` (KUBECONFIG of the devcluster, XTASK_REQUIRE_CLUSTER=1); skipped,
//! saying so, without a devcluster.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use devcluster::config::Network;
use k8s_openapi::api::core::v1::{Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};

/// The devcluster's admin client, when this machine runs one.
async fn cluster() -> Option<kube::Client> {
    let required = std::env::var("XTASK_REQUIRE_CLUSTER").is_ok_and(|v| v == "1");
    let Some(path) = std::env::var_os("KUBECONFIG") else {
        assert!(!required, "XTASK_REQUIRE_CLUSTER=1 but KUBECONFIG is not set");
        eprintln!("SKIPPED: no devcluster (run under .ci/with-cluster)");
        return None;
    };
    let bridge = std::path::Path::new("/sys/class/net").join(Network::fixed().bridge);
    if !bridge.exists() {
        assert!(!required, "XTASK_REQUIRE_CLUSTER=1 but the devcluster's bridge is not here");
        eprintln!("SKIPPED: KUBECONFIG is set but no devcluster runs on this machine");
        return None;
    }
    Some(devcluster::cluster::client(std::path::Path::new(&path)).await.expect("the devcluster's kubeconfig"))
}

#[tokio::test]
async fn a_new_service_resolves_by_name_within_seconds_and_an_unknown_one_does_not() {
    let Some(client) = cluster().await else { return };
    let network = Network::fixed();
    let dns = SocketAddr::from((network.node_ip, 53));
    let ns = format!("xtask-dns-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &namespace).await.unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let service = Service {
        metadata: ObjectMeta { name: Some("lookup-me".into()), ..Default::default() },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_string(), "nothing".to_string())])),
            ports: Some(vec![ServicePort { port: 80, protocol: Some("TCP".into()), ..Default::default() }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = services.create(&PostParams::default(), &service).await.unwrap();
    let ip: Ipv4Addr = created.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
    let name = format!("lookup-me.{ns}.svc.{}", network.domain);
    let started = Instant::now();
    let found = loop {
        match devcluster::dns::query(dns, &name, Duration::from_secs(2)).await {
            Ok(addrs) if !addrs.is_empty() => break addrs,
            other => {
                assert!(started.elapsed() < Duration::from_secs(10), "{name} not resolved in 10s: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(found, [ip]);
    let unknown =
        devcluster::dns::query(dns, &format!("nobody.{ns}.svc.{}", network.domain), Duration::from_secs(2))
            .await;
    assert!(matches!(&unknown, Err(e) if e.ends_with("Non-Existent Domain")), "{unknown:?}");
    let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
}

#[test]
fn an_unused_service_address_is_refused_at_once_not_sent_out() {
    if std::env::var_os("KUBECONFIG").is_none()
        || !std::path::Path::new("/sys/class/net").join(Network::fixed().bridge).exists()
    {
        assert!(
            std::env::var("XTASK_REQUIRE_CLUSTER").as_deref() != Ok("1"),
            "XTASK_REQUIRE_CLUSTER=1 but no devcluster"
        );
        eprintln!("SKIPPED: no devcluster (run under .ci/with-cluster)");
        return;
    }
    // The last address of the Services' range: no Service has it, so kube-proxy did not
    // translate it, and the default route would carry it off the machine.
    let addr = SocketAddr::from((Ipv4Addr::new(10, 96, 255, 254), 80));
    let started = Instant::now();
    let error = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect_err("nothing answers there");
    assert_eq!(error.kind(), std::io::ErrorKind::NetworkUnreachable, "{error}");
    assert!(started.elapsed() < Duration::from_secs(1), "refused, not timed out: {:?}", started.elapsed());
}

#[test]
fn the_pods_range_is_routed_to_the_bridge() {
    let network = Network::fixed();
    if !std::path::Path::new("/sys/class/net").join(network.bridge).exists() {
        assert!(
            std::env::var("XTASK_REQUIRE_CLUSTER").as_deref() != Ok("1"),
            "XTASK_REQUIRE_CLUSTER=1 but no devcluster"
        );
        eprintln!("SKIPPED: no devcluster (run under .ci/with-cluster)");
        return;
    }
    let out = std::process::Command::new("ip").args(["-4", "route", "get", "10.244.0.250"]).output().unwrap();
    let route = String::from_utf8_lossy(&out.stdout);
    assert!(route.contains(&format!("dev {}", network.bridge)), "{route}");
}
