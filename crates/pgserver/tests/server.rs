//! The launcher against the machine's real PostgreSQL binaries.
#![allow(clippy::disallowed_methods)]

use pgserver::{PgServer, pid_alive};

#[test]
fn starts_answers_restarts_and_cleans_up() {
    let mut pg = PgServer::start().expect("start");
    assert_eq!(pg.psql("postgres", "SELECT 40 + 2").unwrap().trim(), "42");
    pg.create_user_and_database("svc", "s3cret'quote", "appdb").unwrap();
    let who = pg.psql("appdb", "SELECT current_database()").unwrap();
    assert_eq!(who.trim(), "appdb");

    let port = pg.port();
    let first_pid = pg.pid().unwrap();
    pg.restart().unwrap();
    assert_eq!(pg.port(), port, "a restart keeps the port clients were given");
    assert!(!pid_alive(first_pid), "the old server process is gone");
    assert_eq!(pg.psql("appdb", "SELECT 1").unwrap().trim(), "1", "data survives a restart");

    let dir = pg.data_dir();
    let pid = pg.pid().unwrap();
    drop(pg);
    assert!(!pid_alive(pid), "dropping the server stops it");
    assert!(!dir.exists(), "dropping the server removes its directory");
}

#[test]
fn password_authentication_is_enforced_over_tcp() {
    let pg = PgServer::start().unwrap();
    let err = std::process::Command::new(pgserver::Binaries::locate().unwrap().tool("psql"))
        .args(["-X", "-h", "127.0.0.1", "-p", &pg.port().to_string(), "-U", "postgres", "-c", "SELECT 1"])
        .env("PGPASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("password authentication failed"));
}

#[test]
fn a_failed_create_user_does_not_show_the_password() {
    let pg = PgServer::start().unwrap();
    pg.create_user_and_database("svc", "n0t-in-errors", "svcdb").unwrap();
    let err = pg.create_user_and_database("svc", "n0t-in-errors", "other").unwrap_err().to_string();
    assert!(err.contains("CREATE ROLE \"svc\" LOGIN PASSWORD '***'"), "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert!(!err.contains("n0t-in-errors"), "{err}");
}

#[test]
fn psql_reads_several_statements_from_stdin() {
    let pg = PgServer::start().unwrap();
    let out = pg
        .psql("postgres", "CREATE TABLE t (a int);\nINSERT INTO t VALUES (1), (2);\nSELECT sum(a) FROM t")
        .unwrap();
    assert_eq!(out.trim(), "3");
    let err = pg.psql("postgres", "SELECT nosuchcolumn FROM t; SELECT 1").unwrap_err().to_string();
    assert!(err.contains("nosuchcolumn") && err.contains("does not exist"), "{err}");
}

#[test]
fn a_taken_port_is_reported_with_the_server_log() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let err = PgServer::start_in(
        &dir.path().join("pg"),
        pgserver::Options { port: Some(port), ..Default::default() },
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("postgres exited"), "{text}");
    assert!(
        text.contains("could not bind") || text.contains("could not create any TCP/IP sockets"),
        "{text}"
    );
    // The data may live outside the temporary directory (a tmpfs): removed the way teardown does.
    pgserver::remove_data(&dir.path().join("pg")).unwrap();
}

#[test]
fn an_existing_cluster_is_started_again_without_initdb() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pg");
    let mut first = PgServer::start_in(&root, pgserver::Options::default()).unwrap();
    first.create_database("kept").unwrap();
    let (port, password) = (first.port(), first.password().to_string());
    first.stop().unwrap();
    drop(first);
    let options = pgserver::Options { port: Some(port), password: Some(password), ..Default::default() };
    let again = PgServer::start_in(&root, options).unwrap();
    assert_eq!(again.psql("kept", "SELECT current_database()").unwrap().trim(), "kept");
    drop(again);
    pgserver::remove_data(&root).unwrap();
}

#[test]
fn a_handed_over_server_that_exits_is_not_alive_even_before_it_is_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let pg =
        PgServer::start_in(&dir.path().join("pg"), pgserver::Options { detach: true, ..Default::default() })
            .unwrap();
    // This process stays the parent and never reaps it, as `infra e2e` does while tests run.
    let pid = pg.keep_running().unwrap();
    pgserver::stop_pid(pid).unwrap();
    assert!(!pid_alive(pid), "an exited (zombie) server counts as stopped");
    pgserver::remove_data(&dir.path().join("pg")).unwrap();
}

/// A newcomer's checkout under a directory the server's account cannot enter (`/root`, any 0700
/// parent): run as root, the server's data goes where its account can reach it, the server
/// starts, starts again on the same data, and the removal takes the data wherever it went.
#[test]
fn a_directory_closed_to_the_servers_account_moves_the_data_where_it_can_reach_it() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: not root, so the server runs as ourselves and reaches whatever we reach");
        return;
    }
    let closed = tempfile::tempdir().unwrap();
    std::fs::set_permissions(closed.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let dir = closed.path().join("checkout/.xtask/runs/r1/postgres");
    let mut pg =
        PgServer::start_in(&dir, pgserver::Options::default()).expect("starts despite the 0700 parent");
    assert_eq!(pg.relocated_because_of(), Some(closed.path().canonicalize().unwrap().as_path()));
    let data = pg.data_dir();
    assert!(!data.starts_with(closed.path()) && data.join("PG_VERSION").exists(), "{}", data.display());
    let home = data.parent().unwrap().to_path_buf();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&home).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "only the server's account enters it");
    pg.psql("postgres", "CREATE TABLE kept (x int)").unwrap();
    let password = pg.password().to_string();
    pg.stop().unwrap();
    drop(pg);

    let options = pgserver::Options { password: Some(password), ..Default::default() };
    let pg = PgServer::start_in(&dir, options).expect("starts again on the data it left");
    assert_eq!(pg.data_dir(), data);
    assert_eq!(pg.psql("postgres", "SELECT to_regclass('kept') IS NOT NULL").unwrap().trim(), "t");
    drop(pg);

    pgserver::remove_data(&dir).unwrap();
    assert!(!home.exists(), "{} removed with the server's directory", home.display());
    assert!(!dir.join(pgserver::DATA_POINTER).exists());
}
