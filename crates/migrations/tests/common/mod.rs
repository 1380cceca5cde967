//! Fixtures for the engine tests: a real throwaway PostgreSQL and a folder of migration files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use migrations::{Event, MigrationSet, Options, Report, Selection};
use pgserver::PgServer;

/// A fresh PostgreSQL server with one empty database.
pub struct Db {
    pub pg: PgServer,
    pub url: String,
}

impl Db {
    pub fn start() -> Db {
        let pg = PgServer::start().expect("start PostgreSQL");
        pg.create_database("app").expect("create database");
        let url = pg.url("app");
        Db { pg, url }
    }

    pub async fn client(&self) -> migrations::Connection {
        migrations::connect(&self.url).await.expect("connect")
    }

    /// Runs a query through psql and returns its trimmed output.
    pub fn query(&self, sql: &str) -> String {
        self.pg.psql("app", sql).expect(sql).trim().to_string()
    }
}

/// A folder of migration files.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(files: &[(&str, &str)]) -> Project {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.file(name), text).unwrap();
    }

    pub fn set(&self) -> MigrationSet {
        MigrationSet::load(self.path()).expect("load migrations")
    }
}

pub async fn up(db: &Db, project: &Project, selection: Selection) -> Result<Report, migrations::Error> {
    let client = db.client().await;
    migrations::up(&client, &project.set(), &selection, &Options::default(), &mut |_: Event| {}).await
}

pub async fn down(db: &Db, project: &Project, to: Option<i64>) -> Result<Report, migrations::Error> {
    let client = db.client().await;
    migrations::down(&client, &project.set(), to, &Options::default(), &mut |_: Event| {}).await
}

pub async fn repair(
    db: &Db,
    project: &Project,
    version: i64,
    reason: &str,
) -> Result<migrations::Repair, migrations::Error> {
    let client = db.client().await;
    migrations::repair(&client, &project.set(), version, reason, &Options::default(), &mut |_: Event| {})
        .await
}

pub fn versions(report: &Report) -> Vec<i64> {
    report.done.iter().map(|d| d.version).collect()
}

/// The repository's own migrations folder.
pub fn repo_migrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}
