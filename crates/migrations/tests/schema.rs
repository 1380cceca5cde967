//! The schema as applied, read back from a real PostgreSQL after a run that stopped half-way.

mod common;

use common::{Db, Project, up};
use migrations::Selection;

#[tokio::test]
async fn the_schema_shows_what_was_applied_before_the_failure_and_nothing_after() {
    let db = Db::start();
    let project = Project::new(&[
        (
            "001_events.sql",
            "-- +goose Up\nCREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, body jsonb);\n\
             CREATE INDEX events_kind ON events (kind);\n",
        ),
        ("002_broken.sql", "-- +goose Up\nCREATE TABLE runs (id int);\nSELECT no_such_function();\n"),
        ("003_later.sql", "-- +goose Up\nCREATE TABLE later (id int);\n"),
    ]);
    let err = up(&db, &project, Selection::All).await.unwrap_err();
    assert!(err.to_string().contains("002_broken.sql"), "{err}");

    let schema = migrations::schema::describe(&*db.client().await).await.unwrap();
    assert_eq!(schema.versions, [1]);
    let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["public.events", "public.goose_db_version", "public.goose_db_version_checksum"]);
    assert_eq!(schema.tables[0].columns, ["id bigint NOT NULL", "kind text NOT NULL", "body jsonb"]);
    assert!(
        schema.indexes.iter().any(|i| i == "CREATE INDEX events_kind ON public.events USING btree (kind)"),
        "{:?}",
        schema.indexes
    );
    assert_eq!(
        schema.summary(),
        format!("1 table(s), {} index(es); 1 migration(s) applied, the newest 1", schema.indexes.len())
    );
    let text = schema.to_string();
    assert!(text.contains("\ntable public.events\n  id bigint NOT NULL\n"), "{text}");
    assert!(!text.contains("runs") && !text.contains("later"), "rolled back and never run: {text}");
}

#[tokio::test]
async fn an_empty_database_has_no_tables_and_no_versions() {
    let db = Db::start();
    let schema = migrations::schema::describe(&*db.client().await).await.unwrap();
    assert!(schema.tables.is_empty() && schema.versions.is_empty() && schema.indexes.is_empty());
    assert_eq!(schema.summary(), "0 table(s), 0 index(es); no migration applied");
}
