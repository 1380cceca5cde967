//! `Options::data_in` (default `$XTASK_PG_DATA_DIR`) moves new clusters' data, e.g. onto a tmpfs.
#![allow(clippy::disallowed_methods)]

use pgserver::{Options, PgServer, remove_data};

#[test]
fn the_configured_directory_holds_the_data_and_removal_finds_it_there() {
    let elsewhere = tempfile::tempdir().unwrap();
    // The server's account must reach it, as it reaches the system temporary directory.
    std::fs::set_permissions(elsewhere.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("postgres");
    let options = Options { data_in: Some(elsewhere.path().to_path_buf()), ..Options::default() };
    let mut pg = PgServer::start_in(&run, options).unwrap();
    assert!(pg.data_dir().starts_with(elsewhere.path()), "{}", pg.data_dir().display());
    assert!(!run.join("data").exists());
    assert_eq!(pg.relocated_because_of(), None, "nothing blocked it: it was asked for");
    assert_eq!(pg.psql("postgres", "SELECT 1").unwrap().trim(), "1");
    pg.stop().unwrap();
    let data = pg.data_dir();
    drop(pg);
    // Teardown finds it through the run's pointer, whatever the setting is then.
    remove_data(&run).unwrap();
    assert!(!data.parent().unwrap().exists(), "the data directory went with the run");
}
