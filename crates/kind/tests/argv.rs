//! Every command as it would be printed by `--dry-run` and run: nothing is executed here.

use std::path::Path;
use std::time::Duration;

use kind::{CreateCluster, Invocation, Kind, NODE_IMAGE, Provider};

/// One argv element per line, then the extra environment, so a snapshot diff points at one word.
fn render(invocation: &Invocation) -> String {
    let mut lines = invocation.argv();
    lines.extend(invocation.env.iter().map(|(k, v)| format!("env {k}={v}")));
    lines.push(format!("display {invocation}"));
    lines.join("\n")
}

fn podman() -> Kind {
    Kind::new("kind", Provider::Podman)
}

#[test]
fn create_cluster_with_defaults() {
    let spec = CreateCluster::new("xtask-we", "/work/fixtures/kind/kind-workflowexecution-config.yaml");
    insta::assert_snapshot!("create_cluster_minimal", render(&podman().create_cluster_cmd(&spec)));
}

#[test]
fn create_cluster_with_pinned_image_no_wait_and_own_kubeconfig() {
    let mut spec = CreateCluster::new("xtask-we", "/tmp/run 1/kind config.yaml");
    spec.image = Some(NODE_IMAGE.to_string());
    spec.wait = Some(Duration::ZERO);
    spec.kubeconfig = Some("/tmp/run 1/kubeconfig".into());
    insta::assert_snapshot!("create_cluster_full", render(&podman().create_cluster_cmd(&spec)));
}

#[test]
fn docker_provider_is_set_explicitly_too() {
    let kind = Kind::new("/opt/kind/bin/kind", Provider::Docker);
    insta::assert_snapshot!("delete_cluster_docker", render(&kind.delete_cluster_cmd("xtask-we")));
}

#[test]
fn delete_cluster() {
    insta::assert_snapshot!("delete_cluster", render(&podman().delete_cluster_cmd("xtask-we")));
}

#[test]
fn get_clusters() {
    insta::assert_snapshot!("get_clusters", render(&podman().get_clusters_cmd()));
}

#[test]
fn get_kubeconfig() {
    insta::assert_snapshot!("get_kubeconfig", render(&podman().get_kubeconfig_cmd("xtask-we")));
}

#[test]
fn load_image_archive() {
    let archive = Path::new("/tmp/xtask/images/foo-abc.tar");
    insta::assert_snapshot!(
        "load_image_archive",
        render(&podman().load_image_archive_cmd(archive, "xtask-we"))
    );
}

#[test]
fn export_logs() {
    let dir = Path::new("/tmp/xtask/logs/xtask-we");
    insta::assert_snapshot!("export_logs", render(&podman().export_logs_cmd(dir, "xtask-we")));
}

#[test]
fn node_images_runs_crictl_through_the_providers_engine() {
    insta::assert_snapshot!("node_images_podman", render(&podman().node_images_cmd("xtask-we")));
    let docker = Kind::new("kind", Provider::Docker);
    insta::assert_snapshot!("node_images_docker", render(&docker.node_images_cmd("xtask-we")));
}
