//! Against the real engine from `Engine::from_env()`: networks, ports, aliases, secrets, probes.
//!
//! Skipped with a message when the engine is not installed. Hosts that need an OCI runtime or
//! extra `run` arguments say so in XTASK_CONTAINER_RUNTIME and XTASK_CONTAINER_RUN_ARGS. Each test
//! names its objects uniquely and removes them on drop, even when it fails; KEEP=1 leaves them.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use container::{ContainerProbe, ContainerSpec, Engine, Error, Kind, Mount, SecretMount};
use sha2::{Digest, Sha256};
use wait::{Probe, Status, TcpProbe, WaitError};

const BUSYBOX: &str = "/bin/busybox";
const OWNER: &str = "xtask-test.owner";

/// The engine, or `None` (with a message) when it is not installed.
fn engine() -> Option<Engine> {
    let engine = Engine::from_env();
    match engine.version() {
        Ok(_) => Some(engine),
        Err(Error::NotInstalled { program }) => {
            eprintln!("skipping: container engine {program} is not installed");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// A `FROM scratch` image holding busybox, tagged by its recipe and the binary; built once.
static IMAGE: LazyLock<Option<String>> = LazyLock::new(|| {
    let engine = engine()?;
    let Ok(binary) = std::fs::read(BUSYBOX) else {
        eprintln!("skipping: {BUSYBOX} is missing (apt-get install busybox-static)");
        return None;
    };
    let recipe = "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n";
    let digest = format!("{:x}", Sha256::new().chain_update(recipe).chain_update(&binary).finalize());
    let tag = format!("localhost/xtask-test/busybox:{}", &digest[..12]);
    if engine.image_exists(&tag).unwrap() {
        return Some(tag);
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("busybox");
    std::fs::write(&copy, &binary).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let containerfile = dir.path().join("Containerfile");
    std::fs::write(&containerfile, recipe).unwrap();
    engine.build(&tag, &containerfile, dir.path(), &dir.path().join("build.log")).unwrap();
    Some(tag)
});

/// Engine and image, or `None` when the test is to be skipped.
fn setup() -> Option<(Engine, String)> {
    Some((engine()?, IMAGE.clone()?))
}

/// A name no other test or test process uses.
fn unique(what: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!("xtask-test-{}-{}-{what}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Everything a test created, removed on drop (containers first, as they use the rest).
struct Cleanup {
    engine: Engine,
    owner: String,
    containers: Vec<String>,
    networks: Vec<String>,
    secrets: Vec<String>,
}

impl Cleanup {
    fn new(engine: &Engine) -> Self {
        let (engine, owner) = (engine.clone(), unique("owner"));
        Self { engine, owner, containers: vec![], networks: vec![], secrets: vec![] }
    }

    /// The label every object of this test carries.
    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(OWNER.to_string(), self.owner.clone())])
    }

    fn selector(&self) -> String {
        format!("{OWNER}={}", self.owner)
    }

    fn network(&mut self) -> String {
        let name = unique("net");
        self.engine.create_network(&name, &self.labels()).unwrap();
        self.networks.push(name.clone());
        name
    }

    fn secret(&mut self, data: &str) -> String {
        let name = unique("secret");
        self.engine.create_secret(&name, &self.labels(), data.as_bytes()).unwrap();
        self.secrets.push(name.clone());
        name
    }

    fn spec(&self, what: &str, image: &str, args: &[&str]) -> ContainerSpec {
        let mut spec = ContainerSpec::new(unique(what), image);
        spec.labels = self.labels();
        spec.args = args.iter().map(|a| a.to_string()).collect();
        spec
    }

    fn run(&mut self, spec: &ContainerSpec) {
        // Registered first: a failed run can leave a created container behind.
        self.containers.push(spec.name.clone());
        self.engine.run(spec).unwrap();
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::env::var_os("KEEP").is_some() {
            eprintln!("KEEP: leaving {:?} {:?} {:?}", self.containers, self.networks, self.secrets);
            return;
        }
        let e = &self.engine;
        let results = (self.containers.iter().map(|n| (n, e.remove_container(n))))
            .chain(self.networks.iter().map(|n| (n, e.remove_network(n))))
            .chain(self.secrets.iter().map(|n| (n, e.remove_secret(n))));
        for (name, result) in results {
            if let Err(err) = result {
                eprintln!("cleanup of {name}: {err}");
            }
        }
    }
}

/// Waits (with a deadline) for `probe`, returning its failure reason if it failed.
async fn wait(probe: &mut dyn Probe) -> Result<(), String> {
    match wait::wait_for(probe, Duration::from_secs(30)).await {
        Ok(_) => Ok(()),
        Err(WaitError::Failed { reason, diagnosis, .. }) => Err(format!("{reason}\n---\n{diagnosis}")),
        Err(e @ WaitError::TimedOut { .. }) => panic!("{e}\n{}", e.diagnosis()),
    }
}

fn http_get(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn www(dir: &Path, text: &str) -> PathBuf {
    let www = dir.join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), text).unwrap();
    www
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_port_answers_on_the_host_and_an_alias_on_the_network() {
    let Some((engine, image)) = setup() else { return };
    let mut cleanup = Cleanup::new(&engine);
    let network = cleanup.network();
    let dir = tempfile::tempdir().unwrap();
    let www = www(dir.path(), "hello from the web container\n");
    let read_only = Mount { source: www, target: "/www".into(), read_only: true };

    let mut web = cleanup.spec("web", &image, &["httpd", "-f", "-p", "8000", "-h", "/www"]);
    (web.network, web.aliases, web.publish) = (Some(network.clone()), vec!["web".into()], vec![8000]);
    web.mounts.push(read_only.clone());
    cleanup.run(&web);
    let port = engine.host_port(&web.name, 8000).unwrap();
    let mut probe = ContainerProbe::new(engine.clone(), web.name.clone())
        .until(TcpProbe::new(format!("127.0.0.1:{port}")));
    wait(&mut probe).await.unwrap();
    let response = http_get(port);
    assert!(response.ends_with("hello from the web container\n"), "{response}");
    assert!(matches!(engine.host_port(&web.name, 9999), Err(Error::NotPublished { port: 9999, .. })));

    let fetch = "wget -q -O - http://web:8000/ && if touch /www/new 2>/dev/null; then echo writable; fi";
    let mut client = cleanup.spec("client", &image, &["sh", "-c", fetch]);
    client.network = Some(network.clone());
    client.mounts.push(read_only);
    cleanup.run(&client);
    assert_eq!(engine.wait_exit(&client.name).unwrap(), 0, "{}", engine.logs(&client.name, None).unwrap());
    assert_eq!(engine.logs(&client.name, None).unwrap(), "hello from the web container");

    let names = |kind| -> Vec<String> {
        engine.list(kind, &cleanup.selector()).unwrap().into_iter().map(|l| l.name).collect()
    };
    let mut containers = vec![client.name.clone(), web.name.clone()];
    containers.sort();
    assert_eq!(names(Kind::Container), containers);
    assert_eq!(names(Kind::Network), std::slice::from_ref(&network));
    assert!(names(Kind::Secret).is_empty());
    let listed = engine.list(Kind::Network, OWNER).unwrap();
    assert!(listed.iter().any(|l| l.name == network && l.labels.get(OWNER) == Some(&cleanup.owner)));

    assert!(engine.remove_container(&client.name).unwrap());
    assert!(!engine.remove_container(&client.name).unwrap());
    assert!(engine.remove_container(&web.name).unwrap());
    assert!(engine.remove_network(&network).unwrap());
    assert!(!engine.remove_network(&network).unwrap());
    assert_eq!(engine.inspect(&web.name).unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_is_readable_in_the_container_and_shown_nowhere() {
    let Some((engine, image)) = setup() else { return };
    let mut cleanup = Cleanup::new(&engine);
    let value = unique("s3cr3t-value");
    let secret = cleanup.secret(&value);

    let script = "stat -c 'mode %a' /run/secrets/token; cat /run/secrets/token";
    let mut reader = cleanup.spec("reader", &image, &["sh", "-c", script]);
    reader.secrets.push(SecretMount {
        secret: secret.clone(),
        target: "/run/secrets/token".into(),
        mode: 0o444,
    });
    reader.user = Some("65534:65534".into());
    assert!(!engine.run_argv(&reader).join(" ").contains(&value));
    cleanup.run(&reader);
    assert_eq!(engine.wait_exit(&reader.name).unwrap(), 0);
    assert_eq!(engine.logs(&reader.name, None).unwrap(), format!("mode 444\n{value}"));

    let sh = xshell::Shell::new().unwrap();
    let (program, name) = (engine.program(), &reader.name);
    let inspected = xshell::cmd!(sh, "{program} container inspect {name}").quiet().read().unwrap();
    assert!(inspected.contains(&secret) && !inspected.contains(&value));
    let inspected = xshell::cmd!(sh, "{program} secret inspect {secret}").quiet().read().unwrap();
    assert!(inspected.contains(&cleanup.owner) && !inspected.contains(&value));

    let listed = engine.list(Kind::Secret, &cleanup.selector()).unwrap();
    assert_eq!(listed.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), [secret.as_str()]);
    assert_eq!(listed[0].labels, cleanup.labels());

    assert!(engine.remove_container(&reader.name).unwrap());
    assert!(engine.remove_secret(&secret).unwrap());
    assert!(!engine.remove_secret(&secret).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_probe_fails_with_exit_code_and_log_tail_when_the_container_exits() {
    let Some((engine, image)) = setup() else { return };
    let mut cleanup = Cleanup::new(&engine);
    let script = "echo starting; echo 'fatal: no config' >&2; exit 3";
    let failing = cleanup.spec("exits", &image, &["sh", "-c", script]);
    cleanup.run(&failing);
    let mut probe = ContainerProbe::new(engine.clone(), failing.name.clone());
    let reason = wait(&mut probe).await.unwrap_err();
    // podman 4.3 shows `stopped` between the process's exit and its cleanup, then `exited`.
    let expected = |status| {
        format!(
            "container {} is {status}: exit code 3, 0 restarts; last log lines:\nstarting\nfatal: no config\n---\n",
            failing.name
        )
    };
    assert!(reason.starts_with(&expected("exited")) || reason.starts_with(&expected("stopped")), "{reason}");
    assert!(reason.contains("  | fatal: no config"), "the diagnosis has the log tail: {reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_probe_is_ready_for_a_running_container_and_fails_for_a_missing_one() {
    let Some((engine, image)) = setup() else { return };
    let mut cleanup = Cleanup::new(&engine);
    let running = cleanup.spec("sleeps", &image, &["sleep", "600"]);
    cleanup.run(&running);
    let mut probe = ContainerProbe::new(engine.clone(), running.name.clone());
    wait(&mut probe).await.unwrap();
    let state = engine.inspect(&running.name).unwrap().unwrap();
    assert_eq!((state.status.as_str(), state.running, state.exit_code), ("running", true, 0));

    let missing = unique("missing");
    let mut probe = ContainerProbe::new(engine.clone(), missing.clone());
    assert_eq!(probe.check().await, Status::Failed(format!("container {missing} does not exist")));
}

#[test]
fn a_missing_image_that_cannot_be_pulled_is_named() {
    let Some((engine, _)) = setup() else { return };
    let mut cleanup = Cleanup::new(&engine);
    let image = format!("localhost/xtask-test/absent:{}", unique("tag"));
    assert!(!engine.image_exists(&image).unwrap());
    let spec = cleanup.spec("absent", &image, &[]);
    cleanup.containers.push(spec.name.clone());
    let err = engine.run(&spec).unwrap_err().to_string();
    assert!(err.starts_with(&format!("starting container {} from image {image}: `", spec.name)), "{err}");
    let hint = format!("hint: image {image} is not present locally and could not be pulled; build it first");
    assert!(err.ends_with(&hint), "{err}");
}

/// A locked-down spec runs as a production pod does: the root filesystem refuses writes, the
/// process has no capabilities, and the engine holds the memory and CPU limits.
#[tokio::test(flavor = "multi_thread")]
async fn a_locked_down_container_cannot_write_its_root_and_has_no_capabilities() {
    let Some((engine, image)) = setup() else { return };
    let mut cleanup = Cleanup::new(&engine);
    // Exit 3 only when both hold: 10 if the root took a write, 11 if any capability is left.
    let script = "touch /written 2>/dev/null && exit 10; \
                  grep -q '^CapEff:[[:space:]]*0000000000000000$' /proc/self/status || exit 11; exit 3";
    let mut spec = cleanup.spec("locked", &image, &["sh", "-c", script]);
    spec.locked_down = true;
    spec.read_only = true;
    spec.memory = Some(256 << 20);
    spec.millicpus = Some(500);
    cleanup.run(&spec);
    let mut probe = ContainerProbe::new(engine.clone(), spec.name.clone());
    let reason = wait(&mut probe).await.unwrap_err();
    assert!(reason.contains("exit code 3,"), "{reason}");
    let sh = xshell::Shell::new().unwrap();
    let (program, name) = (engine.program(), &spec.name);
    let format = "{{.HostConfig.Memory}}/{{.HostConfig.NanoCpus}}";
    let limits =
        xshell::cmd!(sh, "{program} container inspect --format {format} {name}").quiet().read().unwrap();
    assert_eq!(limits.trim(), format!("{}/{}", 256u64 << 20, 500_000_000));
}
