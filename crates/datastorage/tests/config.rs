//! The model rendered, written, read back and validated, with snapshots of the rendered files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use datastorage::certs::Pair;
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
        // Rendering copies pairs as they are: placeholders keep the snapshots fixed.
        signing: Pair { cert: "<signing cert>".into(), key: "<signing key>".into() },
        tls: None,
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
            ("tls.crt", "644".to_string(), FileKind::Secret),
            ("tls.key", "600".to_string(), FileKind::Secret),
        ]
    );
    let signing = bundle.files.iter().find(|f| f.name() == "tls.key").unwrap();
    assert_eq!(signing.path, Path::new("/run/xtask/ds/signing/tls.key"));
    assert_eq!(bundle.env, [("CONFIG_PATH".to_string(), "/run/xtask/ds/config.yaml".to_string())]);
    insta::assert_snapshot!("process_config_yaml", file_text(&bundle, "config.yaml"));
    insta::assert_snapshot!("process_db_secrets_yaml", file_text(&bundle, "db-secrets.yaml"));
    insta::assert_snapshot!("process_redis_secrets_yaml", file_text(&bundle, "redis-secrets.yaml"));
}

#[test]
fn renders_container_paths_from_the_same_model() {
    let mut ds = model();
    ds.tls = Some(Pair { cert: "<tls cert>".into(), key: "<tls key>".into() });
    let bundle = ds.render(&Layout::container()).unwrap();
    let paths: Vec<_> = bundle.files.iter().map(|f| f.path.display().to_string()).collect();
    assert_eq!(
        paths,
        [
            "/etc/datastorage/config.yaml",
            "/etc/datastorage/secrets/db-secrets.yaml",
            "/etc/datastorage/secrets/redis-secrets.yaml",
            "/etc/signing-certs/tls.crt",
            "/etc/signing-certs/tls.key",
            "/etc/tls/tls.crt",
            "/etc/tls/tls.key",
        ]
    );
    let config = file_text(&bundle, "config.yaml");
    assert!(config.contains("signerCertDir: /etc/signing-certs"), "{config}");
    assert!(config.contains("tls:\n    certDir: /etc/tls"), "{config}");
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
    let files = [
        ("config.yaml", 0o644),
        ("db-secrets.yaml", 0o600),
        ("redis-secrets.yaml", 0o600),
        ("signing/tls.crt", 0o644),
        ("signing/tls.key", 0o600),
    ];
    for (name, mode) in files {
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
    }

    let loaded = datastorage::load(&config_path).unwrap();
    assert_eq!(loaded.credentials, ds.credentials);
    let mut expected = ds.config.clone();
    expected.database.secrets_file = dir.path().join("db-secrets.yaml");
    expected.redis.secrets_file = dir.path().join("redis-secrets.yaml");
    expected.server.signer_cert_dir = dir.path().join("signing");
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
fn the_seed_era_snake_case_config_is_refused_naming_each_key_the_service_would_ignore() {
    // config.yaml as the AIAnalysis E2E setup wrote it at the seeds' date (seed 004). The current
    // service reads camelCase keys: it would ignore these and run on defaults.
    let text = "shutdownTimeout: 30s
server:
  port: 8080
  host: \"0.0.0.0\"
  read_timeout: 30s
  write_timeout: 30s
database:
  host: postgresql
  port: 5432
  name: action_history
  user: slm_user
  ssl_mode: disable
  max_open_conns: 25
  conn_max_lifetime: 5m
  conn_max_idle_time: 10m
  secretsFile: /etc/datastorage/secrets/db-secrets.yaml
  passwordKey: password
redis:
  addr: redis:6379
  dlq_max_len: 1000
  secretsFile: /etc/datastorage/secrets/redis-secrets.yaml
  passwordKey: password
";
    let err = Config::from_yaml(text, Path::new("config.yaml")).unwrap_err();
    let Error::Invalid { problems, .. } = &err else { panic!("{err}") };
    let named: Vec<_> = problems.iter().map(|p| (p.field.as_str(), p.at.unwrap().0)).collect();
    assert_eq!(
        named,
        [
            ("server.read_timeout", 5),
            ("server.write_timeout", 6),
            ("database.ssl_mode", 12),
            ("database.max_open_conns", 13),
            ("database.conn_max_lifetime", 14),
            ("database.conn_max_idle_time", 15),
            ("redis.dlq_max_len", 20),
        ]
    );
    let msg = err.to_string();
    assert!(msg.contains("server.read_timeout (line 5): DataStorage reads `readTimeout`"), "{msg}");
}

#[test]
fn the_monorepos_healthport_era_config_reads_with_warnings_for_what_the_service_ignores() {
    // The ConfigMap `deployIsolatedDataStorageService` writes (test/infrastructure), as it is.
    let text = "server:
  port: 8080
  host: \"0.0.0.0\"
  metricsPort: 9090
  healthPort: 8081
  readTimeout: 30s
  writeTimeout: 30s
  signerCertDir: /etc/signing-certs
  tls:
    certDir: /etc/tls
database:
  host: postgresql.ns.svc.cluster.local
  port: 5432
  name: action_history
  user: slm_user
  sslMode: disable
  maxOpenConns: 20
  maxIdleConns: 5
  connMaxLifetime: 1h
  connMaxIdleTime: 10m
  secretsFile: \"/etc/datastorage/secrets/db-secrets.yaml\"
  usernameKey: \"username\"
  passwordKey: \"password\"
redis:
  addr: redis.ns.svc.cluster.local:6379
  db: 0
  dlqStreamName: dlq-stream
  dlqMaxLen: 1000
  dlqConsumerGroup: dlq-group
  secretsFile: \"/etc/datastorage/secrets/redis-secrets.yaml\"
  passwordKey: \"password\"
logging:
  level: debug
  format: json
";
    let (config, warnings) = Config::read(text, Path::new("config.yaml")).unwrap();
    assert_eq!(config.server.health_port, 8081);
    assert_eq!(config.database.conn_max_lifetime.get().as_secs(), 3600);
    assert_eq!(config.database.statement_timeout.get().as_secs(), 30, "the service's default");
    assert_eq!(config.redis.dlq_max_len, 1000);
    assert_eq!(config.logging.level, LogLevel::Debug);
    assert_eq!(config.server.signer_cert_dir, Path::new("/etc/signing-certs"));
    assert_eq!(config.server.tls.cert_dir, Path::new("/etc/tls"));
    let warned: Vec<_> = warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(warned, ["redis.db", "redis.dlqStreamName", "redis.dlqConsumerGroup", "logging.format"]);
}

#[test]
fn left_out_keys_read_as_the_services_defaults() {
    let text = "server: {port: 8080}
database: {host: db, port: 5432, name: n, user: u, connMaxLifetime: 1h, connMaxIdleTime: 10m,
  secretsFile: s.yaml, passwordKey: password}
redis: {addr: \"r:6379\", secretsFile: r.yaml, passwordKey: password}
";
    let config = Config::from_yaml(text, Path::new("config.yaml")).unwrap();
    let s = &config.server;
    assert_eq!((s.health_port, s.metrics_port, s.max_batch_size), (8081, 9090, 500));
    assert_eq!(config.shutdown_timeout().as_secs(), 60);
    assert_eq!(config.database.max_open_conns, 25);
    assert_eq!(config.database.lock_timeout.get().as_secs(), 10);
    assert_eq!(config.redis.dlq_max_len, 10_000);
    assert_eq!(config.logging.level, LogLevel::Info);
}

#[test]
fn log_levels_read_in_any_case_and_a_bad_one_is_named() {
    let base = model().render(&Layout::process(Path::new("/x"))).unwrap().files[0].contents.clone();
    let upper = base.replace("level: info", "level: WARN");
    assert_eq!(Config::from_yaml(&upper, Path::new("c.yaml")).unwrap().logging.level, LogLevel::Warn);
    let bad = base.replace("level: info", "level: verbose");
    let msg = Config::from_yaml(&bad, Path::new("c.yaml")).unwrap_err().to_string();
    assert!(msg.contains("invalid log level: verbose (must be DEBUG, INFO, WARN, or ERROR)"), "{msg}");
}

#[test]
fn invalid_fields_are_all_named_with_the_file() {
    let mut ds = model();
    ds.config.server.port = 0;
    ds.config.server.health_port = 9090;
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
    assert!(matches!(err, Error::Invalid { .. }), "{msg}");
    assert!(msg.starts_with("/x/config.yaml: "), "{msg}");
    assert!(msg.contains("database.secretFile (line "), "{msg}");
    assert!(msg.contains("not a key DataStorage reads"), "{msg}");
}

#[test]
fn a_bad_value_is_an_error_naming_the_file() {
    let text = model().render(&Layout::process(Path::new("/x"))).unwrap().files[0].contents.clone();
    let text = text.replace("readTimeout: 30s", "readTimeout: 30 seconds");
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
fn the_secrets_files_username_wins_over_database_user_as_in_the_service() {
    let dir = tempfile::tempdir().unwrap();
    model().write_for_process(dir.path()).unwrap();
    std::fs::write(dir.path().join("db-secrets.yaml"), "username: other\npassword: x\n").unwrap();
    let loaded = datastorage::load(&dir.path().join("config.yaml")).unwrap();
    assert_eq!(loaded.credentials.db_username, "other");
    std::fs::write(dir.path().join("db-secrets.yaml"), "password: x\n").unwrap();
    let loaded = datastorage::load(&dir.path().join("config.yaml")).unwrap();
    assert_eq!(loaded.credentials.db_username, "slm_user", "no username in the file: `user` as written");
}

#[test]
fn a_malformed_secrets_file_is_named_with_its_line_and_never_quoted() {
    let dir = tempfile::tempdir().unwrap();
    model().write_for_process(dir.path()).unwrap();
    let path = dir.path().join("db-secrets.yaml");
    for (text, line) in [
        ("username: slm_user\npassword: [Sup3rS3cret-planted\n", 2),
        ("username: slm_user\npassword:\n  nested: Sup3rS3cret-planted\n", 3),
        ("- Sup3rS3cret-planted\n", 1),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = datastorage::load(&dir.path().join("config.yaml")).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("Sup3rS3cret"), "the password leaked: {shown}");
        assert!(matches!(err, Error::Secrets { at: Some((l, _)), .. } if l == line), "{text:?}: {shown}");
        assert!(err.to_string().starts_with(&format!("{}:{line}:", path.display())), "{err}");
    }
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

/// Read from a file, every invalid field is a diagnostic at its own line and column, in the
/// form editors and CI link to the file.
#[test]
fn invalid_fields_read_from_a_file_are_diagnostics_at_their_lines() {
    let good = model().render(&Layout::process(Path::new("/x"))).unwrap().files[0].contents.clone();
    let text = good.replace("sslMode: disable", "sslMode: on").replace("dlqMaxLen: 10000", "dlqMaxLen: 0");
    let err = Config::from_yaml(&text, Path::new("/x/config.yaml")).unwrap_err();
    let line_of = |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let column_of = |text: &str, needle: &str| {
        text.lines().find(|l| l.contains(needle)).unwrap().find(needle).unwrap() + 1
    };
    let lines: Vec<String> = err.diagnostics().iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (field, key) in [("database.sslMode", "sslMode"), ("redis.dlqMaxLen", "dlqMaxLen")] {
        let at =
            format!("/x/config.yaml:{}:{}: error: {field}: ", line_of(&text, key), column_of(&text, key));
        assert!(lines.iter().any(|l| l.starts_with(&at)), "{at} in {lines:?}");
    }

    let unparsable = good.replace("level: info", "level: verbose");
    let lines: Vec<String> = Config::from_yaml(&unparsable, Path::new("/x/config.yaml"))
        .unwrap_err()
        .diagnostics()
        .iter()
        .map(ToString::to_string)
        .collect();
    let at = format!(
        "/x/config.yaml:{}:{}: error: invalid log level: verbose",
        line_of(&unparsable, "level"),
        column_of(&unparsable, "verbose")
    );
    assert!(lines.len() == 1 && lines[0].starts_with(&at), "{at} in {lines:?}");

    let retired = format!("{good}shutdownTimeout: 30s\n");
    let (_, warnings) = Config::read(&retired, Path::new("/x/config.yaml")).unwrap();
    let d = warnings[0].diagnostic(Path::new("/x/config.yaml"), diag::Severity::Warning).to_string();
    let at = format!("/x/config.yaml:{}:1: warning: shutdownTimeout: ", retired.lines().count());
    assert!(d.starts_with(&at), "{d}");
}
