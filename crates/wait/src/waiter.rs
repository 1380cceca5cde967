//! The wait loop: probes checked concurrently with a short backoff, under a deadline.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::{Detail, Diagnosis, Probe, ProbeDiagnosis, Status};

/// The first pause between checks: short, so a dependency that is nearly up is seen at once.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
/// The longest pause between checks, which bounds how late readiness is noticed.
const MAX_PAUSE: Duration = Duration::from_millis(50);
/// How long one check may take before it counts as "not answering".
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long gathering a diagnosis may take.
const DIAGNOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// The callback that hears about progress.
type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// Waits for probes: a deadline, a backoff and a progress callback.
pub struct Waiter {
    timeout: Duration,
    progress_every: Duration,
    first_pause: Duration,
    max_pause: Duration,
    check_timeout: Duration,
    on_progress: Option<ProgressFn>,
}

/// What is still missing, handed to the progress callback every few seconds.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Time since the wait began.
    pub elapsed: Duration,
    /// Each probe that is not ready yet with its latest reason.
    pub pending: Vec<(String, String)>,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "waiting {}s:", self.elapsed.as_secs())?;
        for (i, (probe, reason)) in self.pending.iter().enumerate() {
            write!(f, "{} {probe}: {reason}", if i == 0 { "" } else { ";" })?;
        }
        Ok(())
    }
}

/// A successful wait.
#[derive(Debug, Clone, Copy)]
pub struct WaitReport {
    /// Time from the start of the wait until every probe was ready.
    pub elapsed: Duration,
}

/// A wait that ended without every probe ready.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// A probe reported a state it will not recover from.
    #[error("{probe} failed: {reason}")]
    Failed {
        /// The failed probe's name.
        probe: String,
        /// Why it failed.
        reason: String,
        /// Evidence gathered after the failure.
        diagnosis: Box<Diagnosis>,
    },
    /// The deadline passed first.
    #[error("not ready after {:.1}s: {pending}", .waited.as_secs_f64())]
    TimedOut {
        /// How long the wait ran.
        waited: Duration,
        /// The probes still pending with their last reasons.
        pending: String,
        /// Evidence gathered after the deadline.
        diagnosis: Box<Diagnosis>,
    },
}

impl WaitError {
    /// The evidence gathered when the wait gave up.
    pub fn diagnosis(&self) -> &Diagnosis {
        match self {
            WaitError::Failed { diagnosis, .. } | WaitError::TimedOut { diagnosis, .. } => diagnosis,
        }
    }
}

/// Waits for one probe with the default backoff and no progress output.
pub async fn wait_for(probe: &mut dyn Probe, timeout: Duration) -> Result<WaitReport, WaitError> {
    Waiter::new(timeout).wait_for(probe).await
}

