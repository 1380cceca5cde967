//! The real suites' services rendered as Kubernetes objects: the same component definitions the
//! local and podman backends start, snapshotted as the YAML `--render` will write.

use std::path::Path;

use infra::kubernetes::{Object, namespace, service_objects};
use infra::model::EndpointSpec;
use infra::{Plan, Registry, RunState};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Every object of suite `name`, rendered from the plan's services with in-cluster addresses,
/// and the run's generated passwords.
fn objects(name: &str) -> (Vec<Object>, Vec<String>) {
    objects_with(name, true)
}

/// [`objects`] with the suite's `tls:` setting as given.
fn objects_with(name: &str, tls: bool) -> (Vec<Object>, Vec<String>) {
    let registry = Registry::builtin();
    let mut suite = infra::suite::load(&infra::suite::path(root(), name), &registry).unwrap();
    suite.tls = tls;
    let state = RunState { id: format!("{name}-RUN"), backend: "cluster".into(), ..Default::default() };
    let run = infra::run::Run::new(root(), suite, registry, Default::default(), state);
    // Container placement: services see each other by name, as in a namespace.
    let plan = Plan::new(&run, &*infra::backend::for_name("cluster").unwrap()).unwrap();
    let ns = infra::backend::kube::namespace_name(&run.id());
    let mut out = vec![namespace(&ns, &run.id())];
    let mut passwords = Vec::new();
    for (component, service) in &plan.services {
        match &service.endpoint {
            EndpointSpec::Postgres { password, .. } | EndpointSpec::Redis { password } => {
                passwords.push(password.expose().to_string())
            }
            EndpointSpec::Http { .. } | EndpointSpec::KubeApi { .. } => {}
        }
        let image = infra::backend::kube::planned_image(&service.image);
        out.extend(service_objects(&ns, &run.id(), component, service, &image).unwrap());
    }
    (out, passwords)
}

fn yaml(objects: &[Object]) -> String {
    objects
        .iter()
        .map(|o| format!("# {}\n{}", o.id(), o.to_redacted_yaml().unwrap()))
        .collect::<Vec<_>>()
        .join("---\n")
}

#[test]
fn workflowexecution_objects() {
    let (objects, passwords) = objects("workflowexecution");
    assert_eq!(passwords.len(), 2, "postgres and redis");
    let ids: Vec<String> = objects.iter().map(Object::id).collect();
    assert_eq!(
        ids,
        [
            "Namespace/xtask-workflowexecution-run",
            "ConfigMap/datastorage-config",
            "Secret/datastorage-secrets",
            // The signing pair and the API port's TLS, each from a Secret of its own as the
            // monorepo mounts them, and the CA clients in the namespace verify it with.
            "Secret/datastorage-signing",
            "Secret/datastorage-tls",
            "ConfigMap/inter-service-ca",
            "Deployment/datastorage",
            "Service/data-storage-service",
            // kube-api: the cluster's own API reviews DataStorage's tokens; the cluster-wide
            // objects are named after the run's namespace (runs may share a cluster).
            "ServiceAccount/data-storage-sa",
            "ClusterRole/data-storage-auth-middleware-xtask-workflowexecution-run",
            "ClusterRoleBinding/data-storage-auth-middleware-xtask-workflowexecution-run",
            "ClusterRole/data-storage-client-xtask-workflowexecution-run",
            "ServiceAccount/workflowexecution-e2e-sa",
            "RoleBinding/workflowexecution-e2e-sa-data-storage-client",
            "ServiceAccount/workflowexecution-controller",
            "RoleBinding/workflowexecution-controller-data-storage-client",
            "Secret/postgres-secrets",
            "Deployment/postgres",
            "Service/postgres",
            // redis.conf holds requirepass: a secret file.
            "Secret/redis-secrets",
            "Deployment/redis",
            "Service/redis",
        ]
    );
    // The run's generated passwords reach the Secret objects whole...
    let Some(Object::Secret(pg)) = objects.iter().find(|o| o.id() == "Secret/postgres-secrets") else {
        panic!("no postgres secret")
    };
    assert_eq!(pg.data.as_ref().unwrap()["postgres-password"].0, passwords[0].as_bytes());
    // ...and never the YAML `--render` writes, nor any other object (a ConfigMap, an env var).
    let text = yaml(&objects);
    let shown: String =
        objects.iter().filter(|o| !matches!(o, Object::Secret(_))).map(|o| format!("{o:?}")).collect();
    for pw in &passwords {
        assert!(!text.contains(pw.as_str()), "a password in the rendered YAML:\n{text}");
        assert!(!shown.contains(pw.as_str()), "a password outside a Secret");
    }
    insta::assert_snapshot!("workflowexecution_objects", text);
}

