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
    let registry = Registry::builtin();
    let suite = infra::suite::load(&infra::suite::path(root(), name), &registry).unwrap();
    let state = RunState { id: format!("{name}-RUN"), backend: "podman".into(), ..Default::default() };
    let run = infra::run::Run::new(root(), suite, registry, Default::default(), state);
    // Container placement: services see each other by name, as in a namespace.
    let plan = Plan::new(&run, &*infra::backend::for_name("podman").unwrap()).unwrap();
    let ns = format!("xtask-{name}-run");
    let mut out = vec![namespace(&ns, &format!("{name}-RUN"))];
    let mut passwords = Vec::new();
    for (component, service) in &plan.services {
        let image = infra::backend::kube::planned_image(&service.image);
        out.extend(service_objects(&ns, &format!("{name}-RUN"), component, service, &image).unwrap());
        match &service.endpoint {
            EndpointSpec::Postgres { password, .. } | EndpointSpec::Redis { password } => {
                passwords.push(password.expose().to_string())
            }
            EndpointSpec::Http { .. } | EndpointSpec::KubeApi { .. } => {}
        }
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
            "Deployment/datastorage",
            "Service/data-storage-service",
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

#[test]
fn objects_survive_a_round_trip_through_the_kubernetes_types() {
    // What `--render` writes must parse back as the same typed objects.
    for o in objects("gateway").0 {
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
