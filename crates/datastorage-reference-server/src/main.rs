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
    let mut running = datastorage_reference_server::start(&loaded).await.context("starting the server")?;
    tokio::select! {
        r = running.wait() => return r.context("serving"),
        r = shutdown_signal() => r?,
    }
    tracing::info!("shutting down");
    running.shutdown(loaded.config.shutdown_timeout()).await.context("shutting down")
}
