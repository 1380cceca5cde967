//! Authentication and authorization on `/api/v1/*`, as the service does it since early 2026
//! (`pkg/shared/auth/middleware.go`): a Bearer token, checked with a TokenReview, then one
//! SubjectAccessReview per verb the route needs, for the reviewed user alone (no groups), in
//! the service's namespace, on resource `services` named `data-storage-service`.
//!
//! - every call needs `get`; POSTs that write audit data (events, batches, notifications,
//!   verify-chain, reconstruct) also need `create`; legal-hold changes also `update`;
//! - failures are RFC 7807 documents of type `about:blank`: 401 for a missing header, a header
//!   without `Bearer `, an empty token or one that does not authenticate; 403 "Insufficient
//!   permissions"; 500 when a review cannot be made (the cause goes to the log only);
//! - client-sent `X-Auth-Request-User` and `Impersonate-*` headers are dropped, and
//!   `X-Auth-Request-User` is set to the reviewed user.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};

/// The resource every client is authorized against.
pub const RESOURCE: &str = "services";
/// Its name: the Service clients reach DataStorage through.
pub const RESOURCE_NAME: &str = "data-storage-service";
/// The header carrying the authenticated user to the handlers.
pub const USER_HEADER: &str = "x-auth-request-user";
/// Where a pod finds its namespace when `POD_NAMESPACE` is unset.
const SA_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Why authentication could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Neither `KUBECONFIG` nor an in-cluster ServiceAccount.
    #[error(
        "no Kubernetes client: KUBECONFIG is not set and this is not a pod ({0}); DataStorage reviews \
         every token with the API server (run it with --auth off to serve without authentication)"
    )]
    NoClient(String),
    /// The kubeconfig does not load.
    #[error("KUBECONFIG {path}: {reason}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The reviews' client and the namespace access is checked in.
#[derive(Clone)]
pub struct Reviewer {
    client: kube::Client,
    namespace: String,
}

impl Reviewer {
    /// A reviewer with `client`, checking access in `namespace`.
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> Self {
        Self { client, namespace: namespace.into() }
    }

    /// As the service starts: a client from `KUBECONFIG`, else the in-cluster configuration;
    /// the namespace from `POD_NAMESPACE`, else the ServiceAccount's namespace file, else `default`.
    pub async fn from_env() -> Result<Self, SetupError> {
        let config = match std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty()) {
            Some(path) => {
                let bad = |reason: String| SetupError::Kubeconfig { path: path.clone(), reason };
                let file = kube::config::Kubeconfig::read_from(&path).map_err(|e| bad(e.to_string()))?;
                kube::Config::from_custom_kubeconfig(file, &Default::default())
                    .await
                    .map_err(|e| bad(e.to_string()))?
            }
            None => kube::Config::incluster().map_err(|e| SetupError::NoClient(e.to_string()))?,
        };
        let client = kube::Client::try_from(config).map_err(|e| SetupError::NoClient(e.to_string()))?;
        Ok(Self::new(client, namespace()))
    }

    /// The namespace access is checked in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

fn namespace() -> String {
    if let Some(ns) = std::env::var("POD_NAMESPACE").ok().filter(|v| !v.is_empty()) {
        return ns;
    }
    std::fs::read_to_string(SA_NAMESPACE_FILE)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// The verbs a request needs, `get` first.
pub fn verbs(method: &Method, path: &str) -> Vec<&'static str> {
    let mut verbs = vec!["get"];
    let path = path.trim_end_matches('/');
    let writes_audit = matches!(
        path,
        "/api/v1/audit/events"
            | "/api/v1/audit/events/batch"
            | "/api/v1/audit/notifications"
            | "/api/v1/audit/verify-chain"
    ) || (path.starts_with("/api/v1/audit/remediation-requests/")
        && path.ends_with("/reconstruct"));
    if method == Method::POST && writes_audit {
        verbs.push("create");
    }
    let legal_hold = path == "/api/v1/audit/legal-hold" || path.starts_with("/api/v1/audit/legal-hold/");
    if legal_hold && (method == Method::POST || method == Method::DELETE) {
        verbs.push("update");
    }
    verbs
}

/// An RFC 7807 document of type `about:blank`, as the middleware writes them.
fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail});
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

