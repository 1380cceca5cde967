//! The component model's promises: one definition rendered for every backend, and adding a
//! component is local (a new type plus one registration, nothing else touched).

use std::path::Path;

use infra::model::{Component, Ctx, EndpointSpec, Image, Program, Service, Workload};
use infra::{InfraError, Plan, Registry, RunState};

/// A trivial extra component defined outside the crate: an HTTP echo service needing Redis.
struct Echo;

impl Component for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn about(&self) -> &'static str {
        "an echo service"
    }
    fn needs(&self) -> &'static [&'static str] {
        &["redis"]
    }
    fn workload(&self, ctx: &Ctx<'_>) -> Result<Workload, InfraError> {
        let redis = ctx.endpoint("redis")?;
        Ok(Workload::Service(Box::new(Service {
            program: Program::Path("/usr/local/bin/echo-server".into()),
            image: Image::Pull(ctx.image(self.name(), "example.org/echo:1")),
            args: vec![],
            env: vec![("REDIS_ADDR".into(), redis.addr(ctx.placement.view()).to_string())],
            files: vec![],
            port: 9000,
            ports: vec![],
            endpoint: EndpointSpec::Http {
                ready_path: "/ready".into(),
                ready_port: None,
                live_path: None,
                ca: None,
            },
            user: None,
            data: None,
            service_name: None,
            account: None,
            production: None,
        })))
    }
}

fn plan(registry: Registry, body: &str, backend: &str) -> Plan {
    let text = format!("name: s\n{body}test: {{command: [\"true\"]}}\n");
    let suite = infra::suite::parse(&text, Path::new("s.yaml"), &registry).unwrap();
    let state = RunState {
        id: "s-RUN".into(),
        backend: backend.into(),
        dir: "/work/.xtask/runs/s-RUN".into(),
        ..Default::default()
    };
    let run = infra::run::Run::new(Path::new("/work"), suite, registry, Default::default(), state);
    Plan::new(&run, &*infra::backend::for_name(backend).unwrap()).unwrap()
}

#[test]
fn an_extra_component_is_registered_without_touching_the_others() {
    let registry = Registry::builtin().with(Echo);
    let err = infra::suite::parse(
        "name: s\ncomponents: [echo]\ntest: {command: [\"true\"]}\n",
        Path::new("s.yaml"),
        &registry,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "s.yaml:2:1: components: `echo` needs `redis`; add it to the list");
    for backend in ["local", "podman"] {
        let p = plan(registry.clone(), "components: [echo, redis]\n", backend);
        let echo = p.steps.iter().find(|s| s.id == "echo").unwrap();
        assert!(echo.needs.contains(&"redis".to_string()), "{backend}: {:?}", echo.needs);
        let inside = if backend == "podman" { "REDIS_ADDR=redis:6379" } else { "REDIS_ADDR=127.0.0.1:6379" };
        assert!(echo.actions.iter().any(|a| a.contains(inside)), "{backend}: {:?}", echo.actions);
    }
}

#[test]
fn datastorage_is_one_definition_rendered_per_backend() {
    let body = "components: [postgres, redis, migrations, datastorage]\nmigrations: all\n";
    let podman = plan(Registry::builtin(), body, "podman");
    // This machine's engine options (XTASK_CONTAINER_RUNTIME/RUN_ARGS) are configuration, not plan.
    insta::with_settings!({filters => vec![(r" --runtime \S+", ""), (r" --ulimit \S+", "")]}, {
        insta::assert_snapshot!("podman_plan", podman.to_string());
    });
    let local = plan(Registry::builtin(), body, "local");
    insta::assert_snapshot!("local_plan", local.to_string());
    // With authentication: kube-api as two containers from their images, and DataStorage given
    // its kubeconfig, the API's CA and its token (a secret) as files of its own.
    let body = "components: [postgres, redis, migrations, kube-api, datastorage]\nmigrations: all\n";
    let authenticated = plan(Registry::builtin(), body, "podman").to_string();
    let (mut keep, mut steps) = (false, Vec::new());
    for line in authenticated.lines() {
        if !line.starts_with("   ") {
            keep = line.starts_with("  kube-api ") || line.starts_with("  datastorage ");
        }
        if keep {
            steps.push(line);
        }
    }
    insta::with_settings!({filters => vec![(r" --runtime \S+", ""), (r" --ulimit \S+", "")]}, {
        insta::assert_snapshot!("podman_plan_kube_api", steps.join("\n"));
    });
    // No per-run secret appears in any action.
    for p in [&podman, &local] {
        for s in &p.steps {
            for a in &s.actions {
                assert!(!a.contains("requirepass ") || a.contains("secret"), "{a}");
            }
        }
    }
}
