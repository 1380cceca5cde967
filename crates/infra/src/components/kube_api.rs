//! A Kubernetes API for DataStorage to review tokens with, where no cluster runs: etcd and
//! kube-apiserver from `KUBEBUILDER_ASSETS` (crate `envtest`), as the monorepo's integration tier
//! gives DataStorage envtest's API server. On it: DataStorage's identity (`data-storage-sa` and
//! its roles, crate `datastorage`'s `rbac`), and a ServiceAccount bound to `data-storage-client`
//! with a token for the suite's tests (`<suite>-e2e-sa`) and for its controller.
//!
//! A suite that lists it runs DataStorage with authentication; one that does not, without.
//!
//! On podman the same two programs run from their official images (`registry.k8s.io`), one
//! container each on the run's network; on kind and cluster the cluster's own API serves.

use crate::error::InfraError;
use crate::model::{Component, Ctx, EndpointSpec, Image, Program, Service, Workload};

/// The namespace DataStorage runs in on this API (`POD_NAMESPACE`), as the monorepo deploys it.
pub const NAMESPACE: &str = "kubernaut-system";

/// The kube-apiserver image podman runs, unless the suite's `images: {kube-api: REF}`,
/// `--image kube-api=REF` or `XTASK_IMAGE_KUBE_API` names another.
pub const APISERVER_IMAGE: &str = "registry.k8s.io/kube-apiserver:v1.33.1";

/// The etcd image podman runs beside it, unless `XTASK_IMAGE_ETCD` names another.
pub const ETCD_IMAGE: &str = "registry.k8s.io/etcd:3.5.21-0";

/// The key of the etcd image among a run's images (filled from `XTASK_IMAGE_ETCD`).
pub const ETCD_IMAGE_KEY: &str = "etcd";

/// The port kube-apiserver serves on inside a container.
pub const CONTAINER_PORT: u16 = 6443;

/// The etcd image of a run with these images.
pub fn etcd_image(images: &std::collections::BTreeMap<String, String>) -> String {
    images.get(ETCD_IMAGE_KEY).cloned().unwrap_or_else(|| ETCD_IMAGE.to_string())
}

/// The ServiceAccount whose token the suite's tests call DataStorage with.
pub fn tests_account(suite: &str) -> String {
    format!("{suite}-e2e-sa")
}

/// The Kubernetes API component.
pub struct KubeApi;

impl Component for KubeApi {
    fn name(&self) -> &'static str {
        "kube-api"
    }

    fn about(&self) -> &'static str {
        "a Kubernetes API that reviews DataStorage's tokens: etcd + kube-apiserver from KUBEBUILDER_ASSETS (local) or their images (podman), the cluster's own (kind, cluster)"
    }

    fn needs(&self) -> &'static [&'static str] {
        &[]
    }

    fn workload(&self, ctx: &Ctx<'_>) -> Result<Workload, InfraError> {
        let mut clients = vec![tests_account(&ctx.suite.name)];
        if let Some(controller) = &ctx.suite.controller {
            clients.push(controller.deployment.clone());
        }
        Ok(Workload::Service(Box::new(Service {
            program: Program::KubeApi,
            image: Image::Pull(ctx.image(self.name(), APISERVER_IMAGE)),
            args: vec![],
            env: vec![],
            files: vec![],
            port: CONTAINER_PORT,
            ports: vec![],
            endpoint: EndpointSpec::KubeApi { namespace: NAMESPACE.into(), clients },
            user: None,
            data: None,
            service_name: None,
            account: None,
            production: None,
        })))
    }
}
