//! The host side of the cluster's network and its clean-up: the bridge (whose address is the
//! node's), the sysctls routing needs, iptables chains that keep the cluster's ranges on this
//! machine, and the removal of what the kubelet, containerd and runc leave in the kernel
//! (mounts, `/run/netns/cni-*`, cgroups).
//!
//! The guard chains say, in the filter table: a Service address kube-proxy did not translate
//! leads nowhere (rejected, never routed out of the default route); the pods' range is reached
//! only through the bridge; pods are never forwarded off the bridge, nor reached from another
//! interface; the node address answers only on the bridge and loopback.

use std::path::{Path, PathBuf};

use xshell::{Shell, cmd};

use crate::Error;
use crate::config::Network;

fn shell() -> Result<Shell, Error> {
    Shell::new().map_err(Error::cmd("starting a shell"))
}

/// Routes and addresses of this machine that overlap the cluster's ranges (other than its own
/// bridge's): the cluster cannot start beside them.
pub(crate) fn conflicts(network: &Network) -> Result<Vec<String>, Error> {
    let sh = shell()?;
    let routes =
        cmd!(sh, "ip -4 -o route show table all").quiet().read().map_err(Error::cmd("listing routes"))?;
    Ok(overlapping_routes(&routes, network))
}

/// The routes in `ip -o route` output that reach into the pods' or the Services' range through
/// anything but the cluster's bridge.
pub(crate) fn overlapping_routes(routes: &str, network: &Network) -> Vec<String> {
    let ranges =
        [network.pod_cidr, network.service_cidr].map(|c| parse_cidr(c).expect("the fixed ranges parse"));
    routes
        .lines()
        .filter(|line| {
            !line.contains(&format!(" dev {} ", network.bridge))
                && !line.ends_with(&format!(" dev {}", network.bridge))
        })
        .filter(|line| route_destination(line).is_some_and(|dest| ranges.iter().any(|r| overlaps(dest, *r))))
        .map(str::to_string)
        .collect()
}

/// The destination of one `ip -o route` line, as address and prefix; `None` for the default.
fn route_destination(line: &str) -> Option<(u32, u8)> {
    const TYPES: [&str; 9] = [
        "local",
        "broadcast",
        "unicast",
        "multicast",
        "anycast",
        "blackhole",
        "unreachable",
        "prohibit",
        "throw",
    ];
    let mut words = line.split_whitespace();
    let mut dest = words.next()?;
    if TYPES.contains(&dest) {
        dest = words.next()?;
    }
    if dest.contains('/') { parse_cidr(dest) } else { parse_cidr(&format!("{dest}/32")) }
}

fn parse_cidr(text: &str) -> Option<(u32, u8)> {
    let (addr, prefix) = text.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((u32::from(addr), prefix))
}

fn overlaps(a: (u32, u8), b: (u32, u8)) -> bool {
    let p = a.1.min(b.1);
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    a.0 & mask == b.0 & mask
}

/// Creates the bridge with the node's address (the CNI plugin then finds it as it wants it).
pub(crate) fn create_bridge(network: &Network) -> Result<(), Error> {
    let sh = shell()?;
    let (bridge, addr) = (network.bridge, format!("{}/{}", network.node_ip, network.pod_prefix()));
    if cmd!(sh, "ip link show {bridge}").quiet().ignore_stdout().ignore_stderr().run().is_err() {
        cmd!(sh, "ip link add {bridge} type bridge")
            .quiet()
            .run()
            .map_err(Error::cmd("creating the bridge"))?;
    }
    let shown = cmd!(sh, "ip -4 -o addr show dev {bridge}")
        .quiet()
        .read()
        .map_err(Error::cmd("reading the bridge"))?;
    if !shown.contains(&format!(" {addr} ")) {
        cmd!(sh, "ip addr add {addr} dev {bridge}")
            .quiet()
            .run()
            .map_err(Error::cmd("addressing the bridge"))?;
    }
    cmd!(sh, "ip link set {bridge} up").quiet().run().map_err(Error::cmd("bringing the bridge up"))
}

