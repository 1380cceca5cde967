//! A service rendered as Kubernetes objects (k8s-openapi values), for the kind and cluster
//! backends: the same [`Service`] the local and podman backends start, so a component is still
//! defined once. Config files become a ConfigMap and secret files a Secret, each mounted
//! read-only at the path the service expects; readiness and liveness probes follow from the
//! endpoint kind.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::core::v1::{Capabilities, ResourceRequirements, SecurityContext};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, ExecAction,
    HTTPGetAction, Namespace, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Secret as SecretObject,
    SecretVolumeSource, Service as ServiceObject, ServicePort, ServiceSpec, TCPSocketAction, Volume,
    VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::error::InfraError;
use crate::model::{EndpointSpec, File, FileKind, Service};

/// The label every object of a run carries, as containers carry it on podman.
pub const RUN_LABEL: &str = "xtask.run";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "xtask";
/// Written out on every port: the protocol is a key of the ports lists, and Kubernetes 1.20's
/// server-side apply refuses an element without it ("associative list with keys has an element
/// that omits key field \"protocol\"") where later releases default it.
pub const TCP: &str = "TCP";

/// One object to apply, typed.
// A run has a dozen objects, so their size does not matter; the biggest is boxed anyway.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// The run's namespace.
    Namespace(Namespace),
    /// A service's secret files.
    Secret(SecretObject),
    /// A service's config files.
    ConfigMap(ConfigMap),
    /// A service's pods.
    Deployment(Box<Deployment>),
    /// A service's stable address in the namespace.
    Service(ServiceObject),
    /// An identity a workload runs as or a client calls with.
    ServiceAccount(ServiceAccount),
    /// Permissions across the cluster (DataStorage's to review tokens, its clients').
    ClusterRole(ClusterRole),
    /// Gives a ClusterRole to DataStorage's ServiceAccount.
    ClusterRoleBinding(ClusterRoleBinding),
    /// Gives the client role to a client's ServiceAccount in DataStorage's namespace.
    RoleBinding(RoleBinding),
}

impl Object {
    /// `Kind/name`, for plans and errors.
    pub fn id(&self) -> String {
        let (kind, meta) = match self {
            Object::Namespace(o) => ("Namespace", &o.metadata),
            Object::Secret(o) => ("Secret", &o.metadata),
            Object::ConfigMap(o) => ("ConfigMap", &o.metadata),
            Object::Deployment(o) => ("Deployment", &o.metadata),
            Object::Service(o) => ("Service", &o.metadata),
            Object::ServiceAccount(o) => ("ServiceAccount", &o.metadata),
            Object::ClusterRole(o) => ("ClusterRole", &o.metadata),
            Object::ClusterRoleBinding(o) => ("ClusterRoleBinding", &o.metadata),
            Object::RoleBinding(o) => ("RoleBinding", &o.metadata),
        };
        format!("{kind}/{}", meta.name.as_deref().unwrap_or_default())
    }

