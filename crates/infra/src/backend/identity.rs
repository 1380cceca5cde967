//! DataStorage's identity and its clients' tokens, put on an API server: the local backend's
//! own (envtest) or the cluster a Kubernetes backend runs DataStorage in. One path for both, so
//! that what a test authenticates with locally is what it authenticates with on a cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::failure;
use super::kube::{apply_object, error_chain};
use crate::kubernetes::Object;
use crate::runner::StepFailure;

/// How long a client's token is valid: longer than any kept environment is used, short enough
/// to be worthless once it is gone.
pub const TOKEN_SECONDS: i64 = 24 * 3600;

/// Server-side applies `objects` in order; an error names the object and the API's answer.
pub(crate) async fn put(client: &kube::Client, objects: &[Object]) -> Result<(), StepFailure> {
    for object in objects {
        apply_object(client, object)
            .await
            .map_err(|e| failure(format!("applying {}: {}", object.id(), error_chain(&e))))?;
    }
    Ok(())
}

/// On an API server of the run's own (envtest, or its containers): namespace `namespace`,
/// DataStorage's identity in it, a ServiceAccount bound to `data-storage-client` for each of
/// `clients`, and a token for each of them and for DataStorage, in `dir/tokens`.
pub(crate) async fn provision(
    run: &crate::run::Run,
    client: &kube::Client,
    namespace: &str,
    clients: &[String],
    dir: &Path,
) -> Result<BTreeMap<String, PathBuf>, StepFailure> {
    let identity = datastorage::rbac::identity(namespace);
    let mut objects = vec![crate::kubernetes::namespace(namespace, &run.id())];
    objects.extend(crate::kubernetes::identity_objects(&run.id(), &identity, clients, None));
    put(client, &objects).await?;
    let everyone =
        std::iter::once(datastorage::rbac::SERVICE_ACCOUNT.to_string()).chain(clients.iter().cloned());
    tokens(client, namespace, everyone, &dir.join("tokens")).await
}

/// A TokenRequest token for each ServiceAccount of `names` in `namespace`, written 0600 into
/// `dir` under the account's name; the value itself is never returned, printed or logged.
pub(crate) async fn tokens(
    client: &kube::Client,
    namespace: &str,
    names: impl IntoIterator<Item = String>,
    dir: &Path,
) -> Result<BTreeMap<String, PathBuf>, StepFailure> {
    let mut files = BTreeMap::new();
    for name in names {
        let value =
            envtest::identity::token(client, namespace, &name, TOKEN_SECONDS).await.map_err(failure)?;
        let path = dir.join(&name);
        procs::write_file(&path, value.as_bytes(), 0o600).map_err(failure)?;
        files.insert(name, path);
    }
    Ok(files)
}