/// Deletes the bridge (with it go its address and routes); absent is fine.
pub(crate) fn delete_bridge(network: &Network) -> Result<(), Error> {
    let sh = shell()?;
    let bridge = network.bridge;
    if cmd!(sh, "ip link show {bridge}").quiet().ignore_stdout().ignore_stderr().run().is_err() {
        return Ok(());
    }
    cmd!(sh, "ip link delete {bridge}").quiet().run().map_err(Error::cmd("deleting the bridge"))
}

/// Whether the bridge exists.
pub(crate) fn bridge_exists(network: &Network) -> bool {
    Path::new("/sys/class/net").join(network.bridge).exists()
}

/// The guard chains: (chain, the built-in chain that jumps to it, its rules).
pub(crate) fn guard_rules(network: &Network) -> Vec<(&'static str, &'static str, Vec<Vec<String>>)> {
    let b = network.bridge.to_string();
    let (pods, services, node) =
        (network.pod_cidr.to_string(), network.service_cidr.to_string(), network.node_ip.to_string());
    let rule = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    vec![
        (
            "XTASK-DC-OUTPUT",
            "OUTPUT",
            vec![
                // The host's own traffic to the node address leaves through loopback.
                rule(&["-o", "lo", "-j", "RETURN"]),
                // A Service address kube-proxy translated was routed anew to the bridge, but
                // OUTPUT's `-o` still names the interface chosen before the translation.
                rule(&["-m", "conntrack", "--ctstate", "DNAT", "-j", "RETURN"]),
                rule(&["-d", &services, "-j", "REJECT", "--reject-with", "icmp-net-unreachable"]),
                rule(&["-d", &pods, "!", "-o", &b, "-j", "REJECT", "--reject-with", "icmp-net-unreachable"]),
            ],
        ),
        (
            "XTASK-DC-FORWARD",
            "FORWARD",
            vec![
                rule(&["-d", &services, "-j", "REJECT", "--reject-with", "icmp-net-unreachable"]),
                rule(&["-i", &b, "!", "-o", &b, "-j", "REJECT", "--reject-with", "icmp-net-unreachable"]),
                rule(&["!", "-i", &b, "-o", &b, "-j", "REJECT", "--reject-with", "icmp-net-unreachable"]),
                rule(&["-d", &pods, "!", "-o", &b, "-j", "REJECT", "--reject-with", "icmp-net-unreachable"]),
            ],
        ),
        (
            "XTASK-DC-INPUT",
            "INPUT",
            vec![
                rule(&["-i", "lo", "-j", "RETURN"]),
                rule(&["-i", &b, "-j", "RETURN"]),
                rule(&["-d", &node, "-j", "REJECT"]),
            ],
        ),
    ]
}

/// Installs the guard chains (afresh: an older set is replaced).
pub(crate) fn guard(network: &Network) -> Result<(), Error> {
    unguard(network)?;
    let sh = shell()?;
    for (chain, from, rules) in guard_rules(network) {
        cmd!(sh, "iptables -w -N {chain}")
            .quiet()
            .run()
            .map_err(Error::cmd(format!("creating iptables chain {chain}")))?;
        for rule in rules {
            cmd!(sh, "iptables -w -A {chain} {rule...}")
                .quiet()
                .run()
                .map_err(Error::cmd(format!("adding a rule to {chain}")))?;
        }
        cmd!(sh, "iptables -w -I {from} 1 -j {chain}")
            .quiet()
            .run()
            .map_err(Error::cmd(format!("jumping from {from} to {chain}")))?;
    }
    Ok(())
}

/// Removes the guard chains; absent is fine.
pub(crate) fn unguard(network: &Network) -> Result<(), Error> {
    let sh = shell()?;
    for (chain, from, _) in guard_rules(network) {
        while cmd!(sh, "iptables -w -D {from} -j {chain}").quiet().ignore_stderr().run().is_ok() {}
        if cmd!(sh, "iptables -w -S {chain}").quiet().ignore_stdout().ignore_stderr().run().is_ok() {
            cmd!(sh, "iptables -w -F {chain}")
                .quiet()
                .run()
                .map_err(Error::cmd(format!("flushing {chain}")))?;
            cmd!(sh, "iptables -w -X {chain}")
                .quiet()
                .run()
                .map_err(Error::cmd(format!("deleting {chain}")))?;
        }
    }
    Ok(())
}

