//! Every file the cluster's programs read, rendered as values from one [`Network`] and one
//! [`Layout`]: containerd's config, the CNI network, the kubelet's and kube-proxy's
//! configurations, the registry's, the kubeconfigs. Pure functions, snapshot-tested.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The cluster's fixed addresses. The node lives on a bridge of its own: the node address is
/// the bridge's, pods get addresses on it, and Services a range that exists only in kube-proxy's
/// rules. None of these ranges leaves the machine (see `net`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The Linux bridge the pods' veths join (at most 15 characters).
    pub bridge: &'static str,
    /// The node's address: the bridge's own, where the API server, the kubelet, etcd and the DNS
    /// responder listen.
    pub node_ip: Ipv4Addr,
    /// The pods' range (on the bridge), as `address/prefix`.
    pub pod_cidr: &'static str,
    /// The Services' range (virtual, kube-proxy's), as `address/prefix`.
    pub service_cidr: &'static str,
    /// The `kubernetes` Service's address: the first of the Services' range.
    pub api_service_ip: Ipv4Addr,
    /// The cluster's DNS domain.
    pub domain: &'static str,
    /// The node's name.
    pub node_name: &'static str,
    /// The API server's port on the node address.
    pub api_port: u16,
    /// etcd's client and peer ports on the node address.
    pub etcd_ports: (u16, u16),
}

impl Network {
    /// The one network a devcluster uses.
    pub const fn fixed() -> Self {
        Network {
            bridge: "xtaskdc0",
            node_ip: Ipv4Addr::new(10, 244, 0, 1),
            pod_cidr: "10.244.0.0/24",
            service_cidr: "10.96.0.0/16",
            api_service_ip: Ipv4Addr::new(10, 96, 0, 1),
            domain: "cluster.local",
            node_name: "xtask-devcluster",
            api_port: 6443,
            etcd_ports: (2379, 2380),
        }
    }

    /// The API server's URL.
    pub fn api_url(&self) -> String {
        format!("https://{}:{}", self.node_ip, self.api_port)
    }

    /// etcd's client URL.
    pub fn etcd_url(&self) -> String {
        format!("http://{}:{}", self.node_ip, self.etcd_ports.0)
    }

    /// The prefix length of the pods' range.
    pub fn pod_prefix(&self) -> u8 {
        self.pod_cidr.rsplit('/').next().and_then(|p| p.parse().ok()).unwrap_or(24)
    }
}

/// Where a cluster keeps its files: a state directory (certificates, data, logs, configs) and a
/// short runtime directory under /run for sockets (a Unix socket path has at most 107 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The state directory, e.g. `<workspace>/.xtask/devcluster`.
    pub dir: PathBuf,
    /// The runtime directory: containerd's state and socket, runc's root.
    pub run: PathBuf,
    /// The folder of the built binaries (envtest's `KUBEBUILDER_ASSETS` layout).
    pub assets: PathBuf,
}

impl Layout {
    /// The layout of a cluster kept in `dir`, running `assets`' binaries.
    pub fn new(dir: impl Into<PathBuf>, assets: impl Into<PathBuf>) -> Self {
        Layout { dir: dir.into(), run: PathBuf::from(RUN_DIR), assets: assets.into() }
    }

    /// A path in the state directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// One of the built binaries.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.assets.join(name)
    }

    /// containerd's gRPC socket.
    pub fn containerd_socket(&self) -> PathBuf {
        self.run.join("containerd.sock")
    }

    /// The administrator's kubeconfig (written 0600).
    pub fn kubeconfig(&self) -> PathBuf {
        self.path("kubeconfig")
    }

    /// The state file: which processes run, on which ports.
    pub fn state_file(&self) -> PathBuf {
        self.path("cluster.json")
    }

    /// The log of one program.
    pub fn log(&self, program: &str) -> PathBuf {
        self.path("logs").join(format!("{program}.log"))
    }
}

/// The runtime directory: fixed, as the cluster is one per machine.
pub const RUN_DIR: &str = "/run/xtask-devcluster";

