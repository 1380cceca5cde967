//! What this machine has and which backends can run here, with what to install or configure.

use serde::Serialize;

use crate::components::Registry;

/// One check: what was looked for, what was found, and what to do when it is missing.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was looked for.
    pub what: String,
    /// Whether it is usable.
    pub ok: bool,
    /// What was found (a path, a version) or why not.
    pub found: String,
    /// What to do about it, when not ok.
    pub hint: Option<String>,
}

/// Whether a backend can run here.
#[derive(Debug, Clone, Serialize)]
pub struct BackendCheck {
    /// The backend.
    pub backend: &'static str,
    /// Whether it can run.
    pub ok: bool,
    /// Why not.
    pub missing: Vec<String>,
    /// The one command or setting that makes it run here, when it cannot.
    pub fix: Option<String>,
}

/// Everything `cargo xtask doctor` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Every check.
    pub checks: Vec<Check>,
    /// Every backend.
    pub backends: Vec<BackendCheck>,
}

fn check(what: &str, found: Result<String, String>, hint: &str) -> Check {
    match found {
        Ok(f) => Check { what: what.into(), ok: true, found: f, hint: None },
        Err(e) => Check { what: what.into(), ok: false, found: e, hint: Some(hint.into()) },
    }
}

fn on_path(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Whether Docker Hub's registry answers on 443 (a name that does not resolve answers at once).
fn registry_reachable() -> Result<String, String> {
    use std::net::ToSocketAddrs;
    let host = "registry-1.docker.io:443";
    let addrs = host.to_socket_addrs().map_err(|e| format!("{host}: {e}"))?;
    for addr in addrs {
        if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)).is_ok() {
            return Ok(format!("{host} answers"));
        }
    }
    Err(format!("{host}: no answer within 3 s"))
}

/// The API server of the kubeconfig the cluster backend would use, if it accepts connections.
fn api_server_reachable() -> Result<String, String> {
    use std::net::ToSocketAddrs;
    let path = std::env::var_os("KUBECONFIG")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".kube/config")))
        .ok_or("no KUBECONFIG and no HOME")?;
    if !path.exists() {
        return Err(format!("{}: no such file", path.display()));
    }
    let config =
        kube::config::Kubeconfig::read_from(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let context = config.current_context.clone().unwrap_or_default();
    let cluster = config
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| format!("{}: no current context", path.display()))?;
    let server = config
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .ok_or_else(|| format!("{}: cluster {cluster} has no server", path.display()))?;
    let uri: http::Uri = server.parse().map_err(|e| format!("{}: server {server}: {e}", path.display()))?;
    let host = uri.host().unwrap_or_default().trim_matches(|c| c == '[' || c == ']');
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
    let addrs = (host, port).to_socket_addrs().map_err(|e| format!("{server}: {e}"))?;
    for addr in addrs {
        if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)).is_ok() {
            return Ok(format!("{server} (from {})", path.display()));
        }
    }
    Err(format!("{server} (from {}): no answer", path.display()))
}

