//! `--tables` subsets derived from the SQL, and the seed-000 sequence: a table subset first,
//! then everything, ending in the same schema as applying everything at once.

mod common;

use common::{Db, Project, repo_migrations, up, versions};
use migrations::{Error, MigrationSet, Selection};

fn fixture() -> Project {
    Project::new(&[
        ("001_audit.sql", "-- +goose Up\nCREATE TABLE audit_events (id bigint PRIMARY KEY, body text);\n"),
        ("002_status.sql", "-- +goose Up\nCREATE TYPE workflow_status AS ENUM ('draft', 'active');\n"),
        (
            "003_catalog.sql",
            "-- +goose Up\nCREATE TABLE remediation_workflow_catalog (id int PRIMARY KEY, name text, status workflow_status);\n",
        ),
        (
            "004_notification.sql",
            "-- +goose Up\nCREATE TABLE notification_audit (id int PRIMARY KEY, sent_at timestamptz);\n",
        ),
        (
            "005_catalog_version.sql",
            "-- +goose Up\nALTER TABLE remediation_workflow_catalog ADD COLUMN version int NOT NULL DEFAULT 1;\n",
        ),
        ("006_owner.sql", "-- +goose Up\nCREATE TABLE workflow_owner (id int PRIMARY KEY);\n"),
        (
            "007_catalog_owner.sql",
            "-- +goose Up\nALTER TABLE remediation_workflow_catalog ADD COLUMN owner_id int REFERENCES workflow_owner (id);\n",
        ),
        (
            "008_notification_idx.sql",
            "-- +goose Up\nCREATE INDEX notification_sent ON notification_audit (sent_at);\n",
        ),
        (
            "009_touch_fn.sql",
            "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION bump() RETURNS void AS $$\nBEGIN\n  UPDATE remediation_workflow_catalog SET version = version + 1;\nEND;\n$$ LANGUAGE plpgsql;\n-- +goose StatementEnd\n",
        ),
        (
            "010_catalog_do.sql",
            "-- +goose Up\nDO $$\nBEGIN\n  ALTER TABLE remediation_workflow_catalog ADD COLUMN note text;\nEND\n$$;\n",
        ),
    ])
}

#[test]
fn subset_includes_alters_and_prerequisites_only() {
    let p = fixture();
    let wanted = Selection::Tables(vec!["remediation_workflow_catalog".into()]).resolve(&p.set()).unwrap();
    let got: Vec<(i64, String)> = wanted.into_iter().map(|(v, r)| (v, r.unwrap())).collect();
    assert_eq!(
        got,
        vec![
            (2, "defines type workflow_status, needed by 003_catalog.sql".to_string()),
            (3, "touches remediation_workflow_catalog".to_string()),
            (5, "touches remediation_workflow_catalog".to_string()),
            (6, "defines table workflow_owner, needed by 007_catalog_owner.sql".to_string()),
            (7, "touches remediation_workflow_catalog".to_string()),
            (10, "touches remediation_workflow_catalog".to_string()),
        ]
    );
}

#[test]
fn unknown_table_lists_the_known_ones() {
    let err = Selection::Tables(vec!["workflow_catalog".into()]).resolve(&fixture().set()).unwrap_err();
    assert!(matches!(err, Error::UnknownTable { .. }));
    let text = err.to_string();
    assert!(text.contains("no migration touches table workflow_catalog"), "{text}");
    assert!(text.contains("remediation_workflow_catalog"), "{text}");
}

#[tokio::test]
async fn tables_first_then_all_applies_the_rest() {
    let db = Db::start();
    let p = fixture();
    let first = up(&db, &p, Selection::Tables(vec!["remediation_workflow_catalog".into()])).await.unwrap();
    assert_eq!(versions(&first), vec![2, 3, 5, 6, 7, 10]);
    db.query("INSERT INTO workflow_owner VALUES (1); INSERT INTO remediation_workflow_catalog (id, name, status, owner_id, note) VALUES (1, 'restart', 'active', 1, 'n')");

    let rest = up(&db, &p, Selection::All).await.unwrap();
    assert_eq!(
        versions(&rest),
        vec![1, 4, 8, 9],
        "--all applies what the subset skipped, even below the newest version"
    );
    assert_eq!(db.query("SELECT count(*) FROM goose_db_version WHERE version_id > 0"), "10");
    assert!(up(&db, &p, Selection::All).await.unwrap().done.is_empty());
}

/// Columns, types and indexes of every table in the public schema, as one comparable string.
fn schema(db: &Db) -> String {
    db.query(
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ( \
           SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable AS x \
             FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE 'goose%' \
           UNION ALL SELECT 'index ' || indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE 'goose%' \
           UNION ALL SELECT 'function ' || proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE nspname = 'public' \
         ) s",
    )
}

#[tokio::test]
async fn repository_migrations_subset_then_all_equals_all() {
    let dir = repo_migrations();
    let set = MigrationSet::load(&dir).unwrap();
    let project = Project { dir: tempfile::tempdir().unwrap() };
    for m in &set.migrations {
        std::fs::copy(&m.path, project.file(&m.name)).unwrap();
    }

    let full = Db::start();
    let all = up(&full, &project, Selection::All).await.unwrap();
    assert_eq!(all.done.len(), set.migrations.len());

    let staged = Db::start();
    let subset =
        up(&staged, &project, Selection::Tables(vec!["remediation_workflow_catalog".into()])).await.unwrap();
    let catalog_files: Vec<i64> =
        set.migrations.iter().filter(|m| m.name.contains("workflow_catalog")).map(|m| m.version).collect();
    for v in &catalog_files {
        assert!(versions(&subset).contains(v), "subset misses catalog migration {v}");
    }
    assert!(subset.done.len() < set.migrations.len(), "a subset is smaller than everything");
    up(&staged, &project, Selection::All).await.unwrap();
    assert_eq!(schema(&staged), schema(&full));
}

#[tokio::test]
async fn repository_migrations_up_down_up() {
    let db = Db::start();
    let project = Project { dir: tempfile::tempdir().unwrap() };
    for m in &MigrationSet::load(&repo_migrations()).unwrap().migrations {
        std::fs::copy(&m.path, project.file(&m.name)).unwrap();
    }
    let empty = schema(&db);
    up(&db, &project, Selection::All).await.unwrap();
    let applied = schema(&db);
    common::down(&db, &project, Some(0)).await.unwrap();
    assert_eq!(schema(&db), empty, "every Down undoes its Up");
    up(&db, &project, Selection::All).await.unwrap();
    assert_eq!(schema(&db), applied);
}

#[test]
fn subsets_follow_plain_sql_files_too() {
    let p = Project::new(&[
        ("001_events.sql", "CREATE TABLE events (id int PRIMARY KEY);\n"),
        ("002_other.sql", "CREATE TABLE other (id int);\n"),
        ("003_links.sql", "-- +goose Up\nCREATE TABLE links (event_id int REFERENCES events (id));\n"),
        ("004_alter.sql", "ALTER TABLE links ADD COLUMN note text;\n"),
    ]);
    let wanted = Selection::Tables(vec!["links".into()]).resolve(&p.set()).unwrap();
    assert_eq!(wanted.keys().copied().collect::<Vec<_>>(), [1, 3, 4], "{wanted:?}");
}
