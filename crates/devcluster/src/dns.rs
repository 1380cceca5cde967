//! The cluster's DNS: `<service>.<namespace>.svc.<domain>` answered with the Service's cluster IP,
//! from a watch on every Service (kube-rs's reflector), so names resolve in pods as on any
//! cluster. Debian has no CoreDNS, and this is all the suites need of one.
//!
//! It answers authoritatively inside the cluster domain (an unknown name is NXDOMAIN, a known
//! name asked for another type is an empty answer) and refuses everything else: there is no
//! upstream to ask on these machines, and a refusal fails a lookup at once. Headless Services
//! (no cluster IP) have no record.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use crate::Error;

/// How long resolvers may keep an answer: short, as Services come and go with runs.
const TTL: u32 = 5;

/// The answer to one name: the addresses of a known name, or whether it is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name exists; its A records (none for a headless Service).
    Found(Vec<Ipv4Addr>),
    /// No such name in the cluster domain.
    Unknown,
    /// Not in the cluster domain: not ours to answer.
    Outside,
}

/// Looks `name` up among `services` in cluster domain `domain` (names compare without case
/// and without the trailing dot).
pub fn lookup(services: &[Arc<Service>], domain: &str, name: &str) -> Lookup {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let Some(inside) = name
        .strip_suffix(&domain)
        .and_then(|n| n.strip_suffix('.'))
        .map(str::to_string)
        .or_else(|| (name == domain).then(String::new))
    else {
        return Lookup::Outside;
    };
    let labels: Vec<&str> = if inside.is_empty() { Vec::new() } else { inside.split('.').collect() };
    match labels.as_slice() {
        [service, namespace, "svc"] => {
            let found = services.iter().find(|s| {
                s.metadata.name.as_deref() == Some(service)
                    && s.metadata.namespace.as_deref() == Some(namespace)
            });
            match found {
                Some(s) => Lookup::Found(cluster_ips(s)),
                None => Lookup::Unknown,
            }
        }
        // The zone and the levels above services exist, with no address of their own.
        [] | ["svc"] => Lookup::Found(Vec::new()),
        [namespace, "svc"] if services.iter().any(|s| s.metadata.namespace.as_deref() == Some(namespace)) => {
            Lookup::Found(Vec::new())
        }
        _ => Lookup::Unknown,
    }
}

fn cluster_ips(service: &Service) -> Vec<Ipv4Addr> {
    let spec = service.spec.as_ref();
    let ips = spec
        .and_then(|s| s.cluster_ips.clone())
        .or_else(|| spec.and_then(|s| s.cluster_ip.clone()).map(|ip| vec![ip]));
    ips.unwrap_or_default().iter().filter_map(|ip| ip.parse().ok()).collect()
}

/// The response to a query message, from a lookup function.
pub fn respond(request: &Message, find: impl Fn(&str) -> Lookup) -> Message {
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(false);
    response.add_queries(request.queries().to_vec());
    let (Some(query), 1, OpCode::Query) =
        (request.queries().first(), request.queries().len(), request.op_code())
    else {
        response.set_response_code(ResponseCode::NotImp);
        return response;
    };
    match find(&query.name().to_ascii()) {
        Lookup::Outside => {
            response.set_response_code(ResponseCode::Refused);
        }
        Lookup::Unknown => {
            response.set_authoritative(true).set_response_code(ResponseCode::NXDomain);
        }
        Lookup::Found(ips) => {
            response.set_authoritative(true).set_response_code(ResponseCode::NoError);
            if matches!(query.query_type(), RecordType::A | RecordType::ANY) {
                for ip in ips {
                    response.add_answer(Record::from_rdata(query.name().clone(), TTL, RData::A(A(ip))));
                }
            }
        }
    }
    response
}

/// Serves DNS on `listen` (UDP and TCP) from a watch of `client`'s Services, once the watch
/// has listed them all; runs until an error.
pub async fn serve(client: Client, listen: SocketAddr, domain: String) -> Result<(), Error> {
    let (reader, writer) = reflector::store::<Service>();
    let api: Api<Service> = Api::all(client);
    let watch = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .applied_objects()
        .for_each(|_| futures::future::ready(()));
    let watching = tokio::spawn(watch);
    reader
        .wait_until_ready()
        .await
        .map_err(|e| Error::Dns(format!("the Service watch never listed: {e}")))?;
    let udp = Arc::new(
        UdpSocket::bind(listen).await.map_err(|e| Error::Dns(format!("binding udp {listen}: {e}")))?,
    );
    let tcp =
        TcpListener::bind(listen).await.map_err(|e| Error::Dns(format!("binding tcp {listen}: {e}")))?;
    eprintln!("dns: serving {domain} on {listen} (udp and tcp)");
    let udp_loop = serve_udp(udp, reader.clone(), domain.clone());
    let tcp_loop = serve_tcp(tcp, reader, domain);
    tokio::select! {
        r = udp_loop => r,
        r = tcp_loop => r,
        _ = watching => Err(Error::Dns("the Service watch ended".into())),
    }
}

fn answer_bytes(bytes: &[u8], store: &Store<Service>, domain: &str) -> Option<Vec<u8>> {
    let request = Message::from_vec(bytes).ok()?;
    if request.message_type() != MessageType::Query {
        return None;
    }
    let services = store.state();
    respond(&request, |name| lookup(&services, domain, name)).to_vec().ok()
}