/// The sandbox ("pause") image every pod starts with, imported into containerd at start.
pub const PAUSE_IMAGE: &str = "localhost/xtask-devcluster/pause:1";

/// The containerd namespace the CRI plugin (and so the kubelet) uses.
pub const CONTAINERD_NAMESPACE: &str = "k8s.io";

/// The name of the CNI network (and so of its result-cache files under /var/lib/cni).
pub const CNI_NETWORK: &str = "xtask-devcluster";

fn quoted(path: &Path) -> String {
    serde_json::to_string(&path.display().to_string()).expect("a string serializes")
}

/// containerd's config: its own root, state and socket; the CRI plugin with runc (cgroupfs),
/// `restrict_oom_score_adj` (runc cannot raise a sandbox's OOM score without CAP_SYS_RESOURCE),
/// the CNI network, and registries from `certs.d` (the loopback one is plain HTTP).
pub fn containerd_toml(layout: &Layout) -> String {
    let q = |rel: &str| quoted(&layout.path(rel));
    let r = |rel: &str| quoted(&layout.run.join(rel));
    format!(
        r#"# Written by `cargo xtask devcluster up`; the cluster's own containerd, apart from any other.
version = 2
root = {root}
state = {state}

[grpc]
  address = {socket}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = {runc}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = {cni}
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = {certs}
"#,
        root = q("containerd/root"),
        state = r("containerd"),
        socket = quoted(&layout.containerd_socket()),
        opt = q("containerd/opt"),
        pause = PAUSE_IMAGE,
        runc = r("runc"),
        cni = q("cni/net.d"),
        certs = q("config/certs.d"),
    )
}

/// `certs.d/<host>/hosts.toml` for the loopback registry: pulled over plain HTTP.
pub fn registry_hosts_toml(registry: &str) -> String {
    format!(
        "# Written by `cargo xtask devcluster up`: the loopback registry speaks plain HTTP.\n\
         server = \"http://{registry}\"\n\n[host.\"http://{registry}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )
}

/// The CNI network: a bridge whose address is the node's, host-local addresses kept in the
/// state directory, hairpin so a pod reaches itself through its Service. No masquerading:
/// pods talk to the node and to each other only.
pub fn cni_conflist(network: &Network, layout: &Layout) -> String {
    let conf = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [{
            "type": "bridge",
            "bridge": network.bridge,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": network.pod_cidr, "gateway": network.node_ip.to_string()}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": layout.path("cni/ipam").display().to_string(),
            }
        }]
    });
    serde_json::to_string_pretty(&conf).expect("JSON serializes") + "\n"
}

/// The resolv.conf the kubelet gives pods with `dnsPolicy: Default` and whose search list it
/// extends: the cluster's DNS only, so the host's search domains do not leak into pods.
pub fn resolv_conf(network: &Network) -> String {
    format!("nameserver {}\n", network.node_ip)
}

/// The kubelet's configuration: cgroupfs (no systemd here), no iptables chains of its own
/// (kube-proxy's are the only ones, and `down` removes them), client certificates only,
/// the DNS responder as cluster DNS, eviction thresholds that do not trip on a busy CI disk,
/// and every directory it would create elsewhere moved into the state directory.
pub fn kubelet_yaml(network: &Network, layout: &Layout, healthz_port: u16) -> String {
    let p = |rel: &str| layout.path(rel).display().to_string();
    format!(
        r#"# Written by `cargo xtask devcluster up`.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {node_ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz_port}
tlsCertFile: {kubelet_crt}
tlsPrivateKeyFile: {kubelet_key}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: {ca}
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
clusterDomain: {domain}
clusterDNS:
- {node_ip}
resolvConf: {resolv}
failSwapOn: false
makeIPTablesUtilChains: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
volumePluginDir: {plugins}
rotateCertificates: false
"#,
        node_ip = network.node_ip,
        kubelet_crt = p("pki/kubelet.crt"),
        kubelet_key = p("pki/kubelet.key"),
        ca = p("pki/ca.crt"),
        domain = network.domain,
        resolv = p("config/resolv.conf"),
        plugins = p("kubelet/volume-plugins"),
    )
}

