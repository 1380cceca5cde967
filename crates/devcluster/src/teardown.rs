//! Stopping the cluster so that nothing of it is left on the machine, and saying what was when
//! something is. Every step runs whatever the ones before did, each bounded in time, so one
//! part that will not answer never keeps the others alive.
//!
//! Order: the controllers (nothing schedules or restarts pods any more), the kubelet, every
//! container through containerd (their shims end with them), kube-proxy and its rules, the
//! control plane, containerd, etcd and the registry; then what lives in the kernel: mounts under
//! the cluster's folders, containerd's `/run/netns/cni-*` (no other namespace is touched), the
//! bridge, the guard chains, the kubelet's cgroups; sysctls back to their old values; the host
//! paths `up` created; the state directory.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;
use xshell::{Shell, cmd};

use crate::cluster::{Progress, State, runs};
use crate::config::{self, Layout, Network};
use crate::{Error, net};

/// What `down` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Down {
    /// The processes stopped, by part.
    pub stopped: Vec<String>,
    /// Containers killed through containerd.
    pub containers: usize,
    /// Mounts and namespaces removed.
    pub unmounted: usize,
    /// Whether a cluster was recorded at all.
    pub recorded: bool,
}

/// The order parts stop in, and how each is asked to.
const STOP_ORDER: [(&str, Signal, u64); 9] = [
    ("kube-controller-manager", Signal::SIGTERM, 10),
    ("kube-scheduler", Signal::SIGTERM, 10),
    ("kubelet", Signal::SIGTERM, 15),
    ("kube-proxy", Signal::SIGTERM, 10),
    ("dns", Signal::SIGTERM, 5),
    ("kube-apiserver", Signal::SIGTERM, 15),
    ("containerd", Signal::SIGTERM, 15),
    ("etcd", Signal::SIGTERM, 15),
    ("registry", Signal::SIGTERM, 10),
];

fn stop_part(state: &State, name: &str, signal: Signal, secs: u64, done: &mut Down, left: &mut Vec<String>) {
    let Some(p) = state.process(name) else { return };
    if !runs(p.pid, &p.program) {
        return;
    }
    match procs::stop(p.pid, &p.program, procs::StopPolicy { signal, deadline: Duration::from_secs(secs) }) {
        Ok(()) => done.stopped.push(name.to_string()),
        Err(e) => left.push(format!("{name}: {e}")),
    }
}

/// Stops the cluster kept in `layout.dir` and removes everything it made; without a state file
/// it still sweeps what a cluster leaves in the kernel. An error lists what is still there.
pub async fn down(layout: &Layout, progress: &Progress) -> Result<Down, Error> {
    let network = Network::fixed();
    let state = State::read(layout).unwrap_or_default();
    let mut done = Down { recorded: state.is_some(), ..Default::default() };
    let state = state.unwrap_or_default();
    let layout = if state.assets.as_os_str().is_empty() {
        layout.clone()
    } else {
        Layout::new(&layout.dir, &state.assets)
    };
    let mut left = Vec::new();
    progress("devcluster: stopping the controllers, the kubelet and every container");
    for (name, signal, secs) in &STOP_ORDER[..3] {
        stop_part(&state, name, *signal, *secs, &mut done, &mut left);
    }
    if state.process("containerd").is_some_and(|p| runs(p.pid, &p.program)) {
        match tokio::task::spawn_blocking({
            let layout = layout.clone();
            move || kill_containers(&layout)
        })
        .await
        {
            Ok(Ok(n)) => done.containers = n,
            Ok(Err(e)) => left.push(format!("containers: {e}")),
            Err(e) => left.push(format!("containers: {e}")),
        }
    }
    for (name, signal, secs) in &STOP_ORDER[3..] {
        stop_part(&state, name, *signal, *secs, &mut done, &mut left);
    }
    for p in &state.processes {
        if runs(p.pid, &p.program) {
            left.push(format!("{} (pid {}) still runs", p.name, p.pid));
        }
    }
    progress("devcluster: removing kube-proxy's rules, mounts, namespaces, the bridge, chains and cgroups");
    kill_strays(&layout);
    // `kube-proxy --cleanup` would also clear IPVS sets (and fails without `ipset`); `up`
    // refuses to start beside KUBE- chains, so every one there now is this cluster's.
    if let Err(e) = net::remove_chains("KUBE-") {
        left.push(e.to_string());
    }
    let netns = net::cni_netns();
    let mounts = net::mounts_under(
        &[&layout.dir, &layout.run, &state.etcd_data],
        &["/run/netns/cni-", "/run/containerd/io.containerd"],
    );
    for m in &mounts {
        match net::unmount(m) {
            Ok(()) => done.unmounted += 1,
            Err(e) => left.push(e),
        }
    }
    for ns in netns {
        if let Err(e) = std::fs::remove_file(&ns) {
            left.push(format!("removing {}: {e}", ns.display()));
        }
    }
    if let Err(e) = net::delete_bridge(&network) {
        left.push(e.to_string());
    }
    if let Err(e) = net::unguard(&network) {
        left.push(e.to_string());
    }
    for cgroup in net::kubepods_cgroups() {
        if let Err(e) = net::remove_cgroup_tree(&cgroup) {
            left.push(e);
        }
    }
    for (name, before) in &state.sysctls {
        // Put back only what was changed: another program may have set it since, for itself.
        if net::sysctl(name).as_deref() != Some(before.as_str())
            && let Err(e) = net::set_sysctl(name, before)
        {
            left.push(e.to_string());
        }
    }
    remove_cni_results();
    // etcd's data folder is the cluster's alone, wherever it was put.
    if !state.etcd_data.as_os_str().is_empty()
        && state.etcd_data.exists()
        && let Err(e) = std::fs::remove_dir_all(&state.etcd_data)
    {
        left.push(format!("removing {}: {e}", state.etcd_data.display()));
    }
    for path in state.created.iter().rev() {
        remove_created(path, &mut left);
    }
    left.extend(leftovers(&layout, &network));
    left.sort();
    left.dedup();
    if !left.is_empty() {
        // The state stays, so that `down` can be run again once the cause is gone.
        return Err(Error::LeftBehind { left });
    }
    for path in [&layout.run, &layout.dir] {
        if path.exists()
            && let Err(e) = std::fs::remove_dir_all(path)
        {
            left.push(format!("removing {}: {e}", path.display()));
        }
    }
    if left.is_empty() { Ok(done) } else { Err(Error::LeftBehind { left }) }
}

