//! Identities on an API server: ServiceAccounts, and tokens for them from the TokenRequest API,
//! as the monorepo's end-to-end tests obtain theirs (`serviceaccount.go`).

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::Error;

/// The field manager of what this crate applies.
pub const FIELD_MANAGER: &str = "xtask-envtest";

/// Makes sure ServiceAccount `namespace/name` exists (server-side apply: running it twice is fine).
pub async fn service_account(client: &kube::Client, namespace: &str, name: &str) -> Result<(), Error> {
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&sa))
        .await
        .map_err(Error::kube(format!("applying ServiceAccount {namespace}/{name}")))?;
    Ok(())
}

/// A token for ServiceAccount `namespace/name`, valid `seconds`, for the API server's default
/// audience. The value is a secret: the caller writes it 0600 and never prints it.
pub async fn token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    seconds: i64,
) -> Result<String, Error> {
    let request = TokenRequest {
        spec: TokenRequestSpec { expiration_seconds: Some(seconds), ..Default::default() },
        ..Default::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .map_err(Error::kube(format!("requesting a token for ServiceAccount {namespace}/{name}")))?;
    Ok(answer.status.map(|s| s.token).unwrap_or_default())
}