/// The chains of the filter and nat tables whose names start with `prefix` (KUBE- or XTASK-DC-).
pub(crate) fn chains(prefix: &str) -> Result<Vec<String>, Error> {
    let sh = shell()?;
    let mut out = Vec::new();
    for table in ["filter", "nat", "mangle"] {
        let rules = cmd!(sh, "iptables -w -t {table} -S")
            .quiet()
            .read()
            .map_err(Error::cmd("listing iptables chains"))?;
        out.extend(
            rules
                .lines()
                .filter_map(|l| l.strip_prefix("-N "))
                .filter(|c| c.starts_with(prefix))
                .map(|c| format!("{table}/{c}")),
        );
    }
    Ok(out)
}

/// Removes every chain of the filter, nat and mangle tables whose name starts with `prefix`,
/// with the rules of the built-in chains that jump to them.
pub(crate) fn remove_chains(prefix: &str) -> Result<(), Error> {
    let sh = shell()?;
    for table in ["filter", "nat", "mangle"] {
        let rules = cmd!(sh, "iptables -w -t {table} -S")
            .quiet()
            .read()
            .map_err(Error::cmd("listing iptables rules"))?;
        for (chain, number) in jumps_into(&rules, prefix).into_iter().rev() {
            let number = number.to_string();
            cmd!(sh, "iptables -w -t {table} -D {chain} {number}")
                .quiet()
                .run()
                .map_err(Error::cmd(format!("deleting rule {number} of {table}/{chain}")))?;
        }
        let ours: Vec<&str> =
            rules.lines().filter_map(|l| l.strip_prefix("-N ")).filter(|c| c.starts_with(prefix)).collect();
        for chain in &ours {
            cmd!(sh, "iptables -w -t {table} -F {chain}")
                .quiet()
                .run()
                .map_err(Error::cmd(format!("flushing {table}/{chain}")))?;
        }
        for chain in &ours {
            cmd!(sh, "iptables -w -t {table} -X {chain}")
                .quiet()
                .run()
                .map_err(Error::cmd(format!("deleting {table}/{chain}")))?;
        }
    }
    Ok(())
}

/// The rules of built-in chains (by chain and 1-based number, in listing order) that jump to a
/// chain named `prefix...`, from `iptables -S` output.
fn jumps_into(rules: &str, prefix: &str) -> Vec<(String, usize)> {
    let mut numbers = std::collections::HashMap::<&str, usize>::new();
    let mut out = Vec::new();
    for line in rules.lines() {
        let Some(rest) = line.strip_prefix("-A ") else { continue };
        let Some(chain) = rest.split_whitespace().next() else { continue };
        let n = numbers.entry(chain).or_default();
        *n += 1;
        let builtin = chain.chars().all(|c| c.is_ascii_uppercase()) && !chain.contains('-');
        let target = rest.split_whitespace().skip_while(|w| *w != "-j").nth(1);
        if builtin && target.is_some_and(|t| t.starts_with(prefix)) {
            out.push((chain.to_string(), *n));
        }
    }
    out
}

/// The sysctls the cluster needs on, with their path under /proc/sys.
pub(crate) const SYSCTLS: [&str; 3] =
    ["net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet", "net/bridge/bridge-nf-call-iptables"];

/// The sysctls the cluster turns on itself (kube-proxy sets route_localnet on its own).
pub(crate) const SYSCTLS_SET: [&str; 2] = ["net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"];

/// A sysctl's value, trimmed; `None` when it does not exist here.
pub(crate) fn sysctl(name: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc/sys").join(name)).ok().map(|v| v.trim().to_string())
}

/// Sets a sysctl.
pub(crate) fn set_sysctl(name: &str, value: &str) -> Result<(), Error> {
    let path = Path::new("/proc/sys").join(name);
    std::fs::write(&path, value).map_err(Error::io("setting", path))
}

