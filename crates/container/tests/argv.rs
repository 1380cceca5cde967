//! The `run` argv rendered from a spec, as snapshots: nothing is executed.

use std::collections::BTreeMap;

use container::{ContainerSpec, Engine, Mount, SecretMount};

fn spec() -> ContainerSpec {
    ContainerSpec {
        name: "xtask-pg-1".into(),
        image: "localhost/xtask/postgres:16".into(),
        network: Some("xtask-net".into()),
        aliases: vec!["postgres".into()],
        labels: BTreeMap::from([
            ("xtask.run".to_string(), "r1".to_string()),
            ("xtask.owner".to_string(), "suite".to_string()),
        ]),
        env: vec![("PGDATA".into(), "/var/lib/postgresql/data".into()), ("TZ".into(), "UTC".into())],
        publish: vec![5432, 9187],
        mounts: vec![Mount {
            source: "/srv/xtask/init".into(),
            target: "/docker-entrypoint-initdb.d".into(),
            read_only: true,
        }],
        secrets: vec![SecretMount {
            secret: "xtask-pg-1-password".into(),
            target: "/run/secrets/pg-password".into(),
            mode: 0o444,
        }],
        user: Some("999:999".into()),
        entrypoint: None,
        args: vec!["postgres".into(), "-c".into(), "log_min_messages=warning".into()],
        locked_down: true,
        read_only: true,
        memory: Some(1 << 30),
        millicpus: Some(500),
    }
}

fn lines(argv: &[String]) -> String {
    argv.join("\n")
}

#[test]
fn run_argv_of_a_full_spec() {
    insta::assert_snapshot!("run_plain", lines(&Engine::new("podman").run_argv(&spec())));
}

#[test]
fn run_argv_with_runtime_and_host_run_args() {
    let engine = Engine::new("podman").with_runtime(Some("runc".into())).with_run_args(
        ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"].map(String::from).to_vec(),
    );
    insta::assert_snapshot!("run_with_host_options", lines(&engine.run_argv(&spec())));
}

#[test]
fn run_argv_of_a_minimal_spec_with_an_entrypoint() {
    let mut spec = ContainerSpec::new("probe", "localhost/busybox:1");
    spec.entrypoint = Some("/bin/busybox".into());
    spec.args = vec!["sleep".into(), "60".into()];
    let argv = Engine::new("docker").run_argv(&spec);
    assert_eq!(
        argv,
        [
            "docker",
            "run",
            "--detach",
            "--name",
            "probe",
            "--entrypoint",
            "/bin/busybox",
            "localhost/busybox:1",
            "sleep",
            "60"
        ]
    );
}
