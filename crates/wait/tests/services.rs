//! The PostgreSQL and Redis probes against real servers started on free ports by this test.

use std::time::Duration;

use pgserver::PgServer;
use redisserver::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wait::{PostgresProbe, Probe, RedisProbe, Status, WaitError, Waiter, wait_for};

/// Long enough never to be reached by a probe that fails fast or a server that starts normally.
const PATIENCE: Duration = Duration::from_secs(60);

fn failed_reason(result: Result<wait::WaitReport, WaitError>) -> String {
    match result {
        Err(WaitError::Failed { reason, .. }) => reason,
        other => panic!("expected a failed wait, got {other:?}"),
    }
}

fn pg_with_app_user() -> PgServer {
    let pg = PgServer::start().expect("start postgres");
    pg.create_user_and_database("svc", "svc-pw", "app").unwrap();
    pg
}

fn app_url(pg: &PgServer, password: &str, db: &str) -> String {
    format!("postgres://svc:{password}@127.0.0.1:{}/{db}", pg.port())
}

#[tokio::test]
async fn postgres_is_ready_when_the_service_user_can_query() {
    let pg = pg_with_app_user();
    let mut probe = PostgresProbe::from_url(&app_url(&pg, "svc-pw", "app")).unwrap();
    assert_eq!(probe.check().await, Status::Ready);
    wait_for(&mut probe, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn a_wrong_postgres_password_fails_at_once_with_the_sqlstate() {
    let pg = pg_with_app_user();
    let mut probe = PostgresProbe::from_url(&app_url(&pg, "wrong", "app")).unwrap();
    let started = std::time::Instant::now();
    let reason = failed_reason(wait_for(&mut probe, PATIENCE).await);
    assert_eq!(reason, "password authentication failed for user \"svc\" (SQLSTATE 28P01)");
    // Failing rather than timing out is the point; this bound only catches a gross regression.
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_missing_database_fails_at_once() {
    let pg = pg_with_app_user();
    let mut probe = PostgresProbe::from_url(&app_url(&pg, "svc-pw", "nosuchdb")).unwrap();
    let reason = failed_reason(wait_for(&mut probe, PATIENCE).await);
    assert_eq!(reason, "database \"nosuchdb\" does not exist (SQLSTATE 3D000)");
}

#[tokio::test]
async fn a_table_not_migrated_yet_is_waited_for() {
    let pg = pg_with_app_user();
    let mut probe = PostgresProbe::from_url(&app_url(&pg, "svc-pw", "app"))
        .unwrap()
        .query("SELECT 1 FROM audit_events LIMIT 1");
    let Status::NotYet(reason) = probe.check().await else { panic!("the table does not exist yet") };
    assert_eq!(reason, "relation \"audit_events\" does not exist (SQLSTATE 42P01)");
    let waiting = tokio::spawn(async move { wait_for(&mut probe, PATIENCE).await });
    pg.psql("app", "CREATE TABLE audit_events (id bigint); ALTER TABLE audit_events OWNER TO svc").unwrap();
    waiting.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_server_that_is_down_or_starting_is_waited_for() {
    let mut pg = pg_with_app_user();
    pg.stop().unwrap();
    let mut probe = PostgresProbe::from_url(&app_url(&pg, "svc-pw", "app")).unwrap();
    let Status::NotYet(reason) = probe.check().await else { panic!("the server is stopped") };
    assert!(reason.contains("Connection refused"), "{reason}");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let waiting = tokio::spawn(async move {
        Waiter::new(PATIENCE)
            .progress_every(Duration::from_millis(5))
            .on_progress(move |p| record.lock().unwrap().extend(p.pending.iter().map(|(_, r)| r.clone())))
            .wait_for(&mut probe)
            .await
    });
    // The probe is already waiting while the server goes through startup.
    let pg = tokio::task::spawn_blocking(move || {
        pg.restart().unwrap();
        pg
    })
    .await
    .unwrap();
    waiting.await.unwrap().expect("ready once the server is up");
    assert!(!seen.lock().unwrap().is_empty(), "progress was reported while waiting");
    drop(pg);
}

/// A fake server that answers every startup packet with 57P03, as PostgreSQL does during recovery.
#[tokio::test]
async fn the_starting_up_sqlstate_is_not_yet() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let len = sock.read_u32().await.unwrap() as usize;
            let mut startup = vec![0; len - 4];
            sock.read_exact(&mut startup).await.unwrap();
            let mut fields = Vec::new();
            for (tag, value) in [
                (b'S', "FATAL"),
                (b'V', "FATAL"),
                (b'C', "57P03"),
                (b'M', "the database system is starting up"),
            ] {
                fields.push(tag);
                fields.extend_from_slice(value.as_bytes());
                fields.push(0);
            }
            fields.push(0);
            let mut msg = vec![b'E'];
            msg.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
            msg.extend_from_slice(&fields);
            sock.write_all(&msg).await.unwrap();
        }
    });
    let mut probe = PostgresProbe::from_url(&format!("postgres://svc:pw@127.0.0.1:{port}/app")).unwrap();
    assert_eq!(
        probe.check().await,
        Status::NotYet("the database system is starting up (SQLSTATE 57P03)".into())
    );
}

