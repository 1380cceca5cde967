//! Failure paths against fake engines: tiny shell scripts that print a known error.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use container::{ContainerSpec, Engine, Error, Kind};

/// The fake engines, all written before any test spawns one: a script written while another
/// thread forks could be held open by the child and fail with "text file busy".
struct Fakes {
    dir: tempfile::TempDir,
}

static FAKES: LazyLock<Fakes> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    std::fs::create_dir(&record).unwrap();
    let scripts = [
        // Every command fails like podman does, with syslog noise around the real error.
        (
            "broken",
            "echo 'failed to connect to syslog: Initialization' >&2\n\
             echo 'Error: something is broken' >&2\n\
             exit 125"
                .to_string(),
        ),
        // `run` fails like runc without the ulimit options on this kind of host.
        (
            "rlimit",
            "echo 'Error: runc: runc create failed: unable to start container process: error during container \
             init: error setting rlimits for ready process: error setting rlimit type 7: operation not \
             permitted: OCI permission denied' >&2\nexit 126"
                .to_string(),
        ),
        // `run` tries to pull a missing image; `image exists` says it is absent.
        (
            "nopull",
            "if [ \"$1\" = image ]; then exit 1; fi\n\
             echo \"Trying to pull localhost/missing:1...\" >&2\n\
             echo 'Error: initializing source docker://localhost/missing:1: pinging container registry \
             localhost: connection refused' >&2\nexit 125"
                .to_string(),
        ),
        // `run` loses its published port to another process once, then succeeds; every `run`
        // and `rm` leaves a line in `portrace.log`.
        (
            "portrace",
            format!(
                "echo \"$1\" >> {0}/portrace.log\n\
                 if [ \"$1\" = run ] && [ ! -e {0}/portrace.once ]; then : > {0}/portrace.once; \
                 echo 'Error: cannot listen on the TCP port: listen tcp4 127.0.0.1:43559: bind: address already in use' >&2; \
                 exit 126; fi\n\
                 echo id",
                record.display()
            ),
        ),
        // `run` loses its published port every time.
        (
            "portbusy",
            format!(
                "echo \"$1\" >> {0}/portbusy.log\n\
                 if [ \"$1\" = run ]; then \
                 echo 'Error: cannot listen on the TCP port: listen tcp4 127.0.0.1:43559: bind: address already in use' >&2; \
                 exit 126; fi\n\
                 echo x",
                record.display()
            ),
        ),
        // Records its arguments and stdin, then succeeds.
        (
            "recorder",
            format!("printf '%s\\n' \"$@\" > {0}/args\ncat > {0}/stdin\necho id", record.display()),
        ),
        // Absent objects, as podman 4.3 reports them.
        (
            "absent",
            "case \"$1 $2\" in\n\
             'container inspect') echo '[]'; echo 'Error: no such container x' >&2; exit 125;;\n\
             'network rm') echo 'Error: unable to find network with name or ID x: network not found' >&2; exit 1;;\n\
             'secret rm') echo 'Error: no secret with name or id \"x\": no such secret' >&2; exit 125;;\n\
             'logs --timestamps') echo 'Error: no container with name or ID \"x\" found: no such container' >&2; exit 125;;\n\
             esac\n\
             exit 0"
                .to_string(),
        ),
    ];
    for (name, body) in scripts {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    Fakes { dir }
});

fn fake(name: &str) -> (Engine, PathBuf) {
    let path = FAKES.dir.path().join(name);
    (Engine::new(path.display().to_string()), FAKES.dir.path().to_path_buf())
}

/// The error text with the temporary directory replaced, for snapshots.
fn redacted(e: &Error, dir: &Path) -> String {
    e.to_string().replace(&dir.display().to_string(), "[fakes]")
}

#[test]
fn a_failed_command_names_its_argv_and_the_end_of_stderr() {
    let (engine, dir) = fake("broken");
    let err = engine.create_network("xtask-net", &BTreeMap::from([("a".into(), "b c".into())])).unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
    insta::assert_snapshot!(redacted(&err, &dir), @"`[fakes]/broken network create --label 'a=b c' xtask-net` failed (exit status: 125): Error: something is broken");
}

