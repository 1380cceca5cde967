//! A readiness probe for a container: Failed as soon as it stops, with exit code and log tail.

use wait::{BoxFuture, Detail, Probe, Status};

use crate::{Engine, Error, container_status};

/// How many log lines a failure reason and a diagnosis carry.
const TAIL_LINES: usize = 20;

/// Watches a container: ready while it runs (or when another probe passes while it runs),
/// Failed with exit code, OOM kill, restarts and log tail once it has stopped or vanished.
pub struct ContainerProbe {
    engine: Engine,
    name: String,
    ready: Option<Box<dyn Probe>>,
}

impl ContainerProbe {
    /// A probe for container `name` as seen by `engine`.
    pub fn new(engine: Engine, name: String) -> Self {
        Self { engine, name, ready: None }
    }

    /// Ready only when `inner` also passes, e.g. the service's TCP port on the published port.
    pub fn until(mut self, inner: impl Probe + 'static) -> Self {
        self.ready = Some(Box::new(inner));
        self
    }
}

impl Probe for ContainerProbe {
    fn name(&self) -> String {
        match &self.ready {
            Some(p) => format!("{} (container {})", p.name(), self.name),
            None => format!("container {}", self.name),
        }
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            let status = blocking(&self.engine, &self.name, |engine, name| {
                let state = engine.inspect(name)?;
                let logs =
                    || engine.logs(name, Some(TAIL_LINES)).unwrap_or_else(|e| format!("(no logs: {e})"));
                Ok(container_status(name, state.as_ref(), logs))
            })
            .await;
            match status {
                Ok(Status::Ready) => match &mut self.ready {
                    None => Status::Ready,
                    Some(probe) => probe.check().await,
                },
                Ok(other) => other,
                // An engine that is not installed will not appear; any other failure may pass.
                Err(e @ Error::NotInstalled { .. }) => Status::Failed(e.to_string()),
                Err(e) => Status::NotYet(e.to_string()),
            }
        })
    }

    fn diagnose(&mut self) -> BoxFuture<'_, Vec<Detail>> {
        Box::pin(async move {
            let evidence = blocking(&self.engine, &self.name, |engine, name| {
                let state = engine.inspect(name)?;
                let logs = state.as_ref().map(|_| engine.logs(name, Some(TAIL_LINES)));
                Ok((state, logs))
            })
            .await;
            let name = &self.name;
            let mut details = match evidence {
                Err(e) => vec![Detail::Note { text: format!("container {name}: state unavailable: {e}") }],
                Ok((None, _)) => vec![Detail::Note { text: format!("container {name} does not exist") }],
                Ok((Some(state), logs)) => {
                    let mut text = format!("container {name} {}", state.describe());
                    text.push_str(&format!(", started {}, finished {}", state.started_at, state.finished_at));
                    let logs = match logs {
                        Some(Ok(logs)) if logs.trim().is_empty() => "(no output)".to_string(),
                        Some(Ok(logs)) => logs,
                        Some(Err(e)) => format!("(no logs: {e})"),
                        None => String::new(),
                    };
                    let tail: String = logs.lines().map(|l| format!("\n  | {l}")).collect();
                    vec![
                        Detail::Note { text },
                        Detail::Note {
                            text: format!("last {TAIL_LINES} log lines of container {name}:{tail}"),
                        },
                    ]
                }
            };
            if let Some(p) = &mut self.ready {
                details.extend(p.diagnose().await);
            }
            details
        })
    }
}

/// Runs `f` on a blocking thread with a copy of the engine: every engine call spawns a process.
async fn blocking<T: Send + 'static>(
    engine: &Engine,
    name: &str,
    f: impl FnOnce(&Engine, &str) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let (engine, name) = (engine.clone(), name.to_string());
    let action = format!("inspecting container {name}");
    tokio::task::spawn_blocking(move || f(&engine, &name))
        .await
        .unwrap_or_else(|e| Err(Error::Io { action, source: std::io::Error::other(e) }))
}
