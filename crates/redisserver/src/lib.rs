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

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

/// Environment variable naming the `redis-server` binary to run instead of the one on `PATH`.
pub const BINARY_ENV: &str = "REDIS_SERVER";

/// How long a fresh server may take to answer `PING` before the launcher gives up.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Redis's clean shutdown (SIGTERM), and how long it may take before the server is killed.
const STOP: procs::StopPolicy =
    procs::StopPolicy { signal: nix::sys::signal::Signal::SIGTERM, deadline: Duration::from_secs(10) };

/// How many free ports a launch tries when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;

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
    /// The server exited while starting, or did not answer `PING` in time.
    #[error(transparent)]
    NotStarted(#[from] wait::ChildNotReady),
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
    dir: procs::Workdir,
    binary: PathBuf,
    port: u16,
    options: Options,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without a password.
    pub fn start() -> Result<Self, Error> {
        Self::launch(procs::Workdir::temp("redisserver-")?, Options::default())
    }

    /// Starts a server that requires `password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Result<Self, Error> {
        let options = Options { password: Some(password.to_string()), ..Options::default() };
        Self::launch(procs::Workdir::temp("redisserver-")?, options)
    }

    /// Starts a server whose config, pid file (`redis.pid`) and log live in `dir`, which is kept.
    pub fn start_in(dir: &Path, options: Options) -> Result<Self, Error> {
        Self::launch(procs::Workdir::kept(dir)?, options)
    }

    fn launch(dir: procs::Workdir, options: Options) -> Result<Self, Error> {
        let binary = locate()?;
        let mut server = Self { dir, binary, port: 0, options, child: None };
        procs::with_port(server.options.port, PORT_ATTEMPTS, |port| {
            server.port = port;
            let taken = |e: &Error| matches!(e, Error::NotStarted(e) if e.port_taken());
            server.spawn().map_err(|e| procs::PortAttempt::taken_if(e, taken))
        })?;
        Ok(server)
    }

    /// Writes the config (0600: it may hold the password) and starts the server from it.
    fn spawn(&mut self) -> Result<(), Error> {
        let conf = self.dir.path().join("redis.conf");
        // `set-proc-title no` keeps the config path in the command line, where teardown looks for it.
        let mut text = format!(
            "port {}\nbind 127.0.0.1\ndir {}\npidfile {}\nsave \"\"\nappendonly no\ndaemonize no\nset-proc-title no\n",
            self.port,
            self.dir.path().display(),
            self.pid_path().display(),
        );
        if let Some(pw) = &self.options.password {
            text.push_str(&format!("requirepass \"{}\"\n", pw.replace('\\', "\\\\").replace('"', "\\\"")));
        }
        procs::write_file(&conf, text.as_bytes(), 0o600)?;
        // Without a `logfile` in the config, Redis logs to stdout: one file holds all it says.
        let mut cmd = procs::command(&self.binary);
        cmd.arg(&conf);
        procs::log_output(&mut cmd, &self.log_path(), procs::OpenLog::Truncate)?;
        if self.options.detach {
            procs::own_process_group(&mut cmd);
        }
        let child = procs::spawn(cmd, STOP.tie(self.options.die_with_us))?;
        // Ready when it answers PING (after AUTH with the password), as clients will talk to it.
        let mut ready = wait::RedisProbe::new(format!("127.0.0.1:{}", self.port));
        if let Some(pw) = &self.options.password {
            ready = ready.auth(None, pw);
        }
        let waiter = &mut wait::Waiter::new(START_DEADLINE);
        // Kept while it runs, also when it is not ready, so that drop stops it.
        let outcome;
        (self.child, outcome) = waiter.wait_child_blocking(child, "redis-server", &self.log_path(), ready);
        outcome?;
        Ok(())
    }

    /// Stops the server (SIGTERM, then SIGKILL if it lingers); the directory stays until drop.
    pub fn stop(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.child.take() {
            procs::stop_child(&mut child, "redis-server", STOP)?;
        }
        Ok(())
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

    /// The last `n` non-blank lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        procs::log_tail(&self.log_path(), n)
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