#[tokio::test]
async fn redis_with_and_without_a_password() {
    let open = RedisServer::start().unwrap();
    let mut probe = RedisProbe::from_url(&open.url()).unwrap();
    wait_for(&mut probe, PATIENCE).await.unwrap();

    let locked = RedisServer::start_with_password("r3dis").unwrap();
    let mut probe = RedisProbe::from_url(&locked.url()).unwrap();
    wait_for(&mut probe, PATIENCE).await.unwrap();

    let mut no_password = RedisProbe::new(format!("127.0.0.1:{}", locked.port()));
    let reason = failed_reason(wait_for(&mut no_password, PATIENCE).await);
    assert!(reason.starts_with("PING was refused: NOAUTH Authentication required"), "{reason}");

    let mut wrong = RedisProbe::new(format!("127.0.0.1:{}", locked.port())).auth(None, "nope");
    let reason = failed_reason(wait_for(&mut wrong, PATIENCE).await);
    assert!(reason.starts_with("AUTH was refused: WRONGPASS"), "{reason}");

    let mut password_for_open = RedisProbe::new(format!("127.0.0.1:{}", open.port())).auth(None, "x");
    let reason = failed_reason(wait_for(&mut password_for_open, PATIENCE).await);
    assert!(reason.starts_with("AUTH was refused: ERR"), "{reason}");
}

#[tokio::test]
async fn a_restarting_redis_is_waited_for() {
    let mut redis = RedisServer::start_with_password("pw").unwrap();
    redis.stop().unwrap();
    let mut probe = RedisProbe::from_url(&redis.url()).unwrap();
    let Status::NotYet(reason) = probe.check().await else { panic!("the server is stopped") };
    assert!(reason.contains("Connection refused"), "{reason}");
    let waiting = tokio::spawn(async move { wait_for(&mut probe, PATIENCE).await });
    let redis = tokio::task::spawn_blocking(move || {
        redis.restart().unwrap();
        redis
    })
    .await
    .unwrap();
    waiting.await.unwrap().unwrap();
    drop(redis);
}

/// A fake server that is loading its dataset, as Redis answers after a restart with a big RDB.
#[tokio::test]
async fn a_loading_redis_is_not_yet() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0; 64];
            let _ = sock.read(&mut buf).await;
            let _ = sock.write_all(b"-LOADING Redis is loading the dataset in memory\r\n").await;
        }
    });
    let mut probe = RedisProbe::new(addr);
    assert_eq!(probe.check().await, Status::NotYet("LOADING Redis is loading the dataset in memory".into()));
}

#[tokio::test]
async fn postgres_and_redis_are_awaited_together() {
    let pg = pg_with_app_user();
    let redis = RedisServer::start_with_password("pw").unwrap();
    let mut pg_probe = PostgresProbe::from_url(&app_url(&pg, "svc-pw", "app")).unwrap();
    let mut redis_probe = RedisProbe::from_url(&redis.url()).unwrap();
    Waiter::new(PATIENCE).wait_all(&mut [&mut pg_probe, &mut redis_probe]).await.unwrap();

    // One failing probe ends the wait at once; the other, never ready, is listed as pending.
    let mut bad_pg = PostgresProbe::from_url(&app_url(&pg, "bad", "app")).unwrap();
    let mut nothing = wait::TcpProbe::new("127.0.0.1:1");
    let err = Waiter::new(PATIENCE).wait_all(&mut [&mut nothing, &mut bad_pg]).await.unwrap_err();
    let WaitError::Failed { probe, .. } = &err else { panic!("{err:?}") };
    assert_eq!(probe, &format!("postgres svc@127.0.0.1:{}/app", pg.port()));
    let d = err.diagnosis();
    assert_eq!(d.verdict, "failed");
    assert_eq!(d.probes.len(), 2);
    assert!(matches!(d.probes[0].status, Status::NotYet(_)), "{d:?}");
    assert!(matches!(d.probes[1].status, Status::Failed(_)), "{d:?}");
}
