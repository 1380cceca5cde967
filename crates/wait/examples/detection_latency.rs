//! Measures detection latency: the time from a service becoming ready to `wait_for` returning.
//!
//! For each round a probe starts waiting on a loopback port where nothing listens yet; after a
//! varying delay the "service" comes up (a TCP listener, or a listener that forwards to a real
//! PostgreSQL started through pgserver), and the time until the wait returns is recorded.
//!
//! Run: `cargo run -p wait --release --example detection_latency`

use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use wait::{PostgresProbe, Probe, TcpProbe, wait_for};

const ROUNDS: usize = 40;

#[tokio::main]
async fn main() {
    println!("{ROUNDS} rounds each; the service comes up 0-97 ms after the wait starts\n");
    let tcp = measure(|port| Box::new(TcpProbe::new(format!("127.0.0.1:{port}"))), None).await;
    report("tcp", &tcp);

    let pg = pgserver::PgServer::start().expect("start postgres");
    pg.create_user_and_database("svc", "svc-pw", "app").expect("create the service user");
    let pg_port = pg.port();
    let samples = measure(
        |port| {
            Box::new(PostgresProbe::from_url(&format!("postgres://svc:svc-pw@127.0.0.1:{port}/app")).unwrap())
        },
        Some(pg_port),
    )
    .await;
    report("postgres (SELECT 1 as svc)", &samples);

    // Fail fast: how long a wait takes to give up on what will never recover (deadline 30 s).
    let mut wrong = Vec::new();
    for _ in 0..ROUNDS {
        let url = format!("postgres://svc:not-the-password@127.0.0.1:{pg_port}/app");
        let mut p = PostgresProbe::from_url(&url).unwrap();
        let t = Instant::now();
        assert!(matches!(
            wait_for(&mut p, Duration::from_secs(30)).await,
            Err(wait::WaitError::Failed { .. })
        ));
        wrong.push(t.elapsed());
    }
    report("time to Failed: wrong password", &wrong);
    let dir = tempfile::tempdir().unwrap();
    let mut crashed = Vec::new();
    for round in 0..ROUNDS {
        let child = wait::Spawn::new("sh", dir.path().join(format!("{round}.log")))
            .args(["-c", "echo boom >&2; exit 3"])
            .start()
            .unwrap();
        let mut p = child.probe().until(TcpProbe::new("127.0.0.1:9"));
        let t = Instant::now();
        assert!(matches!(
            wait_for(&mut p, Duration::from_secs(30)).await,
            Err(wait::WaitError::Failed { .. })
        ));
        crashed.push(t.elapsed());
    }
    report("time to Failed: process exits", &crashed);
}

/// Runs the rounds; with `forward_to`, the listener forwards each connection to that port.
async fn measure(probe: impl Fn(u16) -> Box<dyn Probe>, forward_to: Option<u16>) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let port = procs::free_port().unwrap();
        let mut p = probe(port);
        let waiting = tokio::spawn(async move {
            wait_for(p.as_mut(), Duration::from_secs(30)).await.expect("ready");
            Instant::now()
        });
        // Spread the moment of readiness over the backoff's phases.
        tokio::time::sleep(Duration::from_millis((round as u64 * 37) % 98)).await;
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let ready_at = Instant::now();
        let server = tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                if let Some(target) = forward_to {
                    tokio::spawn(async move {
                        let mut outbound = TcpStream::connect(("127.0.0.1", target)).await.unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    });
                }
            }
        });
        let done_at = waiting.await.unwrap();
        server.abort();
        samples.push(done_at.saturating_duration_since(ready_at));
    }
    samples
}

fn report(name: &str, samples: &[Duration]) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<28} median {:6.1} ms   p90 {:6.1} ms   max {:6.1} ms   min {:6.1} ms",
        pick(0.5),
        pick(0.9),
        ms[ms.len() - 1],
        ms[0]
    );
}
