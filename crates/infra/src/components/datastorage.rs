//! DataStorage: one typed configuration model (crate `datastorage`, the current service's
//! camelCase schema) rendered into a config file plus two secrets files, found through
//! `CONFIG_PATH`; API, health and metrics ports; ready when `GET /readyz` on the health port
//! answers 200, as the monorepo's own manifests probe it.
//!
//! What runs is the reference server by default, or any DataStorage the suite names: a binary
//! for the local backend (`binaries: {datastorage: ...}` or `--binary datastorage=...`), an image
//! to pull (`images:`/`--image`) or to build (`builds:`, e.g. the monorepo's
//! `docker/data-storage.Dockerfile`) for the others. Only the reference server is given
//! `--config`: the real service reads `CONFIG_PATH` alone.

use std::path::{Path, PathBuf};

use crate::error::InfraError;
use crate::model::{
    Component, Ctx, EndpointKind, EndpointSpec, File, FileKind, Image, NamedPort, Placement, Production,
    Program, Service, Workload,
};

/// The workspace package of the reference server the local backend runs and images are built from.
pub const PACKAGE: &str = "datastorage-reference-server";
/// The Containerfile that puts the reference server into an image.
pub const CONTAINERFILE: &str = "manifests/images/datastorage-reference.Containerfile";

/// Where its container finds the Kubernetes API's kubeconfig, CA and its token (podman).
pub const KUBE_API_DIR: &str = "/etc/kube-api";

/// The group of those files (their names in the engine's store start with it).
const KUBE_API_GROUP: &str = "kube-api";

/// The DataStorage service.
pub struct DataStorage;

