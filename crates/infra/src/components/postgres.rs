//! PostgreSQL with the service's user and database (the official image's contract:
//! `POSTGRES_USER`, `POSTGRES_DB`, `POSTGRES_PASSWORD_FILE`).

use crate::error::InfraError;
use crate::model::{Component, Ctx, EndpointSpec, File, FileKind, Image, Program, Service, Workload};

/// The service's database and login role, as DataStorage's configuration names them.
pub const DATABASE: &str = "action_history";
/// The service's login role.
pub const USER: &str = "slm_user";
/// The image users' machines pull.
pub const IMAGE: &str = "docker.io/library/postgres:16-alpine";
/// The official image's data directory (`PGDATA`): kept across restarts.
const DATA_DIR: &str = "/var/lib/postgresql/data";
/// Where the password file is mounted in the container.
const PASSWORD_FILE: &str = "/run/secrets/postgres-password";

/// A PostgreSQL server.
pub struct Postgres;

impl Component for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn about(&self) -> &'static str {
        "PostgreSQL with the service's user and database"
    }

    fn needs(&self) -> &'static [&'static str] {
        &[]
    }

    fn env_var(&self) -> Option<&'static str> {
        Some("DATABASE_URL")
    }

    fn workload(&self, ctx: &Ctx<'_>) -> Result<Workload, InfraError> {
        let password = ctx.secret("postgres");
        Ok(Workload::Service(Box::new(Service {
            program: Program::Postgres,
            image: Image::Pull(ctx.image(self.name(), IMAGE)),
            args: vec![],
            env: vec![
                ("POSTGRES_USER".into(), USER.into()),
                ("POSTGRES_DB".into(), DATABASE.into()),
                ("POSTGRES_PASSWORD_FILE".into(), PASSWORD_FILE.into()),
            ],
            files: vec![File {
                path: PASSWORD_FILE.into(),
                contents: password.expose().to_string(),
                kind: FileKind::Secret,
                group: None,
            }],
            port: 5432,
            endpoint: EndpointSpec::Postgres { user: USER.into(), database: DATABASE.into(), password },
            user: None,
            ports: vec![],
            data: Some(DATA_DIR.into()),
            service_name: None,
            account: None,
            production: None,
        })))
    }
}
