//! Failure paths against fake `kind` and engine binaries: tiny shell scripts in a temp dir, put
//! first on the child's `PATH` (never this process's, which parallel tests share) or named by path.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use kind::{CreateCluster, Error, Kind, Provider, has_image};

/// All fakes, written before any test spawns one: a script written while another thread forks
/// can be held open by that child, and exec'ing it then fails with "text file busy".
static FAKES: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let noise: String =
        (1..=25).map(|i| format!("echo ' • step {i} of creating the cluster' >&2\n")).collect();
    let scripts = [
        // kind's real failure shape: progress on stderr, then the ERROR line, exit 1.
        (
            "failing/kind",
            format!(
                "echo 'this is stdout and must not reach the error'\n{noise}\
                 echo 'ERROR: failed to create cluster: node(s) already exist for a cluster with the name \"xtask-we\"' >&2\n\
                 exit 1"
            ),
        ),
        // `kind get clusters` with no clusters: the message goes to stderr and the exit status is 0.
        ("empty/kind", "echo 'No kind clusters found.' >&2\nexit 0".to_string()),
        ("listing/kind", "echo 'enabling experimental podman provider' >&2\nprintf 'xtask-we\\nother\\n'".into()),
        // Echoes the provider it was given and its argv, so the test sees what reached the child.
        ("recorder/kind", "echo \"provider=$KIND_EXPERIMENTAL_PROVIDER\"\nprintf '%s\\n' \"$@\"".into()),
        // Prints a credential on stdout and then fails: the credential must stay out of the error.
        (
            "leaky/kind",
            "echo 'client-key-data: SECRETSECRET'\necho 'ERROR: could not locate any control plane nodes' >&2\nexit 1"
                .into(),
        ),
        (
            "engine/docker",
            r#"[ "$1 $2 $3 $4" = "exec xtask-we-control-plane crictl images" ] || exit 2
echo '{"images":[{"id":"sha256:1c2d","repoTags":["localhost/xtask/foo:abc"],"repoDigests":null,"size":"4096"}]}'"#
                .into(),
        ),
        ("badengine/docker", "echo 'time=\"...\" level=fatal msg=\"validate service connection\"'".into()),
    ];
    for (name, body) in scripts {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir(dir.path().join("missing")).unwrap();
    dir
});

fn fake(name: &str) -> PathBuf {
    FAKES.path().join(name)
}

/// `dir` first, then this process's `PATH`, as the child's `PATH`.
fn path_with_first(dir: &str) -> OsString {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(fake(dir)).chain(std::env::split_paths(&rest))).unwrap()
}

fn redacted(e: &Error) -> String {
    e.to_string().replace(&FAKES.path().display().to_string(), "[fakes]")
}

#[test]
fn a_failing_kind_reports_command_status_and_the_stderr_tail() {
    let kind = Kind::new(fake("failing/kind").display().to_string(), Provider::Podman);
    let err = kind.create_cluster(&CreateCluster::new("xtask-we", "/tmp/kind.yaml")).unwrap_err();
    let Error::Failed { command, status, stderr } = &err else { panic!("{err:?}") };
    assert!(
        command.ends_with("failing/kind create cluster --name xtask-we --config /tmp/kind.yaml"),
        "{command}"
    );
    assert_eq!(status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 20, "{stderr}");
    assert!(stderr.ends_with("with the name \"xtask-we\""), "{stderr}");
    assert!(!err.to_string().contains("stdout"), "stdout leaked: {err}");
    insta::assert_snapshot!("failing_kind", redacted(&err));
}

#[test]
fn no_clusters_on_stderr_with_status_zero_is_an_empty_list() {
    let kind = Kind::new("kind", Provider::Docker).with_search_path(path_with_first("empty"));
    assert_eq!(kind.get_clusters().unwrap(), Vec::<String>::new());
}

#[test]
fn clusters_are_read_from_stdout_only() {
    let kind = Kind::new("kind", Provider::Podman).with_search_path(path_with_first("listing"));
    assert_eq!(kind.get_clusters().unwrap(), ["xtask-we", "other"]);
}

#[test]
fn a_missing_kind_names_the_binary_the_install_page_and_the_variable() {
    let on_path = Kind::new("kind", Provider::Docker).with_search_path(fake("missing"));
    let err = on_path.get_clusters().unwrap_err();
    assert!(matches!(&err, Error::KindNotInstalled { binary } if binary == "kind"), "{err:?}");
    insta::assert_snapshot!("missing_kind", err.to_string());

    let by_path = Kind::new(fake("missing/kind").display().to_string(), Provider::Docker);
    let err = by_path.get_clusters().unwrap_err();
    assert_eq!(
        redacted(&err),
        "kind binary `[fakes]/missing/kind` was not found: install kind \
         (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) or set KIND to its path"
    );
}

#[test]
fn the_provider_reaches_kind_as_its_environment_variable() {
    let kind = Kind::new("kind", Provider::Podman).with_search_path(path_with_first("recorder"));
    let kubeconfig = kind.get_kubeconfig("xtask-we").unwrap();
    assert_eq!(kubeconfig.as_str(), "provider=podman\nget\nkubeconfig\n--name\nxtask-we\n");
    let docker = Kind::new(fake("recorder/kind").display().to_string(), Provider::Docker);
    let out = docker.run(&docker.load_image_archive_cmd(Path::new("/tmp/a b.tar"), "c")).unwrap();
    assert_eq!(out, "provider=docker\nload\nimage-archive\n/tmp/a b.tar\n--name\nc\n");
}

#[test]
fn a_failing_get_kubeconfig_never_puts_stdout_in_the_error() {
    let kind = Kind::new(fake("leaky/kind").display().to_string(), Provider::Podman);
    let err = kind.get_kubeconfig("xtask-we").unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("SECRETSECRET"), "{text}");
    assert_eq!(err.stderr(), "ERROR: could not locate any control plane nodes");
}

#[test]
fn node_images_asks_the_engine_and_parses_crictls_json() {
    let kind = Kind::new("kind", Provider::Docker).with_search_path(path_with_first("engine"));
    let images = kind.node_images("xtask-we").unwrap();
    assert!(has_image(&images, "localhost/xtask/foo:abc"));
    assert!(!has_image(&images, "localhost/xtask/foo:def"));
}

#[test]
fn node_images_errors_name_the_engine_or_the_node() {
    let kind = Kind::new("kind", Provider::Podman).with_search_path(fake("missing"));
    let err = kind.node_images("xtask-we").unwrap_err();
    assert!(matches!(&err, Error::EngineNotInstalled { program } if program == "podman"), "{err:?}");

    let kind = Kind::new("kind", Provider::Docker).with_search_path(path_with_first("badengine"));
    let err = kind.node_images("xtask-we").unwrap_err();
    assert!(err.to_string().starts_with("parsing the image list of node xtask-we-control-plane: "), "{err}");
}
