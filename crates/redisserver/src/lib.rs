//! A throwaway Redis server for tests and the local backend.
//!
//! [`RedisServer::start`] writes a config file into a fresh temporary directory, starts the system
//! `redis-server` on a free loopback port without persistence, and returns once the server answers
//! `PING` (with `AUTH` first when it has a password). Dropping the value stops the server and
//! removes its directory.
//!
//! ```no_run
//! let redis = redisserver::RedisServer::start_with_password("s3cret")?;
//! println!("{}", redis.url()); // redis://:s3cret@127.0.0.1:PORT
//! # Ok::<(), redisserver::Error>(())
//! ```

mod process;
mod resp;

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the `redis-server` binary to run instead of the one on `PATH`.
pub const BINARY_ENV: &str = "REDIS_SERVER";

/// How long a fresh server may take to answer `PING` before the launcher gives up.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// What can go wrong while starting or stopping a server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `redis-server` binary was found.
    #[error(
        "redis-server not found; searched {searched}: install Debian's `redis-server` package (apt-get install redis-server) or set {BINARY_ENV}"
    )]
    BinaryNotFound {
        /// Where the launcher looked.
        searched: String,
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
    /// The server process exited while starting.
    #[error("redis-server exited ({status}); last log lines:\n{log_tail}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// The end of its log.
        log_tail: String,
    },
    /// The server did not answer `PING` in time.
    #[error(
        "redis-server did not answer PING within {waited:?} (last answer: {last}); last log lines:\n{log_tail}"
    )]
    NotReady {
        /// How long the launcher waited.
        waited: Duration,
        /// What the last attempt got.
        last: String,
        /// The end of its log.
        log_tail: String,
    },
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let action = action.into();
    move |source| Error::Io { action, source }
}

/// How to start a server in a directory of the caller's (see [`RedisServer::start_in`]).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Port to listen on; `None` picks a free loopback port.
    pub port: Option<u16>,
    /// Password clients must send with `AUTH`.
    pub password: Option<String>,
    /// Start the server in its own process group, so a Ctrl-C meant for us does not reach it.
    pub detach: bool,
    /// The server gets a clean shutdown when this process dies, however it dies (even SIGKILL):
    /// for environments that must not outlive the tool that started them.
    pub die_with_us: bool,
}

/// A running Redis server owned by this process; dropping it stops the server and, for a
/// temporary directory, removes it.
#[derive(Debug)]
pub struct RedisServer {
    dir: Root,
    binary: PathBuf,
    port: u16,
    options: Options,
    child: Option<Child>,
}

#[derive(Debug)]
enum Root {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Root {
    fn path(&self) -> &Path {
        match self {
            Root::Temp(t) => t.path(),
            Root::Kept(p) => p,
        }
    }
}

impl RedisServer {
    /// Starts a server without a password.
    pub fn start() -> Result<Self, Error> {
        Self::launch(None, Options::default())
    }

    /// Starts a server that requires `password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Result<Self, Error> {
        Self::launch(None, Options { password: Some(password.to_string()), ..Options::default() })
    }