/// Kills every task of containerd's `k8s.io` namespace and removes the containers: the shims end
/// with their tasks. Returns how many containers there were.
fn kill_containers(layout: &Layout) -> Result<usize, Error> {
    let sh = Shell::new().map_err(Error::cmd("starting a shell"))?;
    let (socket, ns) = (layout.containerd_socket(), config::CONTAINERD_NAMESPACE);
    let ctr = |args: &[&str]| {
        cmd!(sh, "timeout 20 ctr --address {socket} --namespace {ns} {args...}")
            .quiet()
            .ignore_stderr()
            .read()
    };
    let tasks = ctr(&["tasks", "ls", "-q"]).map_err(Error::cmd("listing containerd's tasks"))?;
    for task in tasks.lines().filter(|t| !t.is_empty()) {
        let _ = ctr(&["tasks", "kill", "--signal", "SIGKILL", task]);
    }
    for task in tasks.lines().filter(|t| !t.is_empty()) {
        // Deleting a task waits for it to be gone; a killed one goes at once.
        let _ = ctr(&["tasks", "delete", "--force", task]);
    }
    let containers =
        ctr(&["containers", "ls", "-q"]).map_err(Error::cmd("listing containerd's containers"))?;
    let ids: Vec<&str> = containers.lines().filter(|c| !c.is_empty()).collect();
    for id in &ids {
        let _ = ctr(&["containers", "delete", id]);
    }
    Ok(ids.len())
}

/// Processes of the cluster that no record names: containerd's shims (they name its socket)
/// and whatever still runs in the kubelet's cgroups.
fn kill_strays(layout: &Layout) {
    let socket = layout.containerd_socket().display().to_string();
    let mut pids: Vec<u32> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&socket) {
                pids.push(pid);
            }
        }
    }
    for cgroup in net::kubepods_cgroups() {
        pids.extend(cgroup_procs(&cgroup));
    }
    pids.sort_unstable();
    pids.dedup();
    for pid in pids {
        let _ = procs::stop(
            pid,
            "a container of the devcluster",
            procs::StopPolicy { signal: Signal::SIGKILL, deadline: Duration::from_secs(5) },
        );
    }
}

fn cgroup_procs(root: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(
                entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()),
            );
        }
    }
    out
}

/// libcni's result cache for the cluster's network (it lives outside any folder we choose).
fn remove_cni_results() {
    let Ok(entries) = std::fs::read_dir("/var/lib/cni/results") else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with(&format!("{}-", config::CNI_NETWORK))
            || (name.starts_with("cni-loopback-")
                && std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("/run/netns/cni-")));
        if ours {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes a host path `up` created: a file, or a folder once nothing but empty folders and
/// what the kubelet hard-codes (its device-plugin socket) is in it.
fn remove_created(path: &Path, left: &mut Vec<String>) {
    if !path.exists() {
        return;
    }
    // containerd makes /run/netns a shared bind mount of itself (as `ip netns` does).
    if net::mounts_under(&[path], &[]).iter().any(|m| m == path)
        && let Err(e) = net::unmount(path)
    {
        left.push(e);
    }
    let result = if path.is_dir() {
        if path == Path::new("/var/lib/kubelet") {
            let _ = std::fs::remove_dir_all(path.join("device-plugins"));
        }
        if path == Path::new("/var/lib/cni") {
            let _ = std::fs::remove_dir(path.join("results"));
            let _ = std::fs::remove_dir(path.join("networks"));
        }
        remove_empty_tree(path)
    } else {
        std::fs::remove_file(path)
    };
    if let Err(e) = result {
        left.push(format!("removing {}: {e}", path.display()));
    }
}

fn remove_empty_tree(dir: &Path) -> std::io::Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_tree(&e.path())?;
            }
        }
    }
    std::fs::remove_dir(dir)
}

/// What of a cluster is still on the machine: its bridge, chains, mounts, namespaces, cgroups.
pub fn leftovers(layout: &Layout, network: &Network) -> Vec<String> {
    let mut left = Vec::new();
    if net::bridge_exists(network) {
        left.push(format!("bridge {}", network.bridge));
    }
    for prefix in ["KUBE-", "XTASK-DC-"] {
        match net::chains(prefix) {
            Ok(chains) => left.extend(chains.into_iter().map(|c| format!("iptables chain {c}"))),
            Err(e) => left.push(format!("iptables: {e}")),
        }
    }
    let run: &Path = &layout.run;
    for m in net::mounts_under(&[&layout.dir, run], &["/run/netns/cni-"]) {
        left.push(format!("mount {}", m.display()));
    }
    for ns in net::cni_netns() {
        left.push(format!("network namespace {}", ns.display()));
    }
    for c in net::kubepods_cgroups() {
        left.push(format!("cgroup {}", c.display()));
    }
    left
}
