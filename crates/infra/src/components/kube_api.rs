//! A Kubernetes API for DataStorage to review tokens with, where no cluster runs: etcd and
//! kube-apiserver from `KUBEBUILDER_ASSETS` (crate `envtest`), as the monorepo's integration tier
//! gives DataStorage envtest's API server. On it: DataStorage's identity (`data-storage-sa` and
//! its roles, crate `datastorage`'s `rbac`), and a ServiceAccount bound to `data-storage-client`
//! with a token for the suite's tests (`<suite>-e2e-sa`) and for its controller.
//!
//! A suite that lists it runs DataStorage with authentication; one that does not, without.

use crate::error::InfraError;
use crate::model::{Component, Ctx, EndpointSpec, Image, Program, Service, Workload};

/// The namespace DataStorage runs in on this API (`POD_NAMESPACE`), as the monorepo deploys it.
pub const NAMESPACE: &str = "kubernaut-system";

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
        "a Kubernetes API (etcd + kube-apiserver from KUBEBUILDER_ASSETS) that reviews DataStorage's tokens"
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
            image: Image::Pull("(none: runs on this machine)".into()),
            args: vec![],
            env: vec![],
            files: vec![],
            port: 6443,
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