fn unauthorized(detail: &str) -> Response {
    problem(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
}

/// Drops what a client must not set itself: the user header and impersonation.
fn strip(req: &mut Request) {
    let names: Vec<_> = req
        .headers()
        .keys()
        .filter(|k| k.as_str() == USER_HEADER || k.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for name in names {
        req.headers_mut().remove(name);
    }
}

/// The token of an `Authorization` header, or the 401's detail. HTTP trims the value's
/// surrounding whitespace before it gets here, so `Bearer ` arrives as `Bearer`: an invalid
/// format, as the service answers it too.
pub fn bearer(value: Option<&[u8]>) -> Result<&str, &'static str> {
    let value = value.ok_or("Missing Authorization header")?;
    let token = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("Invalid Authorization header format")?;
    match token.trim() {
        "" => Err("Empty Bearer token"),
        token => Ok(token),
    }
}

/// The middleware: authenticates, authorizes, then passes the request on with the user set.
pub async fn middleware(State(reviewer): State<Arc<Reviewer>>, mut req: Request, next: Next) -> Response {
    strip(&mut req);
    let token = match bearer(req.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes)) {
        Ok(token) => token.to_string(),
        Err(detail) => return unauthorized(detail),
    };
    let review = TokenReview {
        spec: TokenReviewSpec { token: Some(token), ..Default::default() },
        ..Default::default()
    };
    let user = match Api::<TokenReview>::all(reviewer.client.clone())
        .create(&PostParams::default(), &review)
        .await
    {
        Ok(answer) => match answer.status {
            Some(s) if s.authenticated == Some(true) => s.user.and_then(|u| u.username).unwrap_or_default(),
            _ => return unauthorized("Invalid or expired token"),
        },
        Err(e) => {
            tracing::error!(error = %e, path = %req.uri().path(), "token review failed");
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "Authentication service unavailable",
            );
        }
    };
    for verb in verbs(req.method(), req.uri().path()) {
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.clone()),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(reviewer.namespace.clone()),
                    group: Some(String::new()),
                    resource: Some(RESOURCE.into()),
                    name: Some(RESOURCE_NAME.into()),
                    verb: Some(verb.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        match Api::<SubjectAccessReview>::all(reviewer.client.clone())
            .create(&PostParams::default(), &sar)
            .await
        {
            Ok(answer) if answer.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => {
                tracing::info!(%user, verb, path = %req.uri().path(), "authorization denied");
                return problem(StatusCode::FORBIDDEN, "Forbidden", "Insufficient permissions");
            }
            Err(e) => {
                tracing::error!(error = %e, %user, "access review failed");
                return problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                    "Authorization service unavailable",
                );
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(&user) {
        req.headers_mut().insert(USER_HEADER, value);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_needs_get_and_writes_need_more() {
        assert_eq!(verbs(&Method::GET, "/api/v1/audit/events"), ["get"]);
        assert_eq!(verbs(&Method::POST, "/api/v1/audit/events"), ["get", "create"]);
        assert_eq!(verbs(&Method::POST, "/api/v1/audit/events/batch"), ["get", "create"]);
        assert_eq!(
            verbs(&Method::POST, "/api/v1/audit/remediation-requests/rr-1/reconstruct"),
            ["get", "create"]
        );
        assert_eq!(verbs(&Method::POST, "/api/v1/audit/legal-hold"), ["get", "update"]);
        assert_eq!(verbs(&Method::DELETE, "/api/v1/audit/legal-hold/c-1"), ["get", "update"]);
        assert_eq!(verbs(&Method::GET, "/api/v1/audit/legal-hold"), ["get"]);
        assert_eq!(verbs(&Method::POST, "/api/v1/audit/export"), ["get"]);
    }

    #[test]
    fn the_header_is_read_as_the_service_reads_it() {
        assert_eq!(bearer(None), Err("Missing Authorization header"));
        assert_eq!(bearer(Some(b"Basic dXNlcjpwdw==")), Err("Invalid Authorization header format"));
        assert_eq!(bearer(Some(b"bearer abc")), Err("Invalid Authorization header format"));
        assert_eq!(bearer(Some(b"Bearer")), Err("Invalid Authorization header format"));
        assert_eq!(bearer(Some(b"Bearer \t ")), Err("Empty Bearer token"));
        assert_eq!(bearer(Some(b"Bearer abc.def")), Ok("abc.def"));
    }

    #[test]
    fn a_client_cannot_name_its_own_user_or_impersonate() {
        let mut req = Request::builder()
            .uri("/api/v1/audit/events")
            .header("X-Auth-Request-User", "admin")
            .header("Impersonate-User", "admin")
            .header("Impersonate-Extra-Scopes", "all")
            .header("Accept", "application/json")
            .body(axum::body::Body::empty())
            .unwrap();
        strip(&mut req);
        let left: Vec<_> = req.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }
}
