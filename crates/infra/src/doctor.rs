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
        for c in registry.all() {
            let var = crate::session::image_env(c.name());
            let Ok(image) = std::env::var(&var) else { continue };
            let present = engine.image_exists(&image).unwrap_or(false);
            checks.push(Check {
                what: format!("image for {} ({var})", c.name()),
                ok: present,
                found: if present { image } else { format!("{image} is not present") },
                hint: (!present).then(|| "build it (e.g. .ci/host-images) or unset the variable".into()),
            });
        }
    }
    for tool in ["kind", "kubectl"] {
        checks.push(check(
            &format!("{tool} (kind backend, not yet built)"),
            on_path(tool).map(|p| p.display().to_string()).ok_or_else(|| "not found".to_string()),
            &format!("install {tool}"),
        ));
    }
    let missing = |idx: &[usize]| -> Vec<String> {
        idx.iter().filter(|i| !checks[**i].ok).map(|i| checks[*i].what.clone()).collect()
    };
    let local = missing(&[0, 1]);
    let podman = missing(&[2]);
    let backends = vec![
        BackendCheck { backend: "local", ok: local.is_empty(), missing: local },
        BackendCheck { backend: "podman", ok: podman.is_empty(), missing: podman },
    ];
    Report { checks, backends }
}
