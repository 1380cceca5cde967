//! The HTTP probe: ready when a GET (or a POST of a JSON body) answers with the expected status
//! and, optionally, JSON field value.
//!
//! Plain HTTP/1.1 over a fresh TCP connection per check (no pooling: each check sees the server
//! as a new client would). HTTPS is not supported: the services probed here listen on loopback
//! or inside a cluster.

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::{BoxFuture, Probe, ProbeError, Status};

/// How much of a body is shown in a reason.
const EXCERPT: usize = 200;

/// `GET url` (or `POST` of a JSON body), expecting a status (200 unless changed) and optionally
/// a JSON field value.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    uri: Uri,
    post: Option<serde_json::Value>,
    status: StatusCode,
    field: Option<(String, serde_json::Value)>,
}

impl HttpProbe {
    /// A probe for an `http://host:port/path` URL, expecting `200 OK`.
    pub fn get(url: &str) -> Result<Self, ProbeError> {
        let invalid =
            |reason: String| ProbeError::InvalidAddress { what: "http URL", input: url.into(), reason };
        let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid("only http:// is supported".into()));
        }
        if uri.host().is_none() {
            return Err(invalid("it names no host".into()));
        }
        Ok(Self { uri, post: None, status: StatusCode::OK, field: None })
    }

    /// A probe that POSTs `body` as JSON to an `http://` URL (an API that answers only POSTs,
    /// such as etcd's gRPC gateway), expecting `200 OK`.
    pub fn post(url: &str, body: serde_json::Value) -> Result<Self, ProbeError> {
        Ok(Self { post: Some(body), ..Self::get(url)? })
    }

    /// Expects `status` instead of 200.
    pub fn status(mut self, status: u16) -> Self {
        self.status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        self
    }

    /// Also expects the JSON body's field at `pointer` (RFC 6901, e.g. `/checks/schema`) to equal `value`.
    pub fn json_field(mut self, pointer: &str, value: impl Into<serde_json::Value>) -> Self {
        self.field = Some((pointer.to_string(), value.into()));
        self
    }

    async fn fetch(&self) -> Result<(StatusCode, Bytes), String> {
        let host = self.uri.host().expect("checked when built");
        let port = self.uri.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| crate::error_chain(&e))?;
        let driver = tokio::spawn(conn);
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let builder = match &self.post {
            None => Request::get(path),
            Some(_) => Request::post(path).header(http::header::CONTENT_TYPE, "application/json"),
        };
        let body = self.post.as_ref().map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = builder
            .header(http::header::HOST, self.uri.authority().expect("has a host").as_str())
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| crate::error_chain(&e))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| crate::error_chain(&e))?.to_bytes();
        driver.abort();
        Ok((status, body))
    }
}

impl Probe for HttpProbe {
    fn name(&self) -> String {
        let method = if self.post.is_some() { "POST" } else { "GET" };
        format!("http {method} {}", self.uri)
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            let (status, body) = match self.fetch().await {
                Ok(r) => r,
                Err(reason) => return Status::NotYet(reason),
            };
            if status != self.status {
                return Status::NotYet(format!(
                    "answered {status} (want {}): {}",
                    self.status,
                    excerpt(&body)
                ));
            }
            let Some((pointer, want)) = &self.field else { return Status::Ready };
            let json: serde_json::Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return Status::NotYet(format!("body is not JSON ({e}): {}", excerpt(&body))),
            };
            match json.pointer(pointer) {
                Some(got) if got == want => Status::Ready,
                Some(got) => Status::NotYet(format!("{pointer} is {got} (want {want})")),
                None => Status::NotYet(format!("{pointer} is missing from {}", excerpt(&body))),
            }
        })
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(EXCERPT) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}
