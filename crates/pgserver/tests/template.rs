//! Templates against the machine's real PostgreSQL: a cluster stopped with its passwords
//! cleared is a template; servers start on copies of it with passwords of their own.
#![allow(clippy::disallowed_methods)]

use pgserver::{Binaries, Options, PgServer};

/// Whether `user` with `password` can log in over TCP on `port`.
fn logs_in(port: u16, user: &str, password: &str, db: &str) -> Result<String, String> {
    let out = std::process::Command::new(Binaries::locate().unwrap().tool("psql"))
        .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-d", db])
        .args(["-c", "SELECT count(*) FROM kept"])
        .env("PGPASSWORD", password)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_template_copies_the_data_and_no_password_and_each_copy_gets_its_own() {
    let work = tempfile::tempdir().unwrap();
    // The data in the server's directory, so that it can be read as a template once stopped.
    let options = Options { data_in: Some(work.path().join("source")), ..Options::default() };
    let mut source = PgServer::start_in(&work.path().join("source"), options).unwrap();
    source.create_user_and_database("svc", "first-password", "appdb").unwrap();
    source
        .psql(
            "appdb",
            "CREATE TABLE kept (x int); INSERT INTO kept VALUES (1), (2); ALTER TABLE kept OWNER TO svc;",
        )
        .unwrap();
    source.psql("postgres", "ALTER ROLE svc PASSWORD NULL; ALTER ROLE postgres PASSWORD NULL;").unwrap();
    source.stop().unwrap();
    let template = source.data_dir();
    assert!(!template.join("postmaster.pid").exists(), "the template is a stopped cluster");

    let mut copies = Vec::new();
    for (n, password) in ["second-password", "third-password"].iter().enumerate() {
        let dir = work.path().join(format!("copy{n}"));
        let copy =
            PgServer::start_from_template(&dir, &template, Options::default(), &[("svc", password)]).unwrap();
        assert_eq!(logs_in(copy.port(), "svc", password, "appdb").unwrap(), "2", "the data came along");
        let old = logs_in(copy.port(), "svc", "first-password", "appdb").unwrap_err();
        assert!(old.contains("password authentication failed"), "{old}");
        copies.push(copy);
    }
    assert_ne!(copies[0].password(), copies[1].password(), "each copy has its own superuser password");
    // A server whose data directory already holds a cluster is not overwritten.
    let again = PgServer::start_from_template(&work.path().join("copy0"), &template, Options::default(), &[]);
    assert!(again.is_err(), "copying over a cluster must fail");
    // The copies' data may live outside the temporary directory (a tmpfs): removed as teardown does.
    drop(copies);
    for n in 0..2 {
        pgserver::remove_data(&work.path().join(format!("copy{n}"))).unwrap();
    }
}
