//! DataStorage: one typed configuration model (crate `datastorage`) rendered into a config file
//! plus two secrets files, found through `CONFIG_PATH`; ready when `/health` answers 200 (the
//! schema it needs is there and Redis answers).

use std::path::PathBuf;

use crate::error::InfraError;
use crate::model::{
    Component, Ctx, EndpointKind, EndpointSpec, File, FileKind, Image, Placement, Program, Service, Workload,
};

/// The workspace package of the reference server the local backend runs and images are built from.
pub const PACKAGE: &str = "datastorage-reference-server";
/// The Containerfile that puts the reference server into an image.
pub const CONTAINERFILE: &str = "manifests/images/datastorage-reference.Containerfile";
/// The API port inside a container.
const PORT: u16 = 8080;

/// The DataStorage service.
pub struct DataStorage;

impl Component for DataStorage {
    fn name(&self) -> &'static str {
        "datastorage"
    }

    fn about(&self) -> &'static str {
        "DataStorage with its rendered config and secrets, ready when /health says 200"
    }

    fn needs(&self) -> &'static [&'static str] {
        &["postgres", "redis", "migrations"]
    }

    fn env_var(&self) -> Option<&'static str> {
        Some("DATASTORAGE_URL")
    }

    fn workload(&self, ctx: &Ctx<'_>) -> Result<Workload, InfraError> {
        let view = ctx.placement.view();
        let pg = ctx.endpoint("postgres")?;
        let redis = ctx.endpoint("redis")?;
        let EndpointKind::Postgres { user, database, password: db_password } = &pg.kind else {
            return Err(InfraError::Model("datastorage: the postgres endpoint is not PostgreSQL".into()));
        };
        let EndpointKind::Redis { password: redis_password } = &redis.kind else {
            return Err(InfraError::Model("datastorage: the redis endpoint is not Redis".into()));
        };
        let (pg_addr, redis_addr) = (pg.addr(view), redis.addr(view));
        let port = ctx.port.unwrap_or(PORT);
        let mut config = datastorage::Config::local(port, pg_addr.port, redis_addr.port);
        config.database.host = pg_addr.host.clone();
        config.database.name = database.clone();
        config.database.user = user.clone();
        config.redis.addr = redis_addr.to_string();
        let layout = match &ctx.placement {
            Placement::Host { dir } => datastorage::Layout::process(dir),
            Placement::Container => {
                config.server.host = "0.0.0.0".into();
                datastorage::Layout::container()
            }
        };
        let ds = datastorage::DataStorage {
            config,
            credentials: datastorage::Credentials {
                db_username: user.clone(),
                db_password: db_password.expose().to_string(),
                redis_password: redis_password.expose().to_string(),
            },
        };
        let bundle = ds.render(&layout).map_err(|e| InfraError::Model(format!("datastorage: {e}")))?;
        let files = bundle
            .files
            .iter()
            .map(|f| File {
                path: f.path.clone(),
                contents: f.contents.clone(),
                kind: match f.kind {
                    datastorage::FileKind::Config => FileKind::Config,
                    datastorage::FileKind::Secret => FileKind::Secret,
                },
            })
            .collect();
        let image = match ctx.images.get(self.name()) {
            Some(reference) => Image::Pull(reference.clone()),
            None => Image::Cargo { package: PACKAGE.into(), containerfile: PathBuf::from(CONTAINERFILE) },
        };
        Ok(Workload::Service(Box::new(Service {
            program: Program::Cargo { package: PACKAGE.into() },
            image,
            args: vec![],
            env: bundle.env,
            files,
            port,
            endpoint: EndpointSpec::Http { ready_path: "/health".into() },
            user: None,
            data: None,
        })))
    }
}
