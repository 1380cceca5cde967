//! The engine's JSON and text output as typed values.
//!
//! podman prints JSON arrays with its own field names (`Names` a list, `Labels` a map, networks in
//! lower case); docker prints one object per line with `Names` and `Labels` joined into strings.
//! Both shapes are accepted; docker's is best-effort.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::ContainerState;

/// `container inspect` output for one container (the fields this crate reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Inspected {
    pub(crate) state: RawState,
    // Top-level in both podman 4 and docker.
    #[serde(default)]
    pub(crate) restart_count: u32,
    #[serde(default)]
    pub(crate) network_settings: NetworkSettings,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RawState {
    status: String,
    #[serde(default)]
    running: bool,
    #[serde(default)]
    exit_code: i32,
    #[serde(default, rename = "OOMKilled")]
    oom_killed: bool,
    #[serde(default)]
    error: String,
    #[serde(default)]
    started_at: String,
    #[serde(default)]
    finished_at: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NetworkSettings {
    // docker maps an exposed but unpublished port to null.
    #[serde(default)]
    ports: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PortBinding {
    #[serde(default)]
    host_ip: String,
    host_port: String,
}

impl Inspected {
    /// The container's state.
    pub(crate) fn state(&self) -> ContainerState {
        let s = &self.state;
        ContainerState {
            status: s.status.clone(),
            running: s.running,
            exit_code: s.exit_code,
            oom_killed: s.oom_killed,
            restart_count: self.restart_count,
            error: s.error.clone(),
            started_at: s.started_at.clone(),
            finished_at: s.finished_at.clone(),
        }
    }

    /// The host port published on 127.0.0.1 (or on all addresses) for `port`/tcp.
    pub(crate) fn host_port(&self, port: u16) -> Option<u16> {
        let ports = self.network_settings.ports.as_ref()?;
        let bindings = ports.get(&format!("{port}/tcp"))?.as_ref()?;
        let usable = |b: &&PortBinding| matches!(b.host_ip.as_str(), "127.0.0.1" | "" | "0.0.0.0");
        bindings.iter().find(usable).and_then(|b| b.host_port.parse().ok())
    }
}

/// Labels as podman (a map, or null) or docker (`k=v,k2=v2`) prints them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Labels {
    Map(BTreeMap<String, String>),
    Joined(String),
}

fn labels(labels: Option<Labels>) -> BTreeMap<String, String> {
    match labels {
        None => BTreeMap::new(),
        Some(Labels::Map(map)) => map,
        Some(Labels::Joined(text)) => text
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
    }
}

/// Names as podman (a list) or docker (one string, comma-separated) prints them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Names {
    Many(Vec<String>),
    One(String),
}

/// One line of `ps --all --format json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PsEntry {
    names: Names,
    #[serde(default)]
    labels: Option<Labels>,
}

/// One line of `network ls --format json`.
#[derive(Debug, Deserialize)]
pub(crate) struct NetworkEntry {
    #[serde(alias = "Name")]
    name: String,
    #[serde(default, alias = "Labels")]
    labels: Option<Labels>,
}

/// One element of `secret inspect`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SecretEntry {
    spec: SecretSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SecretSpec {
    name: String,
    #[serde(default)]
    labels: Option<Labels>,
}

/// A container, network or secret found by [`crate::Engine::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// All its labels.
    pub labels: BTreeMap<String, String>,
}

impl From<PsEntry> for Listed {
    fn from(e: PsEntry) -> Self {
        let name = match e.names {
            Names::Many(names) => names.into_iter().next().unwrap_or_default(),
            Names::One(names) => names.split(',').next().unwrap_or_default().to_string(),
        };
        Listed { name, labels: labels(e.labels) }
    }
}

impl From<NetworkEntry> for Listed {
    fn from(e: NetworkEntry) -> Self {
        Listed { name: e.name, labels: labels(e.labels) }
    }
}

impl From<SecretEntry> for Listed {
    fn from(e: SecretEntry) -> Self {
        Listed { name: e.spec.name, labels: labels(e.spec.labels) }
    }
}

/// A JSON array (podman) or one JSON value per line (docker).
pub(crate) fn json_list<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, serde_json::Error> {
    let text = text.trim();
    if text.starts_with('[') {
        return serde_json::from_str(text);
    }
    text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect()
}

/// Whether `labels` match a selector: `key` (any value) or `key=value`.
pub(crate) fn label_matches(labels: &BTreeMap<String, String>, selector: &str) -> bool {
    match selector.split_once('=') {
        Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
        None => labels.contains_key(selector),
    }
}

