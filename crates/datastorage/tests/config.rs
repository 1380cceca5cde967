//! The model rendered, written, read back and validated, with snapshots of the rendered files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use datastorage::{Config, Credentials, DataStorage, Error, FileKind, Layout, LogLevel};

/// Fixed test credentials: snapshots show exactly what a service would read.
fn model() -> DataStorage {
    DataStorage {
        config: Config::local(18100, 15432, 16379),
        credentials: Credentials {
            db_username: "slm_user".into(),
            db_password: "test_password".into(),
            redis_password: "redis_test_password".into(),
        },
    }
}

fn file_text(bundle: &datastorage::Bundle, name: &str) -> String {
    bundle.file(name).unwrap_or_else(|| panic!("{name} rendered")).contents.clone()
}

#[test]
fn renders_config_and_secrets_for_a_local_process() {
    let bundle = model().render(&Layout::process(Path::new("/run/xtask/ds"))).unwrap();
    let names: Vec<_> = bundle.files.iter().map(|f| (f.name(), format!("{:o}", f.mode), f.kind)).collect();
    assert_eq!(
        names,
        [
            ("config.yaml", "644".to_string(), FileKind::Config),
            ("db-secrets.yaml", "600".to_string(), FileKind::Secret),
            ("redis-secrets.yaml", "600".to_string(), FileKind::Secret),
        ]
    );
    assert_eq!(bundle.env, [("CONFIG_PATH".to_string(), "/run/xtask/ds/config.yaml".to_string())]);
    insta::assert_snapshot!("process_config_yaml", file_text(&bundle, "config.yaml"));
    insta::assert_snapshot!("process_db_secrets_yaml", file_text(&bundle, "db-secrets.yaml"));
    insta::assert_snapshot!("process_redis_secrets_yaml", file_text(&bundle, "redis-secrets.yaml"));
}

#[test]
fn renders_container_paths_from_the_same_model() {
    let bundle = model().render(&Layout::container()).unwrap();
    let paths: Vec<_> = bundle.files.iter().map(|f| f.path.display().to_string()).collect();
    assert_eq!(
        paths,
        [
            "/etc/datastorage/config.yaml",
            "/etc/datastorage/secrets/db-secrets.yaml",
            "/etc/datastorage/secrets/redis-secrets.yaml"
        ]
    );
    let config = file_text(&bundle, "config.yaml");
    assert!(config.contains("secretsFile: /etc/datastorage/secrets/db-secrets.yaml"), "{config}");
    assert_eq!(bundle.env[0].1, "/etc/datastorage/config.yaml");
}

#[test]
fn written_files_have_their_modes_and_read_back_as_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let ds = model();
    let env = ds.write_for_process(dir.path()).unwrap();
    let config_path = dir.path().join("config.yaml");
    assert_eq!(env, [("CONFIG_PATH".to_string(), config_path.display().to_string())]);
    for (name, mode) in [("config.yaml", 0o644), ("db-secrets.yaml", 0o600), ("redis-secrets.yaml", 0o600)] {
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
    }

    let loaded = datastorage::load(&config_path).unwrap();
    assert_eq!(loaded.credentials, ds.credentials);
    let mut expected = ds.config.clone();
    expected.database.secrets_file = dir.path().join("db-secrets.yaml");
    expected.redis.secrets_file = dir.path().join("redis-secrets.yaml");
    assert_eq!(loaded.config, expected);
}

#[test]
fn rewriting_tightens_a_secrets_file_that_was_world_readable() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("db-secrets.yaml");
    std::fs::write(&secrets, "old").unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    model().write_for_process(dir.path()).unwrap();
    assert_eq!(std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn awkward_passwords_survive_the_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut ds = model();
    ds.credentials.db_password = "p@ss: 'w\"ord' # not a comment".into();
    ds.credentials.redis_password = "0123".into();
    ds.write_for_process(dir.path()).unwrap();
    let loaded = datastorage::load(&dir.path().join("config.yaml")).unwrap();
    assert_eq!(loaded.credentials, ds.credentials);

    ds.credentials.redis_password = String::new();
    ds.write_for_process(dir.path()).unwrap();
    let loaded = datastorage::load(&dir.path().join("config.yaml")).unwrap();
    assert_eq!(loaded.credentials.redis_password, "", "an empty Redis password is allowed");
}

