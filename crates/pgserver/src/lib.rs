//! A throwaway PostgreSQL server for tests and the local backend.
//!
//! [`PgServer::start`] runs `initdb` into a fresh directory, starts `postgres` on a free loopback
//! port with password authentication, and returns once the server accepts connections. Dropping
//! the value stops the server and removes its directory. PostgreSQL refuses to run as root, so a
//! launcher that finds itself root runs the server as an unprivileged user (`postgres` by default,
//! the account Debian's package creates).
//!
//! ```no_run
//! let pg = pgserver::PgServer::start()?;
//! pg.create_database("app")?;
//! println!("{}", pg.url("app"));
//! # Ok::<(), pgserver::Error>(())
//! ```

mod binaries;
mod process;
mod template;

pub use binaries::{BINDIR_ENV, Binaries};
pub use process::stop_pid;
pub use procs::pid_alive;
pub use template::copy_cluster;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::Duration;

use rand::Rng;
use rand::distr::Alphanumeric;

/// Environment variable naming the unprivileged user the server runs as when the launcher is root.
pub const RUN_AS_ENV: &str = "PG_RUN_AS";

/// Environment variable naming a directory where new clusters' data goes instead of the
/// server's directory, or [`DATA_IN_SERVER_DIR`]. Unset, a tmpfs with room to spare is used
/// (see [`default_data_dir`]): a throwaway database need not reach the disk, and on machines
/// whose disk writes are slow that decides how fast a cluster is made or copied.
pub const DATA_DIR_ENV: &str = "XTASK_PG_DATA_DIR";

/// The value of [`DATA_DIR_ENV`] that keeps the data in the server's own directory.
pub const DATA_IN_SERVER_DIR: &str = "server-dir";

/// The tmpfs new clusters' data goes to when nothing says otherwise.
const TMPFS: &str = "/dev/shm";

/// How much room [`TMPFS`] must have free to be chosen: a container's default `/dev/shm`
/// (64 MiB) is too small for clusters and PostgreSQL's own shared memory.
const TMPFS_ROOM: u64 = 2 << 30;

/// Where new clusters' data goes when the caller does not say: `$XTASK_PG_DATA_DIR` when set
/// (`None` for [`DATA_IN_SERVER_DIR`]), else `/dev/shm` when it is a tmpfs with 2 GiB free,
/// else `None` (the server's directory).
pub fn default_data_dir() -> Option<PathBuf> {
    choose_data_dir(std::env::var_os(DATA_DIR_ENV), Path::new(TMPFS))
}

/// [`default_data_dir`] with the variable's value and the tmpfs given.
fn choose_data_dir(var: Option<std::ffi::OsString>, tmpfs: &Path) -> Option<PathBuf> {
    match var.filter(|d| !d.is_empty()) {
        Some(d) if d == DATA_IN_SERVER_DIR => None,
        Some(d) => Some(PathBuf::from(d)),
        None => roomy_tmpfs(tmpfs).then(|| tmpfs.to_path_buf()),
    }
}

/// Whether `dir` is a tmpfs with [`TMPFS_ROOM`] free.
fn roomy_tmpfs(dir: &Path) -> bool {
    let tmpfs =
        nix::sys::statfs::statfs(dir).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    let free = nix::sys::statvfs::statvfs(dir).map(|s| s.blocks_available() * s.fragment_size());
    tmpfs && free.is_ok_and(|f| f >= TMPFS_ROOM)
}

/// The superuser role created by `initdb`.
pub const SUPERUSER: &str = "postgres";

/// The file in a server's directory naming where its data lives when that is elsewhere: a
/// directory the server's account cannot reach (a checkout under `/root`, any 0700 parent)
/// puts the data under the system temporary directory instead (see [`PgServer::start_in`]).
pub const DATA_POINTER: &str = "data-location";

/// The name prefix of data directories kept outside a server's directory.
const OUTSIDE_PREFIX: &str = "xtask-pg-";

/// The `initdb` options that shape a cluster (besides the superuser's name): a cluster copied
/// from a template is only the same as a fresh one when these are the same.
///
/// 1 MB WAL segments instead of 16 keep a template (and every copy of it) small.
pub const INITDB_OPTIONS: &[&str] =
    &["--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--wal-segsize=1"];

/// How long a fresh server may take to accept connections before the launcher gives up.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// How many free ports a launch tries when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;