/// kube-proxy's configuration: iptables mode, every Service connection masqueraded (pods on
/// one bridge answer each other directly otherwise, bypassing the DNAT), NodePorts on the
/// node address only, and conntrack left alone (the machine's limits are not ours to change).
pub fn kube_proxy_yaml(network: &Network, layout: &Layout, healthz_port: u16, metrics_port: u16) -> String {
    format!(
        r#"# Written by `cargo xtask devcluster up`.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
mode: iptables
clusterCIDR: {pod_cidr}
hostnameOverride: {node}
bindAddress: {node_ip}
healthzBindAddress: 127.0.0.1:{healthz_port}
metricsBindAddress: 127.0.0.1:{metrics_port}
nodePortAddresses:
- {node_ip}/32
iptables:
  masqueradeAll: true
  syncPeriod: 30s
  minSyncPeriod: 0s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"#,
        kubeconfig = layout.kubeconfig().display(),
        pod_cidr = network.pod_cidr,
        node = network.node_name,
        node_ip = network.node_ip,
    )
}

/// The loopback registry's configuration (Debian's `docker-registry`, distribution 2.8).
pub fn registry_yaml(layout: &Layout, port: u16, debug_port: u16) -> String {
    format!(
        r#"# Written by `cargo xtask devcluster up`: a registry on loopback the kubelet pulls from.
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  debug:
    addr: 127.0.0.1:{debug_port}
"#,
        root = layout.path("registry").display(),
    )
}

/// A kubeconfig for `user` authenticating with a client certificate, all files by path.
pub fn kubeconfig(network: &Network, layout: &Layout, user: &str) -> String {
    let pki = |name: &str| layout.path("pki").join(name);
    let auth = envtest::kubeconfig::Auth::ClientCert {
        cert: pki(&format!("{user}.crt")),
        key: pki(&format!("{user}.key")),
    };
    envtest::kubeconfig::render("xtask-devcluster", &network.api_url(), &pki("ca.crt"), user, &auth)
}

/// The registries.conf drop-in that lets podman push to the loopback registry over plain HTTP.
pub fn podman_registry_conf(registry: &str) -> String {
    format!(
        "# Written by `cargo xtask devcluster up`, removed by `down`: the devcluster's loopback\n\
         # registry speaks plain HTTP.\n[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"
    )
}

/// Where [`podman_registry_conf`] goes.
pub const PODMAN_REGISTRY_CONF: &str = "/etc/containers/registries.conf.d/50-xtask-devcluster.conf";

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new("/state", "/assets")
    }

    #[test]
    fn the_files_the_programs_read() {
        let (n, l) = (Network::fixed(), layout());
        insta::assert_snapshot!("containerd.toml", containerd_toml(&l));
        insta::assert_snapshot!("cni.conflist", cni_conflist(&n, &l));
        insta::assert_snapshot!("kubelet.yaml", kubelet_yaml(&n, &l, 10248));
        insta::assert_snapshot!("kube-proxy.yaml", kube_proxy_yaml(&n, &l, 10256, 10249));
        insta::assert_snapshot!("registry.yaml", registry_yaml(&l, 5000, 5001));
        insta::assert_snapshot!("admin.kubeconfig", kubeconfig(&n, &l, "admin"));
    }

    #[test]
    fn the_network_is_one_bridge_and_two_private_ranges() {
        let n = Network::fixed();
        assert!(n.bridge.len() <= 15, "a Linux interface name has at most 15 characters");
        assert_eq!(n.pod_prefix(), 24);
        assert!(n.node_ip.is_private() && n.api_service_ip.is_private());
        assert_eq!(n.api_url(), "https://10.244.0.1:6443");
    }

    #[test]
    fn the_cni_config_keeps_its_addresses_in_the_state_directory() {
        let conf: serde_json::Value =
            serde_json::from_str(&cni_conflist(&Network::fixed(), &layout())).unwrap();
        assert_eq!(conf["plugins"][0]["ipam"]["dataDir"], "/state/cni/ipam");
        assert_eq!(conf["plugins"][0]["ipMasq"], false, "pods never talk past the node");
    }
}
