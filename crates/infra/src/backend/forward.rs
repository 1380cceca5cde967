//! A port-forward from a free loopback port to a service's pods, kept by xtask for the life of
//! the run: what xtask's own probes, the migrations and the tests reach in-cluster services through.
//!
//! Every accepted connection asks for an upstream anew, so a pod that restarted (a new name,
//! a new IP) is found again instead of leaving the forward pointing at a dead pod.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// A byte stream to the service.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Opens one upstream connection, or says why it cannot.
pub(crate) type Connect =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Box<dyn Stream>, String>> + Send>> + Send + Sync>;

/// A running forward: its loopback port; dropping it closes the listener and every connection.
pub(crate) struct Forward {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Forward {
    /// Listens on a free port of 127.0.0.1 and relays each connection to a fresh `connect()`.
    pub(crate) async fn start(connect: Connect) -> std::io::Result<Forward> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let connect = connect.clone();
                connections.spawn(async move {
                    // Unreachable (no running pod yet): the client sees the connection close,
                    // and its probe reports what is not ready.
                    if let Ok(mut upstream) = connect().await {
                        let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Forward { port, task })
    }

    /// The loopback port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects to `port` of a running pod matching `selector` in `namespace`, through the API server.
pub(crate) fn to_pods(client: kube::Client, namespace: String, selector: String, port: u16) -> Connect {
    Arc::new(move || {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let selector = selector.clone();
        Box::pin(async move {
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| format!("listing pods {selector}: {e}"))?;
            let running = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .and_then(|p| p.metadata.name.clone())
                .ok_or_else(|| format!("no running pod matches {selector}"))?;
            let mut forwarder = pods
                .portforward(&running, &[port])
                .await
                .map_err(|e| format!("port-forward to {running}: {e}"))?;
            let stream =
                forwarder.take_stream(port).ok_or_else(|| format!("port-forward to {running}: no stream"))?;
            // The forwarder's task ends when the stream closes.
            tokio::spawn(async move {
                let _ = forwarder.join().await;
            });
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn each_connection_gets_a_fresh_upstream_and_bytes_flow_both_ways() {
        // A real upstream: an echo server prefixing what it got with its connection number.
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = upstream.accept().await {
                n += 1;
                tokio::spawn(async move {
                    let mut buf = [0u8; 5];
                    s.read_exact(&mut buf).await.unwrap();
                    s.write_all(format!("{n}:{}", String::from_utf8_lossy(&buf)).as_bytes()).await.unwrap();
                });
            }
        });
        let connects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connects.clone();
        let connect: Connect = Arc::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                let s = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                Ok(Box::new(s) as Box<dyn Stream>)
            })
        });
        let forward = Forward::start(connect).await.unwrap();
        for expected in ["1:hello", "2:hello"] {
            let mut c = tokio::net::TcpStream::connect(("127.0.0.1", forward.port())).await.unwrap();
            c.write_all(b"hello").await.unwrap();
            let mut got = String::new();
            c.read_to_string(&mut got).await.unwrap();
            assert_eq!(got, expected);
        }
        assert_eq!(connects.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_upstream_that_cannot_be_reached_closes_the_client_and_the_forward_goes_on() {
        let connect: Connect =
            Arc::new(|| Box::pin(async { Err("no running pod matches app=x".to_string()) }));
        let forward = Forward::start(connect).await.unwrap();
        for _ in 0..2 {
            let mut c = tokio::net::TcpStream::connect(("127.0.0.1", forward.port())).await.unwrap();
            let mut got = Vec::new();
            assert_eq!(c.read_to_end(&mut got).await.unwrap(), 0, "closed without data");
        }
        let port = forward.port();
        drop(forward);
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(),
            "listener closed on drop"
        );
    }
}
