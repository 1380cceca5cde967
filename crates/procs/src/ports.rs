//! Free loopback ports for servers we start, and the retry for the race every such choice has:
//! between our probe and the server's bind, another process may take the port.

use std::net::TcpListener;

use nix::errno::Errno;

use crate::Error;

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> Result<u16, Error> {
    Ok(free_ports(1)?[0])
}

/// `n` distinct loopback TCP ports that were free a moment ago (for a server with several
/// listeners). They are held together while chosen: the kernel may hand the same ephemeral port
/// out twice in a row when nothing has bound it in between.
pub fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let err = |source| Error::Port { source };
    let held: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>().map_err(err)?;
    held.iter().map(|l| Ok(l.local_addr().map_err(err)?.port())).collect()
}

/// How one attempt on a port failed: the caller's classification, which decides whether another
/// port is tried.
#[derive(Debug)]
pub enum PortAttempt<E> {
    /// Another process bound the port between our choice and the attempt: worth a fresh port.
    Taken(E),
    /// Any other failure: a fresh port would not help.
    Failed(E),
}

impl<E> PortAttempt<E> {
    /// [`PortAttempt::Taken`] if `taken` says so of `error`, else [`PortAttempt::Failed`].
    pub fn taken_if(error: E, taken: impl FnOnce(&E) -> bool) -> Self {
        if taken(&error) { Self::Taken(error) } else { Self::Failed(error) }
    }
}

/// Runs `attempt` on a free loopback port, and again on a fresh one while the port was
/// [`PortAttempt::Taken`], `attempts` times in all; the last failure is returned.
pub fn with_free_port<T, E: From<Error>>(
    attempts: usize,
    mut attempt: impl FnMut(u16) -> Result<T, PortAttempt<E>>,
) -> Result<T, E> {
    let mut left = attempts.max(1);
    loop {
        left -= 1;
        match attempt(free_port()?) {
            Ok(done) => return Ok(done),
            Err(PortAttempt::Taken(_)) if left > 0 => {}
            Err(PortAttempt::Taken(e) | PortAttempt::Failed(e)) => return Err(e),
        }
    }
}

/// Runs `attempt` on `port` when the caller chose one (once: a chosen port is not swapped for
/// another), else like [`with_free_port`].
pub fn with_port<T, E: From<Error>>(
    port: Option<u16>,
    attempts: usize,
    mut attempt: impl FnMut(u16) -> Result<T, PortAttempt<E>>,
) -> Result<T, E> {
    match port {
        Some(port) => attempt(port).map_err(|(PortAttempt::Taken(e) | PortAttempt::Failed(e))| e),
        None => with_free_port(attempts, attempt),
    }
}

/// Whether a server's log says its bind failed because the address is in use. A server we
/// start reports that only in its log, as the system's text for `EADDRINUSE` ("could not bind
/// ...: Address already in use" from PostgreSQL, "bind: Address already in use" from Redis).
pub fn port_taken_in(log: &str) -> bool {
    log.contains(Errno::EADDRINUSE.desc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    /// Binds `port` as a server would, classifying "in use" as a port race.
    fn bind(port: u16) -> Result<TcpListener, PortAttempt<Error>> {
        TcpListener::bind(("127.0.0.1", port)).map_err(|source| match source.kind() {
            ErrorKind::AddrInUse => PortAttempt::Taken(Error::Port { source }),
            _ => PortAttempt::Failed(Error::Port { source }),
        })
    }

    #[test]
    fn a_port_taken_before_the_bind_is_retried_on_another() {
        let mut thief = None;
        let mut tried = Vec::new();
        let server = with_free_port(3, |port| {
            tried.push(port);
            if thief.is_none() {
                // Another process wins the race for the first port.
                thief = Some(TcpListener::bind(("127.0.0.1", port)).unwrap());
            }
            bind(port)
        })
        .unwrap();
        assert_eq!(tried.len(), 2, "{tried:?}");
        assert_ne!(tried[0], tried[1]);
        assert_eq!(server.local_addr().unwrap().port(), tried[1]);
        assert_eq!(thief.unwrap().local_addr().unwrap().port(), tried[0], "the thief still holds it");
    }

    #[test]
    fn retries_end_with_the_last_failure_and_other_failures_end_at_once() {
        let mut calls = 0;
        let err = with_free_port(3, |port| {
            calls += 1;
            let _thief = TcpListener::bind(("127.0.0.1", port)).unwrap();
            bind(port).map(drop)
        })
        .unwrap_err();
        assert_eq!(calls, 3);
        assert!(err.to_string().contains(Errno::EADDRINUSE.desc()), "{err}");

        let mut calls = 0;
        let err = with_free_port::<(), Error>(3, |_| {
            calls += 1;
            Err(PortAttempt::Failed(Error::Port { source: std::io::Error::other("no network") }))
        })
        .unwrap_err();
        assert_eq!(calls, 1);
        assert!(err.to_string().contains("no network"), "{err}");
    }

    #[test]
    fn a_chosen_port_is_tried_once_as_it_is() {
        let thief = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = thief.local_addr().unwrap().port();
        let mut tried = Vec::new();
        let err = with_port(Some(port), 3, |p| {
            tried.push(p);
            bind(p)
        })
        .unwrap_err();
        assert_eq!(tried, [port]);
        assert!(err.to_string().contains(Errno::EADDRINUSE.desc()), "{err}");
    }

    #[test]
    fn ports_chosen_together_are_distinct() {
        // Each was free when chosen (bound by us then); binding them again here would race
        // every other process on the machine, the race `with_free_port` exists for (two test
        // runs at once lost it), so it is not what is checked.
        let ports = free_ports(8).unwrap();
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 8, "{ports:?}");
        assert!(ports.iter().all(|p| *p != 0), "{ports:?}");
    }

    #[test]
    fn a_bind_failure_in_a_log_is_recognised_by_the_systems_text() {
        let pg = "LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use";
        let redis = "# Warning: Could not create server TCP listening socket 127.0.0.1:6390: bind: Address already in use";
        assert!(port_taken_in(pg) && port_taken_in(redis));
        assert!(!port_taken_in("FATAL:  data directory has wrong ownership"));
        assert!(matches!(PortAttempt::taken_if(redis, |log| port_taken_in(log)), PortAttempt::Taken(_)));
        assert!(matches!(PortAttempt::taken_if(pg, |_| false), PortAttempt::Failed(_)));
    }
}