/// The stdout and stderr of `logs --timestamps` as one text in time order, timestamps removed.
pub(crate) fn merge_logs(stdout: &str, stderr: &str) -> String {
    let (out, err) = (timestamped(stdout), timestamped(stderr));
    let (mut i, mut j) = (0, 0);
    let mut merged = Vec::with_capacity(out.len() + err.len());
    while i < out.len() || j < err.len() {
        // On equal times stdout goes first: the order is stable either way.
        if j == err.len() || (i < out.len() && out[i].0 <= err[j].0) {
            merged.push(out[i].1);
            i += 1;
        } else {
            merged.push(err[j].1);
            j += 1;
        }
    }
    merged.join("\n")
}

/// Each line with a sort key from its leading RFC 3339 timestamp; a line without one sorts
/// with the line before it.
fn timestamped(text: &str) -> Vec<(String, &str)> {
    let mut key = String::new();
    text.lines()
        .map(|line| match line.split_once(' ').and_then(|(ts, rest)| Some((sort_key(ts)?, rest))) {
            Some((k, rest)) => {
                key = k;
                (key.clone(), rest)
            }
            None => (key.clone(), line),
        })
        .collect()
}

/// A timestamp whose fraction is padded to nanoseconds, so that keys compare as strings
/// (Go's RFC 3339 drops trailing zeros: `…:29.72Z` is earlier than `…:29.726Z`).
fn sort_key(ts: &str) -> Option<String> {
    let (date, time) = ts.split_once('T')?;
    if date.len() != 10 || !date.starts_with(|c: char| c.is_ascii_digit()) || time.len() < 8 {
        return None;
    }
    let (seconds, rest) = time.split_at(8);
    let digits = rest.strip_prefix('.').unwrap_or("");
    let fraction: String = digits.chars().take_while(char::is_ascii_digit).collect();
    Some(format!("{date}T{seconds}.{fraction:0<9}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_merge_in_time_order_with_unpadded_fractions() {
        let stdout = "2026-11-23T17:23:29.72Z out 1\n2026-11-23T17:23:29.9Z out 2\n";
        let stderr = "2026-11-23T17:23:29.726Z err 1\ncontinued\n2026-11-23T17:23:30Z err 2\n";
        assert_eq!(merge_logs(stdout, stderr), "out 1\nerr 1\ncontinued\nout 2\nerr 2");
        assert_eq!(merge_logs("", ""), "");
    }

    #[test]
    fn docker_lines_parse_like_podman_arrays() {
        let docker = r#"{"Names":"web,other","Labels":"a=1,owner=me"}
{"Names":"db","Labels":""}"#;
        let listed: Vec<Listed> =
            json_list::<PsEntry>(docker).unwrap().into_iter().map(Listed::from).collect();
        assert_eq!(listed[0].name, "web");
        assert_eq!(listed[0].labels.get("owner").map(String::as_str), Some("me"));
        assert!(listed[1].labels.is_empty());
        let podman = r#"[{"Names":["web"],"Labels":null},{"Names":["db"],"Labels":{"a":"1"}}]"#;
        let listed: Vec<Listed> =
            json_list::<PsEntry>(podman).unwrap().into_iter().map(Listed::from).collect();
        assert_eq!((listed[0].name.as_str(), listed[1].labels.len()), ("web", 1));
        let networks = r#"{"Name":"n1","Labels":"x=1"}"#;
        let n: Vec<NetworkEntry> = json_list(networks).unwrap();
        assert_eq!(Listed::from(n.into_iter().next().unwrap()).name, "n1");
    }

    #[test]
    fn host_ports_come_from_the_loopback_binding() {
        // podman 4.3's shape, and docker's `null` for an exposed port that is not published.
        let inspected: Vec<Inspected> = json_list(
            r#"[{"State":{"Status":"running"},"NetworkSettings":{"Ports":{
                "8000/tcp":[{"HostIp":"127.0.0.1","HostPort":"39331"}],
                "8001/tcp":[{"HostIp":"::1","HostPort":"1"},{"HostIp":"0.0.0.0","HostPort":"39619"}],
                "9000/tcp":null}}}]"#,
        )
        .unwrap();
        let c = &inspected[0];
        assert_eq!((c.host_port(8000), c.host_port(8001)), (Some(39331), Some(39619)));
        assert_eq!((c.host_port(9000), c.host_port(8002)), (None, None));
    }

    #[test]
    fn selectors_match_a_key_or_a_key_and_value() {
        let labels = BTreeMap::from([("owner".to_string(), "me".to_string())]);
        assert!(label_matches(&labels, "owner"));
        assert!(label_matches(&labels, "owner=me"));
        assert!(!label_matches(&labels, "owner=you"));
        assert!(!label_matches(&labels, "other"));
    }
}