/// TLS is one suite setting: on, DataStorage's API port gets its pair from `datastorage-tls`
/// (type `kubernetes.io/tls`) at `/etc/tls` and clients the CA; off, neither exists and the
/// config names no TLS directory.
#[test]
fn tls_is_one_suite_setting() {
    let deployment = |objects: &[Object]| match objects.iter().find(|o| o.id() == "Deployment/datastorage") {
        Some(Object::Deployment(d)) => d.spec.clone().unwrap().template.spec.unwrap().containers[0].clone(),
        _ => panic!("no DataStorage Deployment"),
    };
    let (on, _) = objects_with("workflowexecution", true);
    let Some(Object::Secret(tls)) = on.iter().find(|o| o.id() == "Secret/datastorage-tls") else {
        panic!("no TLS Secret")
    };
    assert_eq!(tls.type_.as_deref(), Some("kubernetes.io/tls"));
    let keys: Vec<&String> = tls.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["tls.crt", "tls.key"]);
    let mounts: Vec<String> =
        deployment(&on).volume_mounts.unwrap().iter().map(|m| m.mount_path.clone()).collect();
    assert!(mounts.contains(&"/etc/tls/tls.crt".to_string()), "{mounts:?}");
    let Some(Object::ConfigMap(ca)) = on.iter().find(|o| o.id() == "ConfigMap/inter-service-ca") else {
        panic!("no CA ConfigMap")
    };
    assert!(ca.data.as_ref().unwrap()["ca.crt"].contains("tls ca"), "the plan's placeholder CA");

    let (off, _) = objects_with("workflowexecution", false);
    let ids: Vec<String> = off.iter().map(Object::id).collect();
    assert!(
        !ids.iter().any(|id| id.contains("datastorage-tls") || id.contains("inter-service-ca")),
        "{ids:?}"
    );
    let Some(Object::ConfigMap(config)) = off.iter().find(|o| o.id() == "ConfigMap/datastorage-config")
    else {
        panic!("no config")
    };
    let yaml = &config.data.as_ref().unwrap()["config.yaml"];
    assert!(!yaml.contains("/etc/tls"), "no TLS directory in the config:\n{yaml}");
    // The container is hardened either way, with the monorepo's requests and limits.
    let container = deployment(&off);
    let security = container.security_context.unwrap();
    assert_eq!(
        (security.run_as_non_root, security.allow_privilege_escalation, security.read_only_root_filesystem),
        (Some(true), Some(false), Some(true))
    );
    let limits = container.resources.unwrap().limits.unwrap();
    assert_eq!(limits["memory"].0, "1Gi");
}

#[test]
fn objects_survive_a_round_trip_through_the_kubernetes_types() {
    // What `--render` writes must parse back as the same typed objects.
    for o in objects("gateway").0.into_iter().chain(objects("workflowexecution").0) {
        let text = o.to_redacted_yaml().unwrap();
        match &o {
            Object::Deployment(d) => {
                let back: k8s_openapi::api::apps::v1::Deployment = serde_saphyr::from_str(&text).unwrap();
                assert_eq!(&back, &**d);
            }
            Object::Service(s) => {
                let back: k8s_openapi::api::core::v1::Service = serde_saphyr::from_str(&text).unwrap();
                assert_eq!(&back, s);
            }
            Object::ConfigMap(c) => {
                let back: k8s_openapi::api::core::v1::ConfigMap = serde_saphyr::from_str(&text).unwrap();
                assert_eq!(&back, c);
            }
            Object::ServiceAccount(a) => {
                let back: k8s_openapi::api::core::v1::ServiceAccount = serde_saphyr::from_str(&text).unwrap();
                assert_eq!(&back, a);
            }
            Object::ClusterRole(r) => {
                let back: k8s_openapi::api::rbac::v1::ClusterRole = serde_saphyr::from_str(&text).unwrap();
                assert_eq!(&back, r);
            }
            Object::ClusterRoleBinding(b) => {
                let back: k8s_openapi::api::rbac::v1::ClusterRoleBinding =
                    serde_saphyr::from_str(&text).unwrap();
                assert_eq!(&back, b);
            }
            Object::RoleBinding(b) => {
                let back: k8s_openapi::api::rbac::v1::RoleBinding = serde_saphyr::from_str(&text).unwrap();
                assert_eq!(&back, b);
            }
            Object::Namespace(_) | Object::Secret(_) => {}
        }
    }
}

/// The objects `--render` writes are accepted by Kubernetes' own schema (v1.33, what k8s-openapi
/// is built for here), strictly: no unknown field, no wrong type. No API server runs on this
/// machine class, so the schema check uses `kubernetes-validate`, which carries the published
/// OpenAPI schemas (`.ci/install-deps` installs it).
#[test]
fn rendered_objects_pass_kubernetes_schema_validation() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for suite in ["workflowexecution", "gateway"] {
        for (i, o) in objects(suite).0.iter().enumerate() {
            let path = dir.path().join(format!("{suite}-{i}.yaml"));
            std::fs::write(&path, o.to_redacted_yaml().unwrap()).unwrap();
            files.push(path);
        }
    }
    #[allow(clippy::disallowed_methods)]
    let out = std::process::Command::new("kubernetes-validate")
        .args(["-k", "1.33.0", "--strict", "--quiet"])
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("kubernetes-validate: {e}; install it with .ci/install-deps"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
