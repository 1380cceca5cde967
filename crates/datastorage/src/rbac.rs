//! DataStorage's identity and its clients' permissions, as Kubernetes objects: one definition
//! for every backend (applied to a cluster, or to the API server that reviews tokens for a
//! local or podman DataStorage). Shapes and names are the monorepo's
//! (`deploy/data-storage/service-rbac.yaml`, `client-rbac-v2.yaml`, `serviceaccount.go`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The Service clients reach DataStorage through, and the resource name they are authorized on.
pub const SERVICE_NAME: &str = "data-storage-service";
/// DataStorage's own ServiceAccount.
pub const SERVICE_ACCOUNT: &str = "data-storage-sa";
/// The ClusterRole that lets DataStorage review tokens and access.
pub const AUTH_ROLE: &str = "data-storage-auth-middleware";
/// The ClusterRole a client is bound to.
pub const CLIENT_ROLE: &str = "data-storage-client";

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    let labels = BTreeMap::from([
        ("app".to_string(), SERVICE_NAME.to_string()),
        ("authorization".to_string(), "dd-auth-014".to_string()),
    ]);
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(labels),
        ..Default::default()
    }
}

fn rule(group: &str, resources: &[&str], names: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(strings(resources)),
        resource_names: (!names.is_empty()).then(|| strings(names)),
        verbs: strings(verbs),
        ..Default::default()
    }
}

fn service_account_subject(namespace: &str, name: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(namespace.into()),
        ..Default::default()
    }
}

/// What DataStorage in `namespace` needs: its ServiceAccount, the ClusterRole that lets it create
/// TokenReviews and SubjectAccessReviews (and read the workflow catalog) bound to it, and the
/// ClusterRole clients are bound to.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `data-storage-sa`.
    pub service_account: ServiceAccount,
    /// `data-storage-auth-middleware`.
    pub auth_role: ClusterRole,
    /// Binds the auth role to the ServiceAccount.
    pub auth_binding: ClusterRoleBinding,
    /// `data-storage-client`: services / `data-storage-service`.
    pub client_role: ClusterRole,
}

/// DataStorage's identity in `namespace`.
pub fn identity(namespace: &str) -> Identity {
    Identity {
        service_account: ServiceAccount {
            metadata: meta(SERVICE_ACCOUNT, Some(namespace)),
            ..Default::default()
        },
        auth_role: ClusterRole {
            metadata: meta(AUTH_ROLE, None),
            rules: Some(vec![
                rule("authentication.k8s.io", &["tokenreviews"], &[], &["create"]),
                rule("authorization.k8s.io", &["subjectaccessreviews"], &[], &["create"]),
                rule(
                    "kubernaut.ai",
                    &["remediationworkflows", "actiontypes"],
                    &[],
                    &["get", "list", "watch"],
                ),
            ]),
            ..Default::default()
        },
        auth_binding: ClusterRoleBinding {
            metadata: meta(AUTH_ROLE, None),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: AUTH_ROLE.into(),
            },
            subjects: Some(vec![service_account_subject(namespace, SERVICE_ACCOUNT)]),
        },
        client_role: ClusterRole {
            metadata: meta(CLIENT_ROLE, None),
            rules: Some(vec![rule(
                "",
                &["services"],
                &[SERVICE_NAME],
                &["create", "get", "list", "update", "delete"],
            )]),
            ..Default::default()
        },
    }
}

impl Identity {
    /// The same identity with its cluster-wide objects (the two ClusterRoles and the binding)
    /// named `<name>-<suffix>`: on a cluster several runs share, each run's DataStorage is bound
    /// by its own objects, and removing one run's never takes another's permissions away.
    #[must_use]
    pub fn scoped(mut self, suffix: &str) -> Self {
        let rename = |meta: &mut ObjectMeta| {
            meta.name = meta.name.take().map(|n| format!("{n}-{suffix}"));
        };
        rename(&mut self.auth_role.metadata);
        rename(&mut self.auth_binding.metadata);
        rename(&mut self.client_role.metadata);
        self.auth_binding.role_ref.name = self.auth_role.metadata.name.clone().unwrap_or_default();
        self
    }

    /// The namespace DataStorage runs in.
    pub fn namespace(&self) -> &str {
        self.service_account.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// A client's ServiceAccount `name` in DataStorage's namespace, and the RoleBinding
    /// `<name>-data-storage-client` that binds it to this identity's client role.
    pub fn client(&self, name: &str) -> (ServiceAccount, RoleBinding) {
        let namespace = self.namespace();
        let sa = ServiceAccount { metadata: meta(name, Some(namespace)), ..Default::default() };
        let binding = RoleBinding {
            metadata: meta(&format!("{name}-{CLIENT_ROLE}"), Some(namespace)),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: self.client_role.metadata.name.clone().unwrap_or_default(),
            },
            subjects: Some(vec![service_account_subject(namespace, name)]),
        };
        (sa, binding)
    }
}

/// A client's ServiceAccount `name` in `namespace` (DataStorage's), and the RoleBinding
/// `<name>-data-storage-client` that lets it call DataStorage.
pub fn client(namespace: &str, name: &str) -> (ServiceAccount, RoleBinding) {
    identity(namespace).client(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_bound_in_datastorages_namespace_to_the_client_role() {
        let (sa, binding) = client("kubernaut-system", "workflowexecution-controller");
        assert_eq!(sa.metadata.namespace.as_deref(), Some("kubernaut-system"));
        assert_eq!(
            binding.metadata.name.as_deref(),
            Some("workflowexecution-controller-data-storage-client")
        );
        assert_eq!(binding.role_ref.name, CLIENT_ROLE);
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            ("workflowexecution-controller", Some("kubernaut-system"))
        );
    }

    #[test]
    fn a_scoped_identity_binds_its_own_roles_and_its_clients_to_them() {
        let id = identity("xtask-run-1").scoped("xtask-run-1");
        assert_eq!(id.auth_role.metadata.name.as_deref(), Some("data-storage-auth-middleware-xtask-run-1"));
        assert_eq!(id.auth_binding.metadata.name, id.auth_role.metadata.name);
        assert_eq!(Some(&id.auth_binding.role_ref.name), id.auth_role.metadata.name.as_ref());
        let (_, binding) = id.client("tests");
        assert_eq!(binding.role_ref.name, "data-storage-client-xtask-run-1");
        assert_eq!(binding.metadata.namespace.as_deref(), Some("xtask-run-1"));
        // Namespaced objects keep the monorepo's names: the namespace keeps runs apart.
        assert_eq!(id.service_account.metadata.name.as_deref(), Some(SERVICE_ACCOUNT));
        assert_eq!(binding.metadata.name.as_deref(), Some("tests-data-storage-client"));
    }

    #[test]
    fn the_client_role_names_only_the_service() {
        let id = identity("ns");
        let rules = id.client_role.rules.unwrap();
        assert_eq!(rules[0].resource_names.as_deref(), Some(&[SERVICE_NAME.to_string()][..]));
        assert!(
            rules[0].verbs.contains(&"get".to_string()) && rules[0].verbs.contains(&"create".to_string())
        );
        let auth = id.auth_role.rules.unwrap();
        assert_eq!(auth[0].resources.as_deref(), Some(&["tokenreviews".to_string()][..]));
    }
}