/// Looks at this machine.
pub fn examine(registry: &Registry) -> Report {
    let mut checks = vec![
        check(
            "PostgreSQL server binaries (local backend)",
            pgserver::Binaries::locate().map(|b| b.dir().display().to_string()).map_err(|e| e.to_string()),
            "apt-get install postgresql, or set PG_BINDIR",
        ),
        check(
            "redis-server (local backend)",
            redisserver::locate().map(|p| p.display().to_string()).map_err(|e| e.to_string()),
            "apt-get install redis-server, or set REDIS_SERVER",
        ),
    ];
    let engine = container::Engine::from_env();
    let version = engine.version().map_err(|e| e.to_string());
    let engine_ok = version.is_ok();
    checks.push(check(
        &format!("container engine `{}` (podman backend; XTASK_CONTAINER_ENGINE)", engine.program()),
        version,
        "apt-get install podman runc",
    ));
    let runtime = engine.runtime().map(str::to_string);
    checks.push(Check {
        what: "OCI runtime for `run` (XTASK_CONTAINER_RUNTIME)".into(),
        ok: true,
        found: runtime.clone().unwrap_or_else(|| "the engine's default".into()),
        hint: match (runtime, on_path("crun"), on_path("runc")) {
            (None, None, Some(_)) => Some("crun is not installed; podman uses runc".into()),
            _ => None,
        },
    });
    checks.push(Check {
        what: "extra `run` arguments (XTASK_CONTAINER_RUN_ARGS)".into(),
        ok: true,
        found: if engine.run_args().is_empty() { "none".into() } else { engine.run_args().join(" ") },
        hint: Some(
            "if containers fail with \"error setting rlimit\", set XTASK_CONTAINER_RUN_ARGS=\"--ulimit nofile=1024:1024 --ulimit nproc=1024:1024\"".into(),
        ),
    });
    if engine_ok {
        let names = registry.all().map(|c| c.name()).chain([crate::components::ETCD_IMAGE_KEY]);
        for name in names {
            let var = crate::session::image_env(name);
            let Ok(image) = std::env::var(&var) else { continue };
            let present = engine.image_exists(&image).unwrap_or(false);
            checks.push(Check {
                what: format!("image for {name} ({var})"),
                ok: present,
                found: if present { image } else { format!("{image} is not present") },
                hint: (!present).then(|| "build it (e.g. .ci/host-images) or unset the variable".into()),
            });
        }
    }
    // Where the suites' images come from unless named: Docker Hub.
    let pullable = registry_reachable();
    let pull_ok = pullable.is_ok();
    checks.push(check(
        "images can be pulled (podman, kind, cluster; default images from Docker Hub)",
        pullable,
        "on a machine without a registry: .ci/with-env (images built from this machine's binaries), or name local images in XTASK_IMAGE_POSTGRES and XTASK_IMAGE_REDIS (and for kube-api on podman XTASK_IMAGE_ETCD and XTASK_IMAGE_KUBE_API)",
    ));
    let named = |c: &str| std::env::var(crate::session::image_env(c)).is_ok_and(|v| !v.is_empty());
    let images_ok = pull_ok || (named("postgres") && named("redis"));
    // kube-api on podman runs etcd and kube-apiserver from images too.
    let kube_images_ok = pull_ok || (named("kube-api") && named(crate::components::ETCD_IMAGE_KEY));
    let kind_binary = std::env::var(kind::KIND_VAR).ok().filter(|v| !v.trim().is_empty());
    let kind_found = match &kind_binary {
        Some(b) if std::path::Path::new(b).is_file() => Ok(b.clone()),
        Some(b) => on_path(b).map(|p| p.display().to_string()).ok_or_else(|| format!("{b} not found (KIND)")),
        None => on_path("kind").map(|p| p.display().to_string()).ok_or_else(|| "not found".to_string()),
    };
    let kind_ok = kind_found.is_ok();
    checks.push(check(
        "kind (kind backend; KIND)",
        kind_found,
        "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation), or set KIND",
    ));
    let cluster = api_server_reachable();
    let cluster_ok = cluster.is_ok();
    checks.push(check(
        "a cluster's API server (cluster backend; KUBECONFIG, else ~/.kube/config)",
        cluster,
        "set KUBECONFIG (or pass --kubeconfig) to a running cluster's; on this repository's machines: cargo xtask devcluster up, then eval \"$(cargo xtask devcluster env)\"",
    ));
    checks.push(check(
        "etcd + kube-apiserver (kube-api: DataStorage's token reviews on the local backend; KUBEBUILDER_ASSETS)",
        envtest::Assets::find().map(|a| a.dir().display().to_string()).map_err(|e| e.to_string()),
        "cargo xtask devcluster build (once; Kubernetes from Debian's source package), or set KUBEBUILDER_ASSETS to a folder from setup-envtest",
    ));
    let kube_api = checks.len() - 1;
    let kube_api_ok = checks[kube_api].ok;
    let missing = |idx: &[usize]| -> Vec<String> {
        idx.iter().filter(|i| !checks[**i].ok).map(|i| checks[*i].what.clone()).collect()
    };
    let local = missing(&[0, 1, kube_api]);
    let local_fix = match (checks[0].ok && checks[1].ok, kube_api_ok) {
        (true, false) => "cargo xtask devcluster build (or KUBEBUILDER_ASSETS): the suites list kube-api",
        (false, false) => {
            "apt-get install postgresql redis-server (or set PG_BINDIR and REDIS_SERVER), and cargo xtask devcluster build (or KUBEBUILDER_ASSETS)"
        }
        _ => "apt-get install postgresql redis-server (or set PG_BINDIR and REDIS_SERVER)",
    };
    let mut podman = missing(&[2]);
    let pull_what =
        "images: none can be pulled and XTASK_IMAGE_POSTGRES/XTASK_IMAGE_REDIS name none".to_string();
    if !images_ok {
        podman.push(pull_what.clone());
    }
    if !kube_images_ok {
        podman.push(
            "kube-api's images: none can be pulled and XTASK_IMAGE_ETCD/XTASK_IMAGE_KUBE_API name none"
                .into(),
        );
    }
    let mut kind = Vec::new();
    if !kind_ok {
        kind.push("kind".into());
    }
    if !engine_ok {
        kind.push("a container engine (docker or podman)".into());
    }
    if !pull_ok {
        kind.push("a registry to pull kind's node image from".into());
    }
    let mut cluster = Vec::new();
    if !cluster_ok {
        cluster.push("a reachable API server".into());
    }
    if !images_ok {
        cluster.push(pull_what);
    }
    let backend = |backend, missing: Vec<String>, fix: &str| BackendCheck {
        backend,
        ok: missing.is_empty(),
        fix: (!missing.is_empty()).then(|| fix.to_string()),
        missing,
    };
    let backends = vec![
        backend("local", local, local_fix),
        backend(
            "podman",
            podman,
            if engine_ok {
                "run it under .ci/with-env (images built from this machine's binaries)"
            } else {
                "apt-get install podman runc"
            },
        ),
        backend(
            "kind",
            kind,
            if pull_ok {
                "install kind"
            } else {
                "none here (kind pulls its node image): .github/workflows/kind-e2e.yaml runs it; the kind backend's flow runs on the devcluster through .ci/kind-double"
            },
        ),
        backend(
            "cluster",
            cluster,
            "cargo xtask devcluster up, then eval \"$(cargo xtask devcluster env)\" and .ci/with-cluster for the images (or KUBECONFIG to another cluster)",
        ),
    ];
    Report { checks, backends }
}