#[test]
fn a_published_port_taken_first_is_tried_again_with_the_half_made_container_removed() {
    let (engine, dir) = fake("portrace");
    let mut spec = ContainerSpec::new("c", "img");
    spec.publish = vec![5432];
    assert_eq!(engine.run(&spec).unwrap(), "id");
    let log = std::fs::read_to_string(dir.join("record/portrace.log")).unwrap();
    assert_eq!(log, "run\nrm\nrun\n");

    let (engine, dir) = fake("portbusy");
    let e = engine.run(&spec).unwrap_err().to_string();
    assert!(e.contains("address already in use"), "{e}");
    let log = std::fs::read_to_string(dir.join("record/portbusy.log")).unwrap();
    assert_eq!(log, "run\nrm\nrun\nrm\nrun\n", "three tries, then the error");
}

#[test]
fn a_failed_run_names_container_and_image() {
    let (engine, dir) = fake("broken");
    let err = engine.run(&ContainerSpec::new("xtask-web-1", "localhost/web:1")).unwrap_err();
    insta::assert_snapshot!(redacted(&err, &dir), @"starting container xtask-web-1 from image localhost/web:1: `[fakes]/broken run --detach --name xtask-web-1 localhost/web:1` failed (exit status: 125): Error: something is broken");
}

#[test]
fn a_run_failing_on_rlimits_points_at_the_run_args_variable() {
    let (engine, dir) = fake("rlimit");
    let err = engine.run(&ContainerSpec::new("xtask-web-1", "localhost/web:1")).unwrap_err();
    insta::assert_snapshot!(redacted(&err, &dir));
}

#[test]
fn a_run_of_an_image_that_cannot_be_pulled_says_so() {
    let (engine, _) = fake("nopull");
    let err = engine.run(&ContainerSpec::new("xtask-web-1", "localhost/missing:1")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.ends_with(
            "hint: image localhost/missing:1 is not present locally and could not be pulled; build it first"
        ),
        "{text}"
    );
    assert!(err.stderr().contains("pinging container registry"), "{err:?}");
}

#[test]
fn a_missing_engine_is_not_installed() {
    let err = Engine::new("/nonexistent/podman").version().unwrap_err();
    assert!(matches!(&err, Error::NotInstalled { program } if program == "/nonexistent/podman"), "{err:?}");
    assert_eq!(
        err.to_string(),
        "/nonexistent/podman is not installed: install podman (apt-get install podman runc) or set \
         XTASK_CONTAINER_ENGINE"
    );
    let on_path = Engine::new("xtask-no-such-engine").list(Kind::Container, "a").unwrap_err();
    assert!(matches!(on_path, Error::NotInstalled { .. }), "{on_path:?}");
}

#[test]
fn secret_data_goes_on_stdin_and_never_in_argv() {
    let (engine, dir) = fake("recorder");
    let labels = BTreeMap::from([("owner".to_string(), "test".to_string())]);
    engine.create_secret("pg-password", &labels, b"s3cr3t\nvalue").unwrap();
    let args = std::fs::read_to_string(dir.join("record/args")).unwrap();
    assert_eq!(args, "secret\ncreate\n--label\nowner=test\npg-password\n-\n");
    assert_eq!(std::fs::read(dir.join("record/stdin")).unwrap(), b"s3cr3t\nvalue");
}

#[test]
fn absent_objects_are_none_or_false_not_errors() {
    let (engine, _) = fake("absent");
    assert_eq!(engine.inspect("x").unwrap(), None);
    assert!(!engine.remove_network("x").unwrap());
    assert!(!engine.remove_secret("x").unwrap());
    // `rm --force` of a missing container succeeds without printing the name.
    assert!(!engine.remove_container("x").unwrap());
    assert!(matches!(engine.logs("x", Some(5)), Err(Error::NoSuchContainer { .. })));
    assert!(matches!(engine.host_port("x", 80), Err(Error::NoSuchContainer { .. })));
}
