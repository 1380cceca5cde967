//! `cargo xtask devcluster`: a single-node Kubernetes on this machine, built from Debian's own
//! source package, for the kind and cluster backends to meet a real API server and kubelet
//! where kind cannot run. One per machine; run as root.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

/// The variable that moves the cluster's state directory (default `<workspace>/.xtask/devcluster`).
const DIR_VAR: &str = "XTASK_DEVCLUSTER_DIR";

/// A single-node Kubernetes from Debian's source package: build it, start it, stop it
///
/// `build` compiles kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
/// and kubectl from Debian's `kubernetes` source package with Debian's Go (once, about 8
/// minutes on 2 cores; cached under ~/.cache/xtask/kubernetes, keyed by the package, Go and the
/// patches), into a folder usable as KUBEBUILDER_ASSETS. `up` starts etcd, the control plane,
/// containerd, the kubelet, kube-proxy, a DNS responder for Service names and a loopback
/// registry, and writes a kubeconfig (0600); `down` stops all of it and removes what it made.
///
/// Then, e.g.:
///   eval "$(cargo xtask devcluster env)"
///   cargo xtask e2e workflowexecution --backend cluster --kubeconfig "$KUBECONFIG" \
///     --registry "$XTASK_DEVCLUSTER_REGISTRY"
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct Devcluster {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Subcommand)]
enum Sub {
    /// Build Kubernetes from Debian's source package (when not cached) and print its folder
    Build {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Start the cluster (building Kubernetes first when needed); a running one is left as it is
    Up {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// How long the cluster may take to become ready, in seconds (the build is not counted).
        #[arg(long, default_value_t = 180, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Stop the cluster and remove everything it made (processes, mounts, bridge, chains, cgroups)
    Down {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show the cluster's processes and its node
    Status {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print `export` lines for a shell: KUBECONFIG, XTASK_DEVCLUSTER_REGISTRY, KUBEBUILDER_ASSETS
    Env,
    /// Serve the cluster's DNS (started by `up`)
    #[command(hide = true)]
    Dns {
        /// The kubeconfig to watch Services with.
        #[arg(long)]
        kubeconfig: PathBuf,
        /// The address to answer on.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The cluster domain.
        #[arg(long, default_value = "cluster.local")]
        domain: String,
    },
}

/// The cluster's state directory.
pub fn state_dir() -> PathBuf {
    std::env::var_os(DIR_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".xtask").join("devcluster"))
}

fn say(line: &str) {
    eprintln!("{line}");
}

impl Devcluster {
    /// The schema of the `--json` document.
    pub fn json_schema(&self) -> Option<&'static str> {
        match &self.command {
            Sub::Build { json: true } => Some("xtask.devcluster-build/1"),
            Sub::Up { json: true, .. } => Some("xtask.devcluster-up/1"),
            Sub::Down { json: true } => Some("xtask.devcluster-down/1"),
            Sub::Status { json: true } => Some("xtask.devcluster-status/1"),
            _ => None,
        }
    }

    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let dir = state_dir();
        match self.command {
            Sub::Build { json } => {
                let assets = devcluster::assets::find_or_build(&say)?;
                if json {
                    println!(
                        "{}",
                        json!({"schema": "xtask.devcluster-build/1", "ok": true, "assets": assets})
                    );
                } else {
                    println!("{}", assets.display());
                }
                Ok(ExitCode::SUCCESS)
            }
            Sub::Up { json, timeout } => {
                let exe = std::env::current_exe()?;
                let options = devcluster::cluster::UpOptions {
                    dir: dir.clone(),
                    dns_command: vec![exe.into(), "devcluster".into(), "dns".into()],
                    timeout: Duration::from_secs(timeout),
                    progress: Arc::new(say),
                };
                let up = runtime.block_on(async {
                    tokio::select! {
                        up = devcluster::cluster::up(options) => up.map(Some),
                        _ = tokio::signal::ctrl_c() => Ok(None),
                    }
                })?;
                let Some(up) = up else {
                    say("interrupted: stopping what started");
                    let layout = devcluster::config::Layout::new(&dir, "");
                    let progress: devcluster::cluster::Progress = Arc::new(say);
                    runtime.block_on(devcluster::teardown::down(&layout, &progress))?;
                    return Ok(ExitCode::from(130));
                };
                if json {
                    println!("{}", json!({"schema": "xtask.devcluster-up/1", "ok": true, "up": up}));
                } else {
                    let how = if up.already { "already running" } else { "up" };
                    say(&format!("devcluster {how} in {:.1}s", up.seconds));
                    println!("kubeconfig: {}", up.kubeconfig.display());
                    println!("registry:   {}", up.registry);
                    println!("assets:     {}", up.assets.display());
                }
                Ok(ExitCode::SUCCESS)
            }
            Sub::Down { json } => {
                let state = devcluster::cluster::State::read(&devcluster::config::Layout::new(&dir, ""))?;
                let layout =
                    devcluster::config::Layout::new(&dir, state.map(|s| s.assets).unwrap_or_default());
                let progress: devcluster::cluster::Progress = Arc::new(say);
                let down = runtime.block_on(devcluster::teardown::down(&layout, &progress))?;
                if json {
                    println!("{}", json!({"schema": "xtask.devcluster-down/1", "ok": true, "down": down}));
                } else if down.recorded {
                    say(&format!(
                        "devcluster stopped: {} processes, {} containers, {} mounts; nothing left behind",
                        down.stopped.len(),
                        down.containers,
                        down.unmounted
                    ));
                } else {
                    say("no devcluster was recorded here; swept what one would leave: nothing left behind");
                }
                Ok(ExitCode::SUCCESS)
            }
            Sub::Status { json } => {
                let status = runtime.block_on(devcluster::cluster::status(&dir))?;
                if json {
                    println!(
                        "{}",
                        json!({"schema": "xtask.devcluster-status/1", "ok": true, "status": status})
                    );
                } else if !status.recorded {
                    println!("no devcluster in {}", status.dir.display());
                } else {
                    for p in &status.parts {
                        println!(
                            "{:<24} pid {:<8} {}",
                            p.name,
                            p.pid,
                            if p.running { "running" } else { "NOT RUNNING" }
                        );
                    }
                    println!("node: {}", status.node);
                    if let Some(k) = &status.kubeconfig {
                        println!("kubeconfig: {}", k.display());
                    }
                    if let Some(r) = &status.registry {
                        println!("registry: {r}");
                    }
                }
                Ok(if status.ready { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Sub::Env => {
                let layout = devcluster::config::Layout::new(&dir, "");
                let Some(state) = devcluster::cluster::State::read(&layout)?.filter(|s| s.ready_at > 0)
                else {
                    anyhow::bail!(devcluster::Error::NotRunning { dir });
                };
                let q = |v: &str| infra::report::shell_quote(v);
                println!("export KUBECONFIG={}", q(&layout.kubeconfig().display().to_string()));
                println!("export XTASK_DEVCLUSTER_REGISTRY={}", q(&state.registry));
                println!("export KUBEBUILDER_ASSETS={}", q(&state.assets.display().to_string()));
                Ok(ExitCode::SUCCESS)
            }
            Sub::Dns { kubeconfig, listen, domain } => {
                runtime.block_on(async {
                    let client = devcluster::cluster::client(&kubeconfig).await?;
                    devcluster::dns::serve(client, listen, domain).await
                })?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
