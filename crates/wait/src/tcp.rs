//! The TCP probe: ready when a connection to the address is accepted.

use crate::{BoxFuture, Probe, Status};

/// Ready when `host:port` accepts a TCP connection; a refused or unreachable address is not yet ready.
#[derive(Debug, Clone)]
pub struct TcpProbe {
    addr: String,
}

impl TcpProbe {
    /// A probe for `addr`, written `host:port` (e.g. `127.0.0.1:5432`).
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into() }
    }
}

impl Probe for TcpProbe {
    fn name(&self) -> String {
        format!("tcp {}", self.addr)
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            match tokio::net::TcpStream::connect(&self.addr).await {
                Ok(_) => Status::Ready,
                Err(e) => Status::NotYet(format!("connecting to {}: {e}", self.addr)),
            }
        })
    }
}
