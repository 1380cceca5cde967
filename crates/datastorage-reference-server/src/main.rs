//! `datastorage-reference-server`: reads DataStorage's config (`--config` or `CONFIG_PATH`),
//! logs to stderr at the configured level, serves until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use datastorage::LogLevel;

/// A reference DataStorage service for test environments.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// DataStorage's config.yaml.
    #[arg(long, env = "CONFIG_PATH")]
    config: PathBuf,
    /// How /api/v1 calls are authenticated: `kube` reviews each Bearer token with the API
    /// server of KUBECONFIG (else the pod's own), as the service does; `off` lets every call
    /// through (a suite without a Kubernetes API).
    #[arg(long, value_enum, default_value_t = AuthMode::Kube)]
    auth: AuthMode,
}

/// The `--auth` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuthMode {
    /// TokenReview and SubjectAccessReview through the API server.
    Kube,
    /// No authentication.
    Off,
}

/// JSON lines on stderr, as the service logs.
fn init_logging(level: LogLevel) {
    let level = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .json()
        .init();
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let loaded = match datastorage::load(&args.config) {
        Ok(loaded) => loaded,
        Err(e) => {
            // In the form editors and CI link to the file, one line per invalid field.
            let diagnostics = e.diagnostics();
            if diagnostics.is_empty() {
                eprintln!("error: reading the configuration: {e}");
            }
            for d in diagnostics {
                eprintln!("{d}");
            }
            std::process::exit(2);
        }
    };
    init_logging(loaded.config.logging.level);
    for w in &loaded.warnings {
        eprintln!("{}", w.diagnostic(&loaded.path, diag::Severity::Warning));
        tracing::warn!(field = %w.field, line = w.at.map(|(l, _)| l), "config: {}", w.reason);
    }
    let auth = match args.auth {
        AuthMode::Off => datastorage_reference_server::Auth::Off,
        // As the service: without a Kubernetes client it does not start (exit 1).
        AuthMode::Kube => datastorage_reference_server::Auth::Reviews(
            datastorage_reference_server::auth::Reviewer::from_env().await.context("starting the server")?,
        ),
    };
    let mut running =
        datastorage_reference_server::start(&loaded, auth).await.context("starting the server")?;
    tokio::select! {
        r = running.wait() => return r.context("serving"),
        r = shutdown_signal() => r?,
    }
    tracing::info!("shutting down");
    running.shutdown(loaded.config.shutdown_timeout()).await.context("shutting down")
}