impl Component for DataStorage {
    fn name(&self) -> &'static str {
        "datastorage"
    }

    fn about(&self) -> &'static str {
        "DataStorage with its rendered config and secrets, ready when /readyz on its health port says 200"
    }

    fn needs(&self) -> &'static [&'static str] {
        &["postgres", "redis", "migrations"]
    }

    fn uses(&self) -> &'static [&'static str] {
        &["kube-api"]
    }

    fn replaceable(&self) -> bool {
        true
    }

    fn env_var(&self) -> Option<&'static str> {
        Some("DATASTORAGE_URL")
    }

    fn workload(&self, ctx: &Ctx<'_>) -> Result<Workload, InfraError> {
        let view = ctx.placement.view();
        let pg = ctx.endpoint("postgres")?;
        let redis = ctx.endpoint("redis")?;
        let EndpointKind::Postgres { user, database, password: db_password } = &pg.kind else {
            return Err(InfraError::Model("datastorage: the postgres endpoint is not PostgreSQL".into()));
        };
        let EndpointKind::Redis { password: redis_password } = &redis.kind else {
            return Err(InfraError::Model("datastorage: the redis endpoint is not Redis".into()));
        };
        let (pg_addr, redis_addr) = (pg.addr(view), redis.addr(view));
        let port = ctx.port.unwrap_or(datastorage::API_PORT);
        let health = ctx.named_port("health", datastorage::HEALTH_PORT);
        let metrics = ctx.named_port("metrics", datastorage::METRICS_PORT);
        // With a Kubernetes API (a suite that lists `kube-api`), DataStorage reviews tokens with
        // it as itself; without one, the reference server serves without authentication.
        let reviews = match ctx.endpoints.get("kube-api").map(|e| &e.kind) {
            Some(EndpointKind::KubeApi { namespace, kubeconfig, inside, .. }) => {
                Some((namespace, kubeconfig.as_ref(), inside.as_ref()))
            }
            _ => None,
        };
        let mut config = datastorage::Config::local(port, pg_addr.port, redis_addr.port);
        config.server.health_port = health;
        config.server.metrics_port = metrics;
        config.database.host = pg_addr.host.clone();
        config.database.name = database.clone();
        config.database.user = user.clone();
        config.redis.addr = redis_addr.to_string();
        let layout = match &ctx.placement {
            Placement::Host { dir } => datastorage::Layout::process(dir),
            Placement::Container => {
                config.server.host = "0.0.0.0".into();
                datastorage::Layout::container()
            }
        };
        let tls = if ctx.suite.tls {
            // Every name clients reach it by: its Service (short, in its namespace, fully
            // qualified) and, through a port-forward or a published port, this machine.
            let service = datastorage::rbac::SERVICE_NAME;
            let namespace = reviews.map_or(crate::components::KUBE_API_NAMESPACE, |(ns, _, _)| ns.as_str());
            let names = vec![
                service.to_string(),
                format!("{service}.{namespace}"),
                format!("{service}.{namespace}.svc"),
                format!("{service}.{namespace}.svc.cluster.local"),
                "localhost".to_string(),
            ];
            Some(ctx.tls(&names, &[std::net::Ipv4Addr::LOCALHOST.into()])?)
        } else {
            None
        };
        let ds = datastorage::DataStorage {
            config,
            credentials: datastorage::Credentials {
                db_username: user.clone(),
                db_password: db_password.expose().to_string(),
                redis_password: redis_password.expose().to_string(),
            },
            signing: ctx.signing_pair()?,
            tls: tls.as_ref().map(|t| t.server.clone()),
        };
        let bundle = ds.render(&layout).map_err(|e| InfraError::Model(format!("datastorage: {e}")))?;
        let mut files: Vec<File> = bundle
            .files
            .iter()
            .map(|f| File {
                path: f.path.clone(),
                contents: f.contents.clone(),
                kind: match f.kind {
                    datastorage::FileKind::Config => FileKind::Config,
                    datastorage::FileKind::Secret => FileKind::Secret,
                },
                // The two pairs, each from a Secret of its own on Kubernetes, as the monorepo mounts them.
                group: if f.path.parent() == Some(&layout.signer_dir) {
                    Some(datastorage::SIGNING_SECRET.into())
                } else if f.path.parent() == Some(&layout.tls_dir) {
                    Some(datastorage::TLS_SECRET.into())
                } else {
                    None
                },
            })
            .collect();
        let name = self.name();
        let (image, reference_image) = match (ctx.images.get(name), ctx.suite.builds.get(name)) {
            (Some(reference), _) => (Image::Pull(reference.clone()), false),
            (None, Some(build)) => (build.clone(), false),
            (None, None) => {
                (Image::Cargo { package: PACKAGE.into(), containerfile: PathBuf::from(CONTAINERFILE) }, true)
            }
        };
        let (program, reference_program) = match ctx.suite.binaries.get(name) {
            Some(path) => (
                Program::Path(
                    runnable(ctx.root, path)
                        .map_err(|why| InfraError::Model(format!("binaries.datastorage: {why}")))?,
                ),
                false,
            ),
            None => (Program::Cargo { package: PACKAGE.into() }, true),
        };
        let reference = match ctx.placement {
            Placement::Host { .. } => reference_program,
            Placement::Container => reference_image,
        };
        // The config path as an argument too lets teardown find a reference server by its run
        // directory; another DataStorage gets none, as its Deployment gives it none.
        let config_path = layout.config_dir.join(datastorage::CONFIG_FILE);
        let mut args =
            if reference { vec!["--config".into(), config_path.display().to_string()] } else { vec![] };
        let mut env = bundle.env;
        let mut account = None;
        match (reviews, &ctx.placement) {
            (Some((namespace, Some(kubeconfig), _)), Placement::Host { .. }) => {
                env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
                env.push(("POD_NAMESPACE".into(), namespace.clone()));
            }
            // In a container beside the API (podman): its kubeconfig, the API's CA and its own
            // token as files of its own, the token a secret.
            (Some((namespace, _, Some(access))), Placement::Container) => {
                let dir = Path::new(KUBE_API_DIR);
                let file = |name: &str, contents: String, kind| File {
                    path: dir.join(name),
                    contents,
                    kind,
                    group: Some(KUBE_API_GROUP.into()),
                };
                let kubeconfig = envtest::kubeconfig::render(
                    "kube-api",
                    &access.server,
                    &dir.join("ca.crt"),
                    datastorage::rbac::SERVICE_ACCOUNT,
                    &envtest::kubeconfig::Auth::TokenFile(dir.join("token")),
                );
                files.push(file("ca.crt", access.ca.clone(), FileKind::Config));
                files.push(file("token", access.token.expose().to_string(), FileKind::Secret));
                files.push(file("kubeconfig", kubeconfig, FileKind::Config));
                env.push(("KUBECONFIG".into(), dir.join("kubeconfig").display().to_string()));
                env.push(("POD_NAMESPACE".into(), namespace.clone()));
            }
            // In the cluster that reviews the tokens: as its own ServiceAccount, whose token the
            // pod mounts, and through the in-cluster configuration, as the monorepo deploys it.
            (Some((namespace, None, None)), Placement::Container) => {
                env.push(("POD_NAMESPACE".into(), namespace.clone()));
                account = Some(datastorage::rbac::SERVICE_ACCOUNT.to_string());
            }
            (_, _) if reference => args.push("--auth=off".into()),
            (_, Placement::Host { .. }) => {
                return Err(InfraError::Model(
                    "datastorage: today's DataStorage reviews every token with a Kubernetes API and does not \
                     start without one: add `kube-api` to the suite's components"
                        .into(),
                ));
            }
            // Another DataStorage in a container without a Kubernetes API to review with: it is
            // run as given, and says itself why it cannot start.
            (_, Placement::Container) => {}
        }
        Ok(Workload::Service(Box::new(Service {
            program,
            image,
            args,
            env,
            files,
            port,
            ports: vec![
                NamedPort { name: "health".into(), port: health },
                NamedPort { name: "metrics".into(), port: metrics },
            ],
            endpoint: EndpointSpec::Http {
                ready_path: datastorage::READY_PATH.into(),
                ready_port: Some("health".into()),
                live_path: Some(datastorage::LIVE_PATH.into()),
                ca: tls.map(|t| t.ca),
            },
            user: None,
            data: None,
            service_name: Some(datastorage::rbac::SERVICE_NAME.into()),
            account,
            // The monorepo's deployment: requests 250m/512Mi, limits 500m/1Gi; its chart runs it
            // non-root on a read-only root filesystem.
            production: Some(Production {
                cpu_request: "250m".into(),
                memory_request: "512Mi".into(),
                cpu_limit: "500m".into(),
                memory_limit: "1Gi".into(),
                read_only_root: true,
            }),
        })))
    }
}

/// A program a suite or flag names, relative to the workspace root, checked to be there and
/// runnable; the error names the full path and what to do.
pub fn runnable(root: &std::path::Path, path: &std::path::Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let full = root.join(path);
    let bad = |why: String| format!("{}: {why}", full.display());
    let meta = std::fs::metadata(&full).map_err(|e| bad(format!("{e} (build it first, or fix the path)")))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(bad("not an executable file".into()));
    }
    Ok(full)
}