#[test]
fn the_seed_config_file_parses() {
    // config.yaml as the working AIAnalysis E2E setup wrote it (seed 004).
    let text = r#"
shutdownTimeout: 30s
server:
  port: 8080
  host: "0.0.0.0"
  read_timeout: 30s
  write_timeout: 30s
database:
  host: postgresql
  port: 5432
  name: action_history
  user: slm_user
  ssl_mode: disable
  max_open_conns: 25
  max_idle_conns: 5
  conn_max_lifetime: 5m
  conn_max_idle_time: 10m
  secretsFile: "/etc/datastorage/secrets/db-secrets.yaml"
  usernameKey: "username"
  passwordKey: "password"
redis:
  addr: redis:6379
  db: 0
  dlq_stream_name: dlq-stream
  dlq_max_len: 1000
  dlq_consumer_group: dlq-group
  secretsFile: "/etc/datastorage/secrets/redis-secrets.yaml"
  passwordKey: "password"
logging:
  level: debug
  format: json
"#;
    let config = Config::from_yaml(text, Path::new("config.yaml")).unwrap();
    assert_eq!(config.server.host, "0.0.0.0");
    assert_eq!(config.database.conn_max_lifetime.get().as_secs(), 300);
    assert_eq!(config.redis.addr, "redis:6379");
    assert_eq!(config.logging.level, LogLevel::Debug);
}

#[test]
fn invalid_fields_are_all_named_with_the_file() {
    let mut ds = model();
    ds.config.server.port = 0;
    ds.config.database.ssl_mode = "on".into();
    ds.config.database.max_idle_conns = 50;
    ds.config.redis.addr = "redis".into();
    ds.config.redis.dlq_max_len = 0;
    let err = ds.render(&Layout::process(Path::new("/run/xtask/ds"))).unwrap_err();
    insta::assert_snapshot!("invalid_fields", err.to_string());
}

#[test]
fn a_misspelt_field_is_an_error_naming_the_file_and_field() {
    let text = model().render(&Layout::process(Path::new("/x"))).unwrap().files[0].contents.clone();
    let text = text.replace("secretsFile", "secretFile");
    let err = Config::from_yaml(&text, Path::new("/x/config.yaml")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Parse { .. }), "{msg}");
    assert!(msg.starts_with("/x/config.yaml: "), "{msg}");
    assert!(msg.contains("unknown field `secretFile`"), "{msg}");
}

#[test]
fn a_bad_value_is_an_error_naming_the_file() {
    let text = model().render(&Layout::process(Path::new("/x"))).unwrap().files[0].contents.clone();
    let text = text.replace("read_timeout: 30s", "read_timeout: 30 seconds");
    let msg = Config::from_yaml(&text, Path::new("/x/config.yaml")).unwrap_err().to_string();
    assert!(msg.starts_with("/x/config.yaml: "), "{msg}");
    assert!(msg.contains("invalid duration `30 seconds`"), "{msg}");
}

#[test]
fn a_missing_secret_key_names_the_secrets_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    model().write_for_process(dir.path()).unwrap();
    std::fs::write(dir.path().join("db-secrets.yaml"), "username: slm_user\n").unwrap();
    let err = datastorage::load(&dir.path().join("config.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: key `password` (named by database.passwordKey) missing",
            dir.path().join("db-secrets.yaml").display()
        )
    );
}

#[test]
fn a_user_that_disagrees_with_the_secrets_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    model().write_for_process(dir.path()).unwrap();
    std::fs::write(dir.path().join("db-secrets.yaml"), "username: other\npassword: x\n").unwrap();
    let msg = datastorage::load(&dir.path().join("config.yaml")).unwrap_err().to_string();
    assert!(msg.contains("database.user: `slm_user` differs from the username in"), "{msg}");
}

#[test]
fn a_missing_config_file_is_named() {
    let msg = datastorage::load(Path::new("/nonexistent/config.yaml")).unwrap_err().to_string();
    assert!(msg.starts_with("reading /nonexistent/config.yaml: "), "{msg}");
}

#[test]
fn debug_output_never_shows_a_password() {
    let ds = model();
    let bundle = ds.render(&Layout::process(Path::new("/x"))).unwrap();
    let text = format!("{ds:?} {bundle:?}");
    assert!(!text.contains("test_password"), "{text}");
    assert!(!text.contains("redis_test_password"), "{text}");
    assert!(text.contains("<redacted>"));
}
