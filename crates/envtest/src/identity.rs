//! Identities on an API server: ServiceAccounts, and tokens for them from the TokenRequest API,
//! as the monorepo's end-to-end tests obtain theirs (`serviceaccount.go`); and the applier
//! that puts objects there.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::Error;

/// The field manager of what this crate applies.
pub const FIELD_MANAGER: &str = "xtask-envtest";

/// Server-side applies `object` (running it twice is fine); `api` is the object's
/// (`Api::namespaced` for a namespaced kind, `Api::all` for a cluster-wide one).
pub async fn apply<K>(api: &Api<K>, object: &K) -> Result<(), Error>
where
    K: Resource + serde::Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object)).await.map_err(
        |cause| {
            let kind = K::kind(&Default::default()).into_owned();
            let what = match &object.meta().namespace {
                Some(ns) => format!("applying {kind} {ns}/{name}"),
                None => format!("applying {kind} {name}"),
            };
            Error::Kube { what, cause }
        },
    )?;
    Ok(())
}

/// Makes sure ServiceAccount `namespace/name` exists.
pub async fn service_account(client: &kube::Client, namespace: &str, name: &str) -> Result<(), Error> {
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    apply(&Api::namespaced(client.clone(), namespace), &sa).await
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