/// What can go wrong while starting, using or stopping a server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `initdb`/`postgres` pair was found.
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found; searched {searched}: install Debian's `postgresql` package (apt-get install postgresql) or set {BINDIR_ENV}"
    )]
    BinariesNotFound {
        /// Where the launcher looked.
        searched: String,
    },
    /// The unprivileged user to run as does not exist.
    #[error(
        "running as root, PostgreSQL must run as an unprivileged user, but user `{user}` does not exist: install Debian's `postgresql` package (it creates `postgres`) or set {RUN_AS_ENV}"
    )]
    UserNotFound {
        /// The missing account.
        user: String,
    },
    /// Starting, signalling or stopping the server process failed.
    #[error(transparent)]
    Process(#[from] procs::Error),
    /// A file-system or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being attempted.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `initdb` exited non-zero.
    #[error("initdb failed ({status}):\n{output}")]
    Initdb {
        /// Its exit status.
        status: ExitStatus,
        /// Its combined output.
        output: String,
    },
    /// The server exited while starting, or did not accept connections in time.
    #[error(transparent)]
    NotStarted(#[from] wait::ChildNotReady),
    /// A `psql` command failed.
    #[error("psql failed running `{sql}`: {output}")]
    Psql {
        /// The SQL that was sent (with any password replaced by `***`).
        sql: String,
        /// What psql printed.
        output: String,
    },
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let action = action.into();
    move |source| Error::Io { action, source }
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Port to listen on; `None` picks a free loopback port.
    pub port: Option<u16>,
    /// Keep fsync and full-page writes on (off by default: a throwaway server trades durability for speed).
    pub durable: bool,
    /// Start the server in its own process group, so a Ctrl-C meant for us does not reach it.
    pub detach: bool,
    /// The server gets a fast shutdown when this process dies, however it dies (even SIGKILL):
    /// for environments that must not outlive the tool that started them.
    pub die_with_us: bool,
    /// The superuser password of an existing cluster in the directory (see [`PgServer::start_in`]).
    pub password: Option<String>,
    /// Where a new cluster's data goes instead of the server's directory (e.g. a tmpfs);
    /// `None`: [`default_data_dir`] (`$XTASK_PG_DATA_DIR`, else a roomy tmpfs, else the server's directory).
    pub data_in: Option<PathBuf>,
}

/// A running PostgreSQL server owned by this process; dropping it stops the server and, for a
/// temporary directory, removes it.
#[derive(Debug)]
pub struct PgServer {
    root: procs::Workdir,
    /// The cluster's data directory: under `root`, or outside it (see [`DATA_POINTER`]).
    data: PathBuf,
    /// The directory that kept the server's account from `root`, when the data is outside.
    blocked_at: Option<PathBuf>,
    bin: Binaries,
    options: Options,
    port: u16,
    password: String,
    child: Option<Child>,
    /// The directory of the server's Unix socket (owner-only), when it has one: the way in
    /// before any password is known (a copied template's roles get theirs through it).
    socket: Option<PathBuf>,
}

impl PgServer {
    /// Starts a server in a new temporary directory that is removed when the value is dropped.
    pub fn start() -> Result<Self, Error> {
        Self::launch(procs::Workdir::temp("pgserver-")?, Binaries::locate()?, Options::default())
    }

    /// Starts a server whose data and log live in `dir` (created if missing), which is kept.
    ///
    /// A cluster already in `dir` is started as it is (no initdb), with `options.password` as its
    /// superuser password: that is how a stopped environment's database is started again.
    ///
    /// Run as root, the server runs as an unprivileged account, which must reach its data: when
    /// a directory above `dir` is closed to it (a checkout under `/root`), the data goes into a
    /// 0700 directory of its own under the system temporary directory, named in `dir`'s
    /// [`DATA_POINTER`] file; [`remove_data`] removes it with the rest.
    pub fn start_in(dir: &Path, options: Options) -> Result<Self, Error> {
        Self::launch(procs::Workdir::kept(dir)?, Binaries::locate()?, options)
    }

    fn launch(root: procs::Workdir, bin: Binaries, options: Options) -> Result<Self, Error> {
        let owner = process::RunAs::for_current_user()?;
        owner.hand_over(root.path())?;
        let (data, blocked_at) = data_location(root.path(), &owner, options.data_in.as_deref())?;
        let password = options.password.clone().unwrap_or_else(random_password);
        let mut server =
            Self { root, data, blocked_at, bin, options, port: 0, password, child: None, socket: None };
        if !server.data_dir().join("PG_VERSION").exists() {
            server.initdb(&owner)?;
        }
        server.listen(&owner)?;
        Ok(server)
    }

    /// Starts the server on the chosen port, or on free ones, retrying when another process
    /// took the port between our probe and the server's bind.
    fn listen(&mut self, owner: &process::RunAs) -> Result<(), Error> {
        procs::with_port(self.options.port, PORT_ATTEMPTS, |port| {
            self.port = port;
            let taken = |e: &Error| matches!(e, Error::NotStarted(e) if e.port_taken());
            self.spawn(owner).map_err(|e| procs::PortAttempt::taken_if(e, taken))
        })?;
        Ok(())
    }

    fn initdb(&self, owner: &process::RunAs) -> Result<(), Error> {
        // Next to the data, where the server's account can read it.
        let pwfile = self.data.with_file_name("pwfile");
        procs::write_file(&pwfile, self.password.as_bytes(), 0o600)?;
        owner.hand_over(&pwfile)?;
        let result = run_initdb(&self.bin, &self.data, Some(&pwfile), owner, self.options.detach);
        let _ = fs::remove_file(&pwfile);
        result
    }

    /// Starts the server and waits until it accepts connections, failing at once if it exits.
    fn spawn(&mut self, owner: &process::RunAs) -> Result<(), Error> {
        let mut cmd = procs::command(self.bin.tool("postgres"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "logging_collector=off", "-c", "max_connections=200"]);
        match &self.socket {
            // Quoted: the setting is a list, and a checkout's path may hold spaces or commas.
            // Owner-only, because local connections are trusted.
            Some(dir) => cmd
                .args(["-c", &format!("unix_socket_directories=\"{}\"", dir.display())])
                .args(["-c", "unix_socket_permissions=0700"]),
            None => cmd.args(["-c", "unix_socket_directories="]),
        };
        if !self.options.durable {
            cmd.args(["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]);
        }
        procs::log_output(&mut cmd, &self.log_path(), procs::OpenLog::Truncate)?;
        owner.apply(&mut cmd);
        if self.options.detach {
            procs::own_process_group(&mut cmd);
        }
        let child = procs::spawn(cmd, process::STOP.tie(self.options.die_with_us))?;
        let ready = PidfileSaysReady { path: self.data_dir().join("postmaster.pid"), pid: child.id() };
        let waiter = &mut wait::Waiter::new(START_DEADLINE);
        // Kept while it runs, also when it is not ready, so that drop stops it.
        let outcome;
        (self.child, outcome) = waiter.wait_child_blocking(child, "postgres", &self.log_path(), ready);
        outcome?;
        Ok(())
    }

    /// Stops the server (fast shutdown) and waits for it to exit; the directory stays until drop.
    pub fn stop(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.child.take() {
            procs::stop_child(&mut child, "postgres", process::STOP)?;
        }
        Ok(())
    }

    /// Stops the server and starts it again on the same port and data directory.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop()?;
        let owner = process::RunAs::for_current_user()?;
        self.spawn(&owner)
    }

    /// Hands the running server over to the caller: it keeps running after this value is gone.
    /// Returns its pid, to be stopped later with [`stop_pid`].
    pub fn keep_running(mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The superuser's generated password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A `postgres://` URL for database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}:{}@127.0.0.1:{}/{db}", self.password, self.port)
    }

    /// The directory holding the cluster's data.
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    /// When the data is outside the server's directory: the directory above it that the
    /// server's account cannot pass through, which is why.
    pub fn relocated_because_of(&self) -> Option<&Path> {
        self.blocked_at.as_deref()
    }

    /// The file the server writes its log to.
    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("postgres.log")
    }

    /// The last `n` non-blank lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        procs::log_tail(&self.log_path(), n)
    }

    /// Runs SQL as the superuser through `psql` (stopping at the first error) and returns its output.
    ///
    /// The SQL goes to psql's standard input, never its command line, where any local user could
    /// read it in `/proc/<pid>/cmdline`.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, Error> {
        self.psql_shown_as(db, sql, sql)
    }

    /// Like [`PgServer::psql`], with `shown` standing for the SQL in the error (to hide a secret).
    fn psql_shown_as(&self, db: &str, sql: &str, shown: &str) -> Result<String, Error> {
        self.psql_at("127.0.0.1", db, sql, shown)
    }

    /// Runs SQL through `psql` connected to `host` (an address, or a socket's directory).
    fn psql_at(&self, host: &str, db: &str, sql: &str, shown: &str) -> Result<String, Error> {
        // A short-lived client: xshell builds the argv as data and pipes the SQL on stdin, so
        // nothing secret reaches the command line.
        let sh = xshell::Shell::new().map_err(|e| Error::Io {
            action: "preparing psql".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let (psql, port) = (self.bin.tool("psql"), self.port.to_string());
        let out = xshell::cmd!(
            sh,
            "{psql} -X -q -A -t -v ON_ERROR_STOP=1 -h {host} -p {port} -U {SUPERUSER} -d {db}"
        )
        .env("PGPASSWORD", &self.password)
        .stdin(format!("{sql}\n"))
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| Error::Io {
            action: "running psql".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if !out.status.success() {
            return Err(Error::Psql {
                sql: shown.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates database `name` owned by the superuser.
    pub fn create_database(&self, name: &str) -> Result<(), Error> {
        self.psql("postgres", &format!("CREATE DATABASE {}", quote_ident(name))).map(drop)
    }

    /// Creates a login role with a password and a database it owns; an error never shows the password.
    pub fn create_user_and_database(&self, user: &str, password: &str, db: &str) -> Result<(), Error> {
        let role = |pw: &str| format!("CREATE ROLE {} LOGIN PASSWORD {pw}", quote_ident(user));
        self.psql_shown_as("postgres", &role(&quote_literal(password)), &role("'***'"))?;
        self.psql("postgres", &format!("CREATE DATABASE {} OWNER {}", quote_ident(db), quote_ident(user)))
            .map(drop)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.stop();
        if let procs::Workdir::Temp(dir) = &self.root {
            let _ = remove_data(dir.path());
        }
    }
}

/// Where the data of a server in `root` lives, and the directory that made it move, if any.
fn data_location(
    root: &Path,
    owner: &process::RunAs,
    data_in: Option<&Path>,
) -> Result<(PathBuf, Option<PathBuf>), Error> {
    let pointer = root.join(DATA_POINTER);
    if let Ok(text) = fs::read_to_string(&pointer) {
        return Ok((PathBuf::from(text.trim_end()).join("data"), owner.blocked_at(root)));
    }
    let configured = data_in.map(Path::to_path_buf).or_else(default_data_dir);
    let blocked = owner.blocked_at(root);
    if blocked.is_none() && configured.is_none() {
        return Ok((root.join("data"), None));
    }
    let parent = configured.unwrap_or_else(std::env::temp_dir);
    let home = tempfile::Builder::new()
        .prefix(OUTSIDE_PREFIX)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(&parent)
        .map_err(io(format!("creating a data directory in {}", parent.display())))?
        .keep();
    owner.hand_over(&home)?;
    // Recorded before anything is written there, so a removal after a crash finds it.
    procs::write_file(&pointer, home.display().to_string().as_bytes(), 0o600)?;
    Ok((home.join("data"), blocked))
}

/// Removes the data of the server directory `dir`, wherever it lives: `dir/data`, and a data
/// directory outside named by its [`DATA_POINTER`] (only one this crate created). The server
/// must be stopped. A directory that holds no cluster is left alone.
pub fn remove_data(dir: &Path) -> Result<(), Error> {
    let pointer = dir.join(DATA_POINTER);
    if let Ok(text) = fs::read_to_string(&pointer) {
        let home = PathBuf::from(text.trim_end());
        // Only a directory this crate made (wherever $TMPDIR or $XTASK_PG_DATA_DIR pointed then).
        let ours = home.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(OUTSIDE_PREFIX));
        if ours {
            match fs::remove_dir_all(&home) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(format!("removing {}", home.display()))(e));
                }
                _ => {}
            }
        }
        fs::remove_file(&pointer).map_err(io(format!("removing {}", pointer.display())))?;
    }
    let local = dir.join("data");
    if local.join("PG_VERSION").exists() {
        fs::remove_dir_all(&local).map_err(io(format!("removing {}", local.display())))?;
    }
    Ok(())
}

/// Runs `initdb` into `data` as `owner`; the superuser gets the password in `pwfile`, or
/// none (then only the owner-only socket lets anyone in).
fn run_initdb(
    bin: &Binaries,
    data: &Path,
    pwfile: Option<&Path>,
    owner: &process::RunAs,
    detach: bool,
) -> Result<(), Error> {
    let mut cmd = procs::command(bin.tool("initdb"));
    cmd.arg("--pgdata").arg(data).args(["--username", SUPERUSER]).args(INITDB_OPTIONS).arg("--no-sync");
    if let Some(pwfile) = pwfile {
        cmd.arg(format!("--pwfile={}", pwfile.display()));
    }
    owner.apply(&mut cmd);
    if detach {
        // Like the server: a Ctrl-C for us is ours to handle (by tearing down), not initdb's.
        procs::own_process_group(&mut cmd);
    }
    let out = cmd.output().map_err(io(format!("running {}", bin.tool("initdb").display())))?;
    if !out.status.success() {
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        return Err(Error::Initdb { status: out.status, output });
    }
    Ok(())
}

/// The directory holding the data of the server directory `dir`: `dir` itself, or the one
/// its [`DATA_POINTER`] names. Work the server's account must reach (a template being made)
/// goes there.
pub fn data_parent(dir: &Path) -> PathBuf {
    match fs::read_to_string(dir.join(DATA_POINTER)) {
        Ok(text) => PathBuf::from(text.trim_end()),
        Err(_) => dir.to_path_buf(),
    }
}

/// Ready when `postmaster.pid` says that the spawned server accepts connections (the signal
/// `pg_ctl -w` uses). Only a file naming the spawned process counts: a killed server leaves a
/// stale one saying `ready`.
struct PidfileSaysReady {
    path: PathBuf,
    pid: u32,
}

impl wait::Probe for PidfileSaysReady {
    fn name(&self) -> String {
        format!("postgres (pid {})", self.pid)
    }

    fn check(&mut self) -> wait::BoxFuture<'_, wait::Status> {
        Box::pin(async move {
            match fs::read_to_string(&self.path) {
                Ok(text) if pidfile_says_ready(&text, self.pid) => wait::Status::Ready,
                Ok(_) => wait::Status::NotYet(format!("{} does not say ready yet", self.path.display())),
                Err(e) => wait::Status::NotYet(format!("reading {}: {e}", self.path.display())),
            }
        })
    }
}

/// Whether `postmaster.pid` text says that server `pid` accepts connections: line 1 is the
/// postmaster's pid and line 8 its status.
fn pidfile_says_ready(text: &str, pid: u32) -> bool {
    let mut lines = text.lines().map(str::trim);
    let owner = lines.next().and_then(|l| l.parse::<u32>().ok());
    owner == Some(pid) && lines.nth(6) == Some("ready")
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A random alphanumeric secret, for per-run passwords.
pub fn random_password() -> String {
    rand::rng().sample_iter(Alphanumeric).take(24).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_names_the_place_or_keeps_the_data_home_and_unset_takes_only_a_roomy_tmpfs() {
        let disk = tempfile::tempdir().unwrap();
        let var = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(choose_data_dir(var("/srv/pg"), disk.path()), Some(PathBuf::from("/srv/pg")));
        assert_eq!(choose_data_dir(var(DATA_IN_SERVER_DIR), Path::new("/dev/shm")), None);
        // Unset (or empty) and not a tmpfs: the server's own directory.
        assert_eq!(choose_data_dir(None, disk.path()), None);
        assert_eq!(choose_data_dir(var(""), disk.path()), None);
        // A tmpfs too small for clusters (a container's 64 MiB /dev/shm) is not taken either.
        let small = disk.path().join("small");
        std::fs::create_dir(&small).unwrap();
        let mounted = procs::command("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(&small)
            .output()
            .is_ok_and(|o| o.status.success());
        if mounted {
            assert_eq!(choose_data_dir(None, &small), None, "64 MiB is too little room");
            let _ = procs::command("umount").arg(&small).output();
        } else {
            eprintln!("not checked: a small tmpfs is refused (cannot mount one here)");
        }
        let big = Path::new("/dev/shm");
        if roomy_tmpfs(big) {
            assert_eq!(choose_data_dir(None, big), Some(big.to_path_buf()));
        }
    }

    const PIDFILE: &str = "4242\n/tmp/data\n1700000000\n5432\n\n127.0.0.1\n  1234567     65536\nready   \n";

    #[test]
    fn a_pidfile_counts_only_for_the_spawned_server_once_ready() {
        assert!(pidfile_says_ready(PIDFILE, 4242));
        assert!(!pidfile_says_ready(PIDFILE, 4243), "a stale file from a killed server");
        assert!(!pidfile_says_ready(&PIDFILE.replace("ready", "starting"), 4242));
        assert!(!pidfile_says_ready("4242\n/tmp/data\n", 4242), "a file still being written");
        assert!(!pidfile_says_ready("", 4242));
    }
}