impl Waiter {
    /// A waiter that gives up after `timeout`, checks with a 2 ms..50 ms backoff and reports every 5 s.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            progress_every: Duration::from_secs(5),
            first_pause: FIRST_PAUSE,
            max_pause: MAX_PAUSE,
            check_timeout: CHECK_TIMEOUT,
            on_progress: None,
        }
    }

    /// Calls `f` with what is still missing every `progress_every` (5 s unless changed).
    pub fn on_progress(mut self, f: impl FnMut(&Progress) + Send + 'static) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Sets how often the progress callback runs.
    pub fn progress_every(mut self, every: Duration) -> Self {
        self.progress_every = every;
        self
    }

    /// Sets the backoff between checks of one probe: doubling from `first` up to `max`.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_pause = first;
        self.max_pause = max.max(first);
        self
    }

    /// Sets how long one check may run before it counts as not answering (5 s unless changed).
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// Waits until `probe` is ready, fails, or the deadline passes.
    pub async fn wait_for(&mut self, probe: &mut dyn Probe) -> Result<WaitReport, WaitError> {
        self.wait_all(&mut [probe]).await
    }

    /// Like [`Waiter::wait_for`], for synchronous code (a server launcher): the wait runs on a
    /// thread of its own with a runtime of its own, so it works inside an async runtime or not.
    pub fn wait_for_blocking(&mut self, probe: &mut dyn Probe) -> Result<WaitReport, WaitError> {
        std::thread::scope(|scope| {
            let waiting =
                scope.spawn(|| match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime.block_on(self.wait_for(probe)),
                    Err(e) => {
                        let reason = format!("starting a runtime to wait on: {e}");
                        let diagnosis = Box::new(Diagnosis {
                            verdict: "failed".into(),
                            waited_ms: 0,
                            probes: Vec::new(),
                        });
                        Err(WaitError::Failed { probe: probe.name(), reason, diagnosis })
                    }
                });
            waiting.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Waits until every probe is ready; the first probe to fail ends the wait at once.
    pub async fn wait_all(&mut self, probes: &mut [&mut dyn Probe]) -> Result<WaitReport, WaitError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let names: Vec<String> = probes.iter().map(|p| p.name()).collect();
        let last: Mutex<Vec<Status>> = Mutex::new(vec![Status::NotYet(NOT_CHECKED.into()); probes.len()]);
        let outcome = {
            let mut running: FuturesUnordered<_> = probes
                .iter_mut()
                .enumerate()
                .map(|(i, probe)| {
                    let last = &last;
                    let (first, max, check_timeout) = (self.first_pause, self.max_pause, self.check_timeout);
                    async move {
                        let status = drive(&mut **probe, first, max, check_timeout, |s| {
                            last.lock().expect("status lock")[i] = s.clone();
                        })
                        .await;
                        (i, status)
                    }
                })
                .collect();
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::from_std(started + self.progress_every),
                self.progress_every,
            );
            let timer = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::pin!(timer);
            loop {
                tokio::select! {
                    next = running.next() => match next {
                        None => break None,
                        Some((_, Status::Ready)) => {}
                        // `drive` returns only Ready or Failed.
                        Some((i, _)) => break Some(i),
                    },
                    _ = ticker.tick() => {
                        if let Some(f) = self.on_progress.as_mut() {
                            f(&progress(started, &names, &last.lock().expect("status lock")));
                        }
                    }
                    _ = &mut timer => break Some(usize::MAX),
                }
            }
        };
        let mut last = last.into_inner().expect("status lock");
        // A first check still running at the deadline never answered at all.
        for status in last.iter_mut().filter(|s| s.reason() == Some(NOT_CHECKED)) {
            *status = Status::NotYet(format!("no answer within {:?}", started.elapsed()));
        }
        let Some(culprit) = outcome else {
            return Ok(WaitReport { elapsed: started.elapsed() });
        };
        let timed_out = culprit == usize::MAX;
        let mut report = Vec::new();
        for (i, probe) in probes.iter_mut().enumerate() {
            if last[i].is_ready() {
                continue;
            }
            // Evidence is gathered for the failed probe, or for every pending one after a timeout.
            let details = if timed_out || i == culprit { gather(&mut **probe).await } else { Vec::new() };
            report.push(ProbeDiagnosis { probe: names[i].clone(), status: last[i].clone(), details });
        }
        let waited = started.elapsed();
        let diagnosis = Box::new(Diagnosis {
            verdict: if timed_out { "timed out" } else { "failed" }.to_string(),
            waited_ms: waited.as_millis() as u64,
            probes: report,
        });
        if timed_out {
            let pending = progress(started, &names, &last).pending;
            let pending = pending.iter().map(|(p, r)| format!("{p}: {r}")).collect::<Vec<_>>().join("; ");
            Err(WaitError::TimedOut { waited, pending, diagnosis })
        } else {
            let reason = last[culprit].reason().unwrap_or_default().to_string();
            Err(WaitError::Failed { probe: names[culprit].clone(), reason, diagnosis })
        }
    }
}

/// What a probe's status is until its first check answers.
const NOT_CHECKED: &str = "not checked yet";

/// Checks one probe until it is ready or failed, recording every status through `record`.
async fn drive(
    probe: &mut dyn Probe,
    first: Duration,
    max: Duration,
    check_timeout: Duration,
    record: impl Fn(&Status),
) -> Status {
    let mut pause = first;
    loop {
        // Not cut to the deadline: a check still running then is dropped unrecorded, so the
        // last real answer (e.g. which table is missing) is what the timeout reports.
        let status = match tokio::time::timeout(check_timeout, probe.check()).await {
            Ok(status) => status,
            Err(_) => Status::NotYet(format!("no answer within {check_timeout:?}")),
        };
        record(&status);
        if !matches!(status, Status::NotYet(_)) {
            return status;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(max);
    }
}

async fn gather(probe: &mut dyn Probe) -> Vec<Detail> {
    match tokio::time::timeout(DIAGNOSE_TIMEOUT, probe.diagnose()).await {
        Ok(details) => details,
        Err(_) => {
            vec![Detail::Note { text: format!("diagnosis did not finish within {DIAGNOSE_TIMEOUT:?}") }]
        }
    }
}

fn progress(started: Instant, names: &[String], last: &[Status]) -> Progress {
    let pending =
        names.iter().zip(last).filter_map(|(n, s)| s.reason().map(|r| (n.clone(), r.to_string()))).collect();
    Progress { elapsed: started.elapsed(), pending }
}
