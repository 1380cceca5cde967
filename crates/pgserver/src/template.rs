//! Clusters from templates: a cluster stopped cleanly (e.g. freshly migrated, its roles'
//! passwords cleared) is kept, and later servers start on copies of it
//! ([`PgServer::start_from_template`]) instead of running `initdb` and the migrations again.
//!
//! A template holds no usable password, and a server started from it sets fresh ones through
//! its owner-only Unix socket (local connections are trusted) before it is handed to anyone.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::process::RunAs;
use crate::{Binaries, Error, Options, PgServer, SUPERUSER, data_location, io, quote_ident, quote_literal};

/// The longest Unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
const SOCKET_PATH_MAX: usize = 107;

impl PgServer {
    /// Starts a server in `dir` on a copy of the stopped cluster `template` (see
    /// [`finish_template`]). The superuser gets `options.password` (or a fresh one) and each of
    /// `roles` its password, set through the server's Unix socket before this returns.
    ///
    /// The data goes where [`PgServer::start_in`] would put it, which must not hold a cluster yet.
    pub fn start_from_template(
        dir: &Path,
        template: &Path,
        options: Options,
        roles: &[(&str, &str)],
    ) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let bin = Binaries::locate()?;
        let owner = RunAs::for_current_user()?;
        owner.hand_over(dir)?;
        let (data, blocked_at) = data_location(dir, &owner, options.data_in.as_deref())?;
        if data.join("PG_VERSION").exists() {
            return Err(Error::Io {
                action: format!("copying a template into {}", data.display()),
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        // Beside the data, where the server's account can reach it (see `data_location`).
        let socket = data.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.to_path_buf());
        check_socket_dir(&socket)?;
        copy_tree(template, &data, &owner)?;
        let password = options.password.clone().unwrap_or_else(crate::random_password);
        let mut server = Self {
            root: procs::Workdir::kept(dir)?,
            data,
            blocked_at,
            bin,
            options,
            port: 0,
            password,
            child: None,
            socket: Some(socket),
        };
        server.listen(&owner)?;
        let mut sql = String::new();
        let mut shown = String::new();
        for (role, pw) in std::iter::once((SUPERUSER, server.password.as_str())).chain(roles.iter().copied())
        {
            let alter = |pw: &str| format!("ALTER ROLE {} PASSWORD {pw};\n", quote_ident(role));
            sql.push_str(&alter(&quote_literal(pw)));
            shown.push_str(&alter("'***'"));
        }
        server.psql_through_socket("postgres", &sql, &shown)?;
        Ok(server)
    }

    /// Like [`PgServer::psql`], through the Unix socket: no password needed, none shown.
    fn psql_through_socket(&self, db: &str, sql: &str, shown: &str) -> Result<String, Error> {
        let socket = self.socket.as_ref().ok_or_else(|| Error::Io {
            action: "connecting through the server's socket".into(),
            source: std::io::Error::other("the server was started without one"),
        })?;
        self.psql_at(&socket.display().to_string(), db, sql, shown)
    }
}

/// Copies the data directory `from` to `to` (created), keeping modes, owned by `owner`.
pub(crate) fn copy_tree(from: &Path, to: &Path, owner: &RunAs) -> Result<(), Error> {
    let meta = fs::symlink_metadata(from).map_err(io(format!("reading {}", from.display())))?;
    fs::create_dir(to).map_err(io(format!("creating {}", to.display())))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.permissions().mode()))
        .map_err(io(format!("setting the mode of {}", to.display())))?;
    owner.hand_over(to)?;
    for entry in fs::read_dir(from).map_err(io(format!("reading {}", from.display())))? {
        let entry = entry.map_err(io(format!("reading {}", from.display())))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io(format!("reading {}", source.display())))?;
        if kind.is_dir() {
            copy_tree(&source, &target, owner)?;
        } else if kind.is_symlink() {
            let link = fs::read_link(&source).map_err(io(format!("reading {}", source.display())))?;
            std::os::unix::fs::symlink(link, &target)
                .map_err(io(format!("creating {}", target.display())))?;
        } else {
            // `fs::copy` keeps the mode, and lets the kernel copy (or share) the blocks.
            fs::copy(&source, &target).map_err(io(format!("copying {}", source.display())))?;
            owner.hand_over(&target)?;
        }
    }
    Ok(())
}

/// Copies the cluster `from` (a template's data) to `to`, for the server's account.
pub fn copy_cluster(from: &Path, to: &Path) -> Result<(), Error> {
    copy_tree(from, to, &RunAs::for_current_user()?)
}

/// Whether the server can put its socket in `dir`: the path must fit the kernel's limit and
/// PostgreSQL's list syntax.
fn check_socket_dir(dir: &Path) -> Result<(), Error> {
    let socket: PathBuf = dir.join(".s.PGSQL.65535.lock");
    let text = dir.display().to_string();
    if socket.as_os_str().len() > SOCKET_PATH_MAX || text.contains('"') {
        return Err(Error::Io {
            action: format!("putting the server's socket in {text}"),
            source: std::io::Error::other(format!(
                "the path is too long for a Unix socket (at most {SOCKET_PATH_MAX} bytes) or holds a double quote"
            )),
        });
    }
    Ok(())
}
