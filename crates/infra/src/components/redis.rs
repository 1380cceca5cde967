//! Redis with a per-run password, given in a config file (never on a command line).

use crate::error::InfraError;
use crate::model::{Component, Ctx, EndpointSpec, File, FileKind, Image, Program, Service, Workload};

/// The image users' machines pull.
pub const IMAGE: &str = "docker.io/library/redis:7-alpine";
/// Where the config file (it holds the password) is mounted in the container.
const CONFIG_FILE: &str = "/run/secrets/redis.conf";

/// A Redis server.
pub struct Redis;

impl Component for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn about(&self) -> &'static str {
        "Redis with a per-run password"
    }

    fn needs(&self) -> &'static [&'static str] {
        &[]
    }

    fn env_var(&self) -> Option<&'static str> {
        Some("REDIS_URL")
    }

    fn workload(&self, ctx: &Ctx<'_>) -> Result<Workload, InfraError> {
        let password = ctx.secret("redis");
        Ok(Workload::Service(Box::new(Service {
            program: Program::Redis,
            image: Image::Pull(ctx.image(self.name(), IMAGE)),
            args: vec!["redis-server".into(), CONFIG_FILE.into()],
            env: vec![],
            files: vec![File {
                path: CONFIG_FILE.into(),
                contents: format!(
                    "bind 0.0.0.0\nprotected-mode no\nport 6379\nrequirepass {}\n",
                    password.expose()
                ),
                kind: FileKind::Secret,
                group: None,
            }],
            port: 6379,
            endpoint: EndpointSpec::Redis { password },
            user: None,
            ports: vec![],
            data: Some("/data".into()),
            service_name: None,
            account: None,
            production: None,
        })))
    }
}