    /// Its metadata, to label it or give it an owner.
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Namespace(o) => &mut o.metadata,
            Object::Secret(o) => &mut o.metadata,
            Object::ConfigMap(o) => &mut o.metadata,
            Object::Deployment(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::ServiceAccount(o) => &mut o.metadata,
            Object::ClusterRole(o) => &mut o.metadata,
            Object::ClusterRoleBinding(o) => &mut o.metadata,
            Object::RoleBinding(o) => &mut o.metadata,
        }
    }

    /// Whether it lives outside any namespace, so that removing the run's namespace does not
    /// remove it.
    pub fn cluster_scoped(&self) -> bool {
        matches!(self, Object::Namespace(_) | Object::ClusterRole(_) | Object::ClusterRoleBinding(_))
    }

    /// The object as YAML, secret values replaced by `<redacted>`, for `--dry-run --render`.
    pub fn to_redacted_yaml(&self) -> Result<String, InfraError> {
        let yaml = |r: Result<String, serde_saphyr::ser::Error>| {
            r.map_err(|e| InfraError::Model(format!("{}: rendering YAML: {e}", self.id())))
        };
        match self {
            Object::Namespace(o) => yaml(serde_saphyr::to_string(o)),
            Object::Secret(o) => {
                // Keys stay (they say which files exist); values become a readable marker.
                let mut o = o.clone();
                let keys = o.data.take().unwrap_or_default().into_keys();
                o.string_data = Some(keys.map(|k| (k, "<redacted>".to_string())).collect());
                yaml(serde_saphyr::to_string(&o))
            }
            Object::ConfigMap(o) => yaml(serde_saphyr::to_string(o)),
            Object::Deployment(o) => yaml(serde_saphyr::to_string(o)),
            Object::Service(o) => yaml(serde_saphyr::to_string(o)),
            Object::ServiceAccount(o) => yaml(serde_saphyr::to_string(o)),
            Object::ClusterRole(o) => yaml(serde_saphyr::to_string(o)),
            Object::ClusterRoleBinding(o) => yaml(serde_saphyr::to_string(o)),
            Object::RoleBinding(o) => yaml(serde_saphyr::to_string(o)),
        }
    }
}

fn labels(run: &str, component: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("app.kubernetes.io/managed-by".to_string(), FIELD_MANAGER.to_string()),
        (RUN_LABEL.to_string(), run.to_string()),
    ]);
    if let Some(c) = component {
        l.insert("app.kubernetes.io/name".into(), c.into());
    }
    l
}

fn meta(name: &str, namespace: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels),
        ..Default::default()
    }
}

/// DataStorage's identity and, for each of `clients`, a ServiceAccount bound to its client role,
/// labelled as the run's. With `owner` (the run's Namespace), the cluster-wide objects are
/// owned by it, so that the garbage collector removes them with the namespace, also when the
/// run is removed by hand (`kubectl delete namespace`).
pub fn identity_objects(
    run: &str,
    identity: &datastorage::rbac::Identity,
    clients: &[String],
    owner: Option<&OwnerReference>,
) -> Vec<Object> {
    let mut objects = vec![
        Object::ServiceAccount(identity.service_account.clone()),
        Object::ClusterRole(identity.auth_role.clone()),
        Object::ClusterRoleBinding(identity.auth_binding.clone()),
        Object::ClusterRole(identity.client_role.clone()),
    ];
    for name in clients {
        let (account, binding) = identity.client(name);
        objects.push(Object::ServiceAccount(account));
        objects.push(Object::RoleBinding(binding));
    }
    for object in &mut objects {
        let cluster_scoped = object.cluster_scoped();
        let meta = object.metadata_mut();
        meta.labels.get_or_insert_default().extend(labels(run, None));
        if let (true, Some(owner)) = (cluster_scoped, owner) {
            meta.owner_references = Some(vec![owner.clone()]);
        }
    }
    objects
}

/// DataStorage's identity in a run's namespace `ns` on a cluster: the cluster-wide objects named
/// after the namespace, since several runs may share the cluster.
pub fn cluster_identity(ns: &str) -> datastorage::rbac::Identity {
    datastorage::rbac::identity(ns).scoped(ns)
}

/// The run's namespace.
pub fn namespace(name: &str, run: &str) -> Object {
    Object::Namespace(Namespace { metadata: meta(name, None, labels(run, None)), ..Default::default() })
}