async fn serve_udp(socket: Arc<UdpSocket>, store: Store<Service>, domain: String) -> Result<(), Error> {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) =
            socket.recv_from(&mut buf).await.map_err(|e| Error::Dns(format!("receiving: {e}")))?;
        if let Some(reply) = answer_bytes(&buf[..n], &store, &domain) {
            // A reply that cannot be sent (the asker is gone) is the asker's loss, not ours.
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, store: Store<Service>, domain: String) -> Result<(), Error> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| Error::Dns(format!("accepting: {e}")))?;
        let (store, domain) = (store.clone(), domain.clone());
        tokio::spawn(async move {
            // Each message is prefixed by its length (RFC 1035 4.2.2); a bad one ends the connection.
            loop {
                let Ok(len) = stream.read_u16().await else { return };
                let mut buf = vec![0u8; usize::from(len)];
                if stream.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let Some(reply) = answer_bytes(&buf, &store, &domain) else { return };
                let Ok(len) = u16::try_from(reply.len()) else { return };
                if stream.write_u16(len).await.is_err() || stream.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Asks `server` (over UDP) for the A records of `name`: the addresses, or the response code
/// when it is not NOERROR.
pub async fn query(server: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<Ipv4Addr>, String> {
    let name = Name::from_ascii(name).map_err(|e| format!("{name}: {e}"))?;
    let mut request = Message::new();
    request
        .set_id(rand_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    request.add_query(Query::query(name, RecordType::A));
    let bytes = request.to_vec().map_err(|e| e.to_string())?;
    let socket = UdpSocket::bind("0.0.0.0:0").await.map_err(|e| e.to_string())?;
    socket.send_to(&bytes, server).await.map_err(|e| format!("sending to {server}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(timeout, socket.recv_from(&mut buf))
        .await
        .map_err(|_| format!("no answer from {server} within {timeout:?}"))?
        .map_err(|e| format!("receiving from {server}: {e}"))?;
    let response = Message::from_vec(&buf[..n]).map_err(|e| format!("{server} answered garbage: {e}"))?;
    if response.id() != request.id() {
        return Err(format!("{server} answered another query"));
    }
    if response.response_code() != ResponseCode::NoError {
        return Err(format!("{server} answered {}", response.response_code()));
    }
    Ok(response
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect())
}

fn rand_id() -> u16 {
    // The id only pairs a reply with its query on a fresh socket: the clock's nanoseconds do.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos & 0xffff) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(ns: &str, name: &str, ip: Option<&str>) -> Arc<Service> {
        let object = serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip.unwrap_or("None")},
        });
        Arc::new(serde_json::from_value(object).unwrap())
    }

    #[test]
    fn services_resolve_by_full_name_and_nothing_else_does() {
        let services = vec![
            service("default", "kubernetes", Some("10.96.0.1")),
            service("xtask-run", "data-storage-service", Some("10.96.12.34")),
            service("xtask-run", "headless", None),
        ];
        let l = |name: &str| lookup(&services, "cluster.local", name);
        assert_eq!(
            l("kubernetes.default.svc.cluster.local."),
            Lookup::Found(vec![Ipv4Addr::new(10, 96, 0, 1)])
        );
        assert_eq!(
            l("DATA-STORAGE-SERVICE.xtask-run.svc.cluster.local"),
            Lookup::Found(vec![Ipv4Addr::new(10, 96, 12, 34)])
        );
        assert_eq!(l("headless.xtask-run.svc.cluster.local"), Lookup::Found(vec![]));
        assert_eq!(l("nosuch.xtask-run.svc.cluster.local"), Lookup::Unknown);
        // What a pod's search list makes of a bare name in another namespace: NXDOMAIN, next.
        assert_eq!(l("data-storage-service.default.svc.cluster.local"), Lookup::Unknown);
        assert_eq!(l("xtask-run.svc.cluster.local"), Lookup::Found(vec![]));
        assert_eq!(l("example.com"), Lookup::Outside);
        assert_eq!(l("cluster.local.example.com"), Lookup::Outside);
    }

    #[test]
    fn responses_carry_the_records_and_the_right_codes() {
        let query = |name: &str, ty| {
            let mut m = Message::new();
            m.set_id(7).set_message_type(MessageType::Query).set_op_code(OpCode::Query);
            m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
            m
        };
        let find = |name: &str| match name.trim_end_matches('.') {
            "a.b.svc.cluster.local" => Lookup::Found(vec![Ipv4Addr::new(10, 96, 1, 2)]),
            "example.com" => Lookup::Outside,
            _ => Lookup::Unknown,
        };
        let r = respond(&query("a.b.svc.cluster.local.", RecordType::A), find);
        assert_eq!((r.id(), r.response_code(), r.authoritative()), (7, ResponseCode::NoError, true));
        assert_eq!(r.answers().len(), 1);
        let r = respond(&query("a.b.svc.cluster.local.", RecordType::AAAA), find);
        assert_eq!(
            (r.response_code(), r.answers().len()),
            (ResponseCode::NoError, 0),
            "no IPv6: an empty answer"
        );
        let r = respond(&query("x.b.svc.cluster.local.", RecordType::A), find);
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        let r = respond(&query("example.com.", RecordType::A), find);
        assert_eq!(r.response_code(), ResponseCode::Refused);
        // Bytes survive the round trip a resolver makes.
        let bytes = respond(&query("a.b.svc.cluster.local.", RecordType::A), find).to_vec().unwrap();
        assert_eq!(Message::from_vec(&bytes).unwrap().answers().len(), 1);
    }
}