    /// Starts a server whose config, pid file (`redis.pid`) and log live in `dir`, which is kept.
    pub fn start_in(dir: &Path, options: Options) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        Self::launch(Some(dir.to_path_buf()), options)
    }

    fn launch(dir: Option<PathBuf>, options: Options) -> Result<Self, Error> {
        let binary = locate()?;
        let dir = match dir {
            Some(d) => Root::Kept(d),
            None => Root::Temp(
                tempfile::Builder::new()
                    .prefix("redisserver-")
                    .tempdir()
                    .map_err(io("creating a temporary directory"))?,
            ),
        };
        let mut server = Self { dir, binary, port: 0, options, child: None };
        if let Some(port) = server.options.port {
            server.port = port;
            server.spawn()?;
            return Ok(server);
        }
        // A free port can be taken by another process between our probe and the server's bind;
        // a few retries with fresh ports make parallel test runs reliable.
        let mut last = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e @ Error::Exited { .. }) if e.to_string().contains("Address already in use") => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("the loop ran at least once"))
    }

    /// Writes the config (0600: it may hold the password) and starts the server from it.
    fn spawn(&mut self) -> Result<(), Error> {
        let conf = self.dir.path().join("redis.conf");
        // `set-proc-title no` keeps the config path in the command line, where teardown looks for it.
        let mut text = format!(
            "port {}\nbind 127.0.0.1\ndir {}\nlogfile {}\npidfile {}\nsave \"\"\nappendonly no\ndaemonize no\nset-proc-title no\n",
            self.port,
            self.dir.path().display(),
            self.log_path().display(),
            self.pid_path().display(),
        );
        if let Some(pw) = &self.options.password {
            text.push_str(&format!("requirepass \"{}\"\n", pw.replace('\\', "\\\\").replace('"', "\\\"")));
        }
        procs::write_file(&conf, text.as_bytes(), 0o600)?;
        // The log file is named in the config; stdout/stderr catch what is printed before it opens.
        let early =
            File::create(self.dir.path().join("stdout.log")).map_err(io("creating the output log"))?;
        let early_err = early.try_clone().map_err(io("duplicating the output log handle"))?;
        let mut cmd = process::command(&self.binary);
        cmd.arg(&conf).stdin(Stdio::null()).stdout(early).stderr(early_err);
        if self.options.detach {
            process::detach(&mut cmd);
        }
        let child = procs::spawn(cmd, process::STOP.tie(self.options.die_with_us))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Sends `PING` until it is answered with `PONG`, failing at once if the process exits.
    fn wait_ready(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let child = self.child.as_mut().expect("spawned");
            if let Some(status) = child.try_wait().map_err(io("checking the redis-server process"))? {
                self.child = None;
                return Err(Error::Exited { status, log_tail: self.log_tail(20) });
            }
            let last = match resp::ping(self.port, self.options.password.as_deref()) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if started.elapsed() > START_DEADLINE {
                return Err(Error::NotReady { waited: started.elapsed(), last, log_tail: self.log_tail(20) });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL if it lingers); the directory stays until drop.
    pub fn stop(&mut self) -> Result<(), Error> {
        match self.child.take() {
            Some(mut child) => process::stop_child(&mut child),
            None => Ok(()),
        }
    }

    /// Stops the server and starts it again on the same port with the same password.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop()?;
        self.spawn()
    }

    /// Hands the running server over to the caller: it keeps running after this value is gone.
    /// Returns its pid (also in [`RedisServer::pid_path`]).
    pub fn keep_running(mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }

    /// The file holding the server's pid while it runs.
    pub fn pid_path(&self) -> PathBuf {
        self.dir.path().join("redis.pid")
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The password clients must send with `AUTH`, if any.
    pub fn password(&self) -> Option<&str> {
        self.options.password.as_deref()
    }

    /// A `redis://` URL for the server, e.g. `redis://:pw@127.0.0.1:6390`.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The file the server writes its log to.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The directory holding the server's config and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `n` lines of the server's output and log.
    pub fn log_tail(&self, n: usize) -> String {
        let mut text = fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default();
        text.push_str(&fs::read_to_string(self.log_path()).unwrap_or_default());
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Finds `redis-server`: `$REDIS_SERVER`, then `PATH`, then `/usr/bin` and `/usr/sbin`.
pub fn locate() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::BinaryNotFound { searched: format!("{BINARY_ENV}={}", path.display()) })
        };
    }
    let on_path =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::BinaryNotFound {
            searched: format!("${BINARY_ENV}, PATH, /usr/bin and /usr/sbin"),
        })
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free loopback port"))?;
    Ok(listener.local_addr().map_err(io("reading the probe socket address"))?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_the_debian_package() {
        let text = Error::BinaryNotFound { searched: "PATH".into() }.to_string();
        assert!(text.contains("Debian's `redis-server` package"), "{text}");
        assert!(text.contains(BINARY_ENV), "{text}");
    }

    #[test]
    fn the_machine_has_a_redis_server_to_find() {
        // CI installs Debian's redis-server; without it every Redis test would fail anyway.
        assert!(locate().unwrap().ends_with("redis-server"));
    }
}