/// A service's objects: its ConfigMap and Secret (when it has such files), Deployment and
/// Service, in the order they are applied; for `kube-api`, what goes on the cluster's own API. `image` is the reference the cluster pulls or was
/// loaded with.
pub fn service_objects(
    namespace: &str,
    run: &str,
    component: &str,
    service: &Service,
    image: &str,
) -> Result<Vec<Object>, InfraError> {
    if let EndpointSpec::KubeApi { clients, .. } = &service.endpoint {
        // The cluster is the API: what goes on it is DataStorage's identity and its clients.
        return Ok(identity_objects(run, &cluster_identity(namespace), clients, None));
    }
    let labels = labels(run, Some(component));
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_string(), component.to_string())]);
    let mut objects = Vec::new();
    let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
    // The component's own ConfigMap and Secret first, then each group's Secret of its own.
    type Group<'a> = ((FileKind, Option<String>), Vec<&'a File>);
    let mut groups: Vec<Group> = Vec::new();
    for f in &service.files {
        let key = (f.kind, f.group.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, files)) => files.push(f),
            None => groups.push((key, vec![f])),
        }
    }
    groups.sort_by_key(|((kind, group), _)| (group.is_some(), *kind == FileKind::Secret, group.clone()));
    for ((kind, group), files) in groups {
        let suffix = match kind {
            FileKind::Config => "config",
            FileKind::Secret => "secrets",
        };
        let (name, volume) = match &group {
            Some(group) => (group.clone(), group.clone()),
            None => (format!("{component}-{suffix}"), suffix.to_string()),
        };
        let mut data = BTreeMap::new();
        for f in &files {
            let key = f.name().to_string();
            if key.is_empty() || data.insert(key.clone(), f.contents.clone()).is_some() {
                return Err(InfraError::Model(format!(
                    "{component}: two {suffix} files named `{key}` in {name}; a {} needs unique file names",
                    if kind == FileKind::Config { "ConfigMap" } else { "Secret" }
                )));
            }
            mounts.push(VolumeMount {
                name: volume.clone(),
                mount_path: f.path.display().to_string(),
                sub_path: Some(key),
                read_only: Some(true),
                ..Default::default()
            });
        }
        match kind {
            FileKind::Config => {
                volumes.push(Volume {
                    name: volume,
                    config_map: Some(ConfigMapVolumeSource { name: name.clone(), ..Default::default() }),
                    ..Default::default()
                });
                objects.push(Object::ConfigMap(ConfigMap {
                    metadata: meta(&name, Some(namespace), labels.clone()),
                    data: Some(data),
                    ..Default::default()
                }));
            }
            FileKind::Secret => {
                volumes.push(Volume {
                    name: volume,
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(name.clone()),
                        default_mode: Some(0o444),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                // A certificate and its key: the type that tells tools (and people) what it is.
                let tls = data.len() == 2 && data.contains_key("tls.crt") && data.contains_key("tls.key");
                objects.push(Object::Secret(SecretObject {
                    metadata: meta(&name, Some(namespace), labels.clone()),
                    data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
                    type_: Some(if tls { "kubernetes.io/tls" } else { "Opaque" }.into()),
                    ..Default::default()
                }));
            }
        }
    }
    // Clients in the cluster find the CA of its TLS where the monorepo's do.
    if let EndpointSpec::Http { ca: Some(ca), .. } = &service.endpoint {
        objects.push(Object::ConfigMap(ConfigMap {
            metadata: meta(datastorage::CA_CONFIG_MAP, Some(namespace), labels.clone()),
            data: Some(BTreeMap::from([(datastorage::certs::CA_FILE.to_string(), ca.clone())])),
            ..Default::default()
        }));
    }
    if let Some(data) = &service.data {
        // An emptyDir lives as long as the pod: a restarted container finds its data again.
        volumes.push(Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "data".into(),
            mount_path: data.display().to_string(),
            ..Default::default()
        });
    }
    let port = i32::from(service.port);
    let (readiness, liveness) = probes(service, port)?;
    let run_as_user = match service.user.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(uid)) => Some(uid),
        Some(Err(_)) => {
            return Err(InfraError::Model(format!(
                "{component}: user `{}` must be numeric for Kubernetes (runAsUser)",
                service.user.as_deref().unwrap_or_default()
            )));
        }
    };
    let container = Container {
        name: component.into(),
        image: Some(image.into()),
        // A loaded image must never be pulled, and a pulled one only when missing.
        image_pull_policy: Some("IfNotPresent".into()),
        args: (!service.args.is_empty()).then(|| service.args.clone()),
        env: (!service.env.is_empty()).then(|| {
            service
                .env
                .iter()
                .map(|(k, v)| EnvVar { name: k.clone(), value: Some(v.clone()), ..Default::default() })
                .collect()
        }),
        ports: Some(
            std::iter::once(ContainerPort {
                container_port: port,
                name: Some("service".into()),
                protocol: Some(TCP.into()),
                ..Default::default()
            })
            .chain(service.ports.iter().map(|p| ContainerPort {
                container_port: i32::from(p.port),
                name: Some(p.name.clone()),
                protocol: Some(TCP.into()),
                ..Default::default()
            }))
            .collect(),
        ),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        readiness_probe: Some(readiness),
        liveness_probe: Some(liveness),
        resources: service.production.as_ref().map(|p| {
            let amounts = |cpu: &str, memory: &str| {
                BTreeMap::from([
                    ("cpu".to_string(), Quantity(cpu.into())),
                    ("memory".to_string(), Quantity(memory.into())),
                ])
            };
            ResourceRequirements {
                requests: Some(amounts(&p.cpu_request, &p.memory_request)),
                limits: Some(amounts(&p.cpu_limit, &p.memory_limit)),
                ..Default::default()
            }
        }),
        security_context: service.production.as_ref().map(|p| SecurityContext {
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(p.read_only_root),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    objects.push(Object::Deployment(Box::new(Deployment {
        metadata: meta(component, Some(namespace), labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector { match_labels: Some(selector.clone()), ..Default::default() },
            // One pod with its data at a time: never two PostgreSQL pods during a rollout.
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), ..Default::default() }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels.clone()), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    service_account_name: service.account.clone(),
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    security_context: run_as_user.map(|uid| PodSecurityContext {
                        run_as_user: Some(uid),
                        run_as_non_root: Some(uid != 0),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    })));
    // Named as its clients know it (DataStorage: `data-storage-service`), with every port of the
    // service by name (DataStorage's health and metrics ports too, as the monorepo's Service).
    let service_port = |name: &str, port: i32| ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some(TCP.into()),
        ..Default::default()
    };
    let ports = std::iter::once(service_port("service", port))
        .chain(service.ports.iter().map(|p| service_port(&p.name, i32::from(p.port))))
        .collect();
    objects.push(Object::Service(ServiceObject {
        metadata: meta(service.dns_name(component), Some(namespace), labels),
        spec: Some(ServiceSpec { selector: Some(selector), ports: Some(ports), ..Default::default() }),
        ..Default::default()
    }));
    Ok(objects)
}

/// Readiness and liveness probes for an endpoint kind. The kubelet's probes gate traffic and
/// restarts inside the cluster; xtask's own `wait` probe (a real query, PING after AUTH, GET
/// through a port-forward) still decides when dependents start.
fn probes(service: &Service, port: i32) -> Result<(Probe, Probe), InfraError> {
    let http = |path: &str, port: IntOrString| Probe {
        http_get: Some(HTTPGetAction { path: Some(path.to_string()), port, ..Default::default() }),
        ..Default::default()
    };
    let mut live_action = None;
    let action = match &service.endpoint {
        EndpointSpec::Http { ready_path, ready_port, live_path, .. } => {
            let port = match ready_port {
                None => IntOrString::Int(port),
                Some(name) if service.ports.iter().any(|p| &p.name == name) => {
                    IntOrString::String(name.clone())
                }
                Some(name) => {
                    return Err(InfraError::Model(format!(
                        "readiness port `{name}` is not one of the service's ports"
                    )));
                }
            };
            live_action = live_path.as_deref().map(|path| http(path, port.clone()));
            http(ready_path, port)
        }
        // pg_isready needs no password, so none lands in the pod spec.
        EndpointSpec::Postgres { user, database, .. } => Probe {
            exec: Some(ExecAction {
                command: Some(
                    ["pg_isready", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-d", database]
                        .map(str::to_string)
                        .to_vec(),
                ),
            }),
            ..Default::default()
        },
        EndpointSpec::KubeApi { .. } => {
            return Err(InfraError::Model("kube-api is not a pod: a cluster is its own API".into()));
        }
        // A PING needs the password on redis-cli's command line: a TCP check keeps it out.
        EndpointSpec::Redis { .. } => Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(port), ..Default::default() }),
            ..Default::default()
        },
    };
    let readiness = Probe { period_seconds: Some(1), failure_threshold: Some(3), ..action.clone() };
    let liveness = Probe {
        initial_delay_seconds: Some(10),
        period_seconds: Some(10),
        failure_threshold: Some(6),
        ..live_action.unwrap_or(action)
    };
    Ok((readiness, liveness))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Service {
        Service {
            program: crate::model::Program::Path("/bin/true".into()),
            image: crate::model::Image::Pull("example/svc:1".into()),
            args: vec![],
            env: vec![("CONFIG_PATH".into(), "/etc/svc/config.yaml".into())],
            files: vec![
                File {
                    path: "/etc/svc/config.yaml".into(),
                    contents: "a: 1\n".into(),
                    kind: FileKind::Config,
                    group: None,
                },
                File {
                    path: "/etc/svc/secrets/db.yaml".into(),
                    contents: "pw: hunter2\n".into(),
                    kind: FileKind::Secret,
                    group: None,
                },
            ],
            port: 8080,
            ports: vec![crate::model::NamedPort { name: "health".into(), port: 8081 }],
            endpoint: EndpointSpec::Http {
                ready_path: "/readyz".into(),
                ready_port: Some("health".into()),
                live_path: Some("/healthz".into()),
                ca: None,
            },
            user: Some("65532".into()),
            data: Some("/var/lib/svc".into()),
            service_name: None,
            account: None,
            production: None,
        }
    }

    #[test]
    fn secret_values_are_redacted_in_yaml_but_applied_whole() {
        let objects = service_objects("ns", "run-1", "svc", &service(), "example/svc:1").unwrap();
        let secret = objects.iter().find(|o| matches!(o, Object::Secret(_))).unwrap();
        let Object::Secret(s) = secret else { unreachable!() };
        assert_eq!(s.data.as_ref().unwrap()["db.yaml"].0, b"pw: hunter2\n");
        let yaml = secret.to_redacted_yaml().unwrap();
        assert!(!yaml.contains("hunter2") && !yaml.contains("cHc6IGh1bnRlcjI"), "{yaml}");
        assert!(yaml.contains("db.yaml: <redacted>"), "{yaml}");
    }

    #[test]
    fn the_data_directory_is_a_volume_that_outlives_the_container() {
        let objects = service_objects("ns", "run-1", "svc", &service(), "example/svc:1").unwrap();
        let Some(Object::Deployment(d)) = objects.iter().find(|o| matches!(o, Object::Deployment(_))) else {
            panic!("no Deployment in {objects:?}")
        };
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "data").unwrap();
        assert!(volume.empty_dir.is_some(), "{volume:?}");
        let mounts = pod.containers[0].volume_mounts.as_ref().unwrap();
        let mount = mounts.iter().find(|m| m.name == "data").unwrap();
        assert_eq!(mount.mount_path, "/var/lib/svc");
        assert_eq!(mount.read_only, None, "the service writes its data");
    }

    #[test]
    fn two_files_with_one_name_are_refused() {
        let mut s = service();
        s.files.push(File {
            path: "/other/config.yaml".into(),
            contents: String::new(),
            kind: FileKind::Config,
            group: None,
        });
        let err = service_objects("ns", "r", "svc", &s, "i").unwrap_err();
        assert!(err.to_string().contains("two config files named `config.yaml`"), "{err}");
    }

    #[test]
    fn a_user_name_is_refused_where_kubernetes_needs_a_number() {
        let mut s = service();
        s.user = Some("nobody".into());
        let err = service_objects("ns", "r", "svc", &s, "i").unwrap_err();
        assert!(err.to_string().contains("user `nobody` must be numeric"), "{err}");
    }
}