/// Mount points (from /proc/self/mountinfo) at or under one of `dirs`, or whose path starts
/// with one of `prefixes`; deepest first, so children are unmounted before their parents.
pub(crate) fn mounts_under(dirs: &[&Path], prefixes: &[&str]) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|m| {
            let p = Path::new(m);
            dirs.iter().any(|d| p.starts_with(d)) || prefixes.iter().any(|pre| m.starts_with(pre))
        })
        .map(PathBuf::from)
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(field: &str) -> String {
    let mut out = String::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let code = u8::from_str_radix(&field[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(code as char);
            i += 4;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

/// Unmounts `path` (lazily: a mount still busy goes once its last user does).
pub(crate) fn unmount(path: &Path) -> Result<(), String> {
    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("unmounting {}: {e}", path.display()))
}

/// containerd's network namespaces: `/run/netns/cni-*`, and nothing else of that folder.
pub(crate) fn cni_netns() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("cni-"))
        .map(|e| e.path())
        .collect()
}

/// The cgroups the kubelet (cgroupfs driver) made: `kubepods` in every hierarchy.
pub(crate) fn kubepods_cgroups() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else { return Vec::new() };
    let mut out: Vec<PathBuf> =
        entries.flatten().map(|e| e.path().join("kubepods")).filter(|p| p.is_dir()).collect();
    if Path::new("/sys/fs/cgroup/kubepods").is_dir() {
        out.push("/sys/fs/cgroup/kubepods".into());
    }
    out
}

/// Removes a cgroup tree bottom-up (a cgroup is removed with rmdir once it holds no process).
pub(crate) fn remove_cgroup_tree(root: &Path) -> Result<(), String> {
    let mut dirs = Vec::new();
    collect_dirs(root, &mut dirs);
    dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for d in dirs {
        std::fs::remove_dir(&d).map_err(|e| format!("removing cgroup {}: {e}", d.display()))?;
    }
    Ok(())
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_into_the_cluster_ranges_are_conflicts_unless_they_are_the_bridges() {
        let n = Network::fixed();
        let routes = "default via 192.0.2.1 dev eth0\n\
            192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n\
            10.244.0.0/24 dev xtaskdc0 proto kernel scope link src 10.244.0.1\n\
            10.88.0.0/16 dev podman0 proto kernel scope link src 10.88.0.1\n\
            10.96.0.0/12 via 192.0.2.9 dev eth0\n\
            local 10.244.0.1 dev xtaskdc0 table local proto kernel scope host src 10.244.0.1\n\
            10.244.0.7 dev wg0 scope link\n";
        let found = overlapping_routes(routes, &n);
        assert_eq!(found, ["10.96.0.0/12 via 192.0.2.9 dev eth0", "10.244.0.7 dev wg0 scope link"]);
    }

    #[test]
    fn only_the_built_in_chains_jumps_into_ours_are_deleted_by_number() {
        let rules = "-P OUTPUT ACCEPT\n\
            -N KUBE-SERVICES\n\
            -N XTASK-DC-OUTPUT\n\
            -A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
            -A OUTPUT -j XTASK-DC-OUTPUT\n\
            -A OUTPUT -d 10.0.0.0/8 -j KUBE-FIREWALL\n\
            -A KUBE-SERVICES -j KUBE-NODEPORTS\n\
            -A FORWARD -j DOCKER-USER\n\
            -A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n";
        assert_eq!(
            jumps_into(rules, "KUBE-"),
            [("OUTPUT".to_string(), 1), ("OUTPUT".to_string(), 3), ("FORWARD".to_string(), 2)]
        );
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }

    #[test]
    fn the_guard_rejects_what_would_leave_and_lets_the_bridge_talk() {
        let rules = guard_rules(&Network::fixed());
        let forward = &rules.iter().find(|(c, _, _)| *c == "XTASK-DC-FORWARD").unwrap().2;
        let text: Vec<String> = forward.iter().map(|r| r.join(" ")).collect();
        assert!(
            text.contains(
                &"-i xtaskdc0 ! -o xtaskdc0 -j REJECT --reject-with icmp-net-unreachable".to_string()
            )
        );
        assert!(text.contains(&"-d 10.96.0.0/16 -j REJECT --reject-with icmp-net-unreachable".to_string()));
        assert!(!text.iter().any(|r| r.starts_with("-i xtaskdc0 -o xtaskdc0")), "pod to pod stays open");
    }
}
