//! The Redis probe: ready when the server answers `PING` with `PONG`, after `AUTH` when a password is set.
//!
//! Spoken in a few lines of RESP over a plain TCP stream: a probe needs nothing more.
//! `NOAUTH` (a password is required) and `WRONGPASS` or an error reply to `AUTH` are failures;
//! `LOADING`, `BUSY` and `MASTERDOWN` are states a server comes out of by itself.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::{BoxFuture, Probe, ProbeError, Status};

/// Error replies that mean the client's credentials are wrong or missing.
const AUTH_ERRORS: [&str; 2] = ["NOAUTH", "WRONGPASS"];

/// Sends `AUTH` (if configured) and `PING` to a Redis server.
#[derive(Debug, Clone)]
pub struct RedisProbe {
    addr: String,
    username: Option<String>,
    password: Option<String>,
}

impl RedisProbe {
    /// A probe for `host:port` without credentials.
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into(), username: None, password: None }
    }

    /// A probe for a `redis://[user][:password@]host:port[/db]` URL.
    pub fn from_url(url: &str) -> Result<Self, ProbeError> {
        let invalid = |reason: &str| ProbeError::InvalidAddress {
            what: "redis URL",
            input: redact::connection_string(url),
            reason: reason.to_string(),
        };
        let rest = url.strip_prefix("redis://").ok_or_else(|| invalid("it must start with redis://"))?;
        let rest = rest.split(['/', '?']).next().unwrap_or_default();
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
        if host.is_empty() {
            return Err(invalid("it names no host"));
        }
        port.parse::<u16>().map_err(|_| invalid("the port is not a number"))?;
        let mut probe = Self::new(format!("{host}:{port}"));
        if let Some(info) = userinfo {
            let (user, pw) = info.split_once(':').unwrap_or((info, ""));
            probe.username = (!user.is_empty()).then(|| percent_decode(user));
            probe.password = (!pw.is_empty()).then(|| percent_decode(pw));
        }
        Ok(probe)
    }

    /// Authenticates with `password` (and `username` for an ACL user) before `PING`.
    pub fn auth(mut self, username: Option<&str>, password: &str) -> Self {
        self.username = username.map(str::to_string);
        self.password = Some(password.to_string());
        self
    }

    async fn ping(&self) -> Result<Status, std::io::Error> {
        let stream = TcpStream::connect(&self.addr).await?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        if let Some(pw) = &self.password {
            let mut args = vec!["AUTH"];
            args.extend(self.username.as_deref());
            args.push(pw);
            let reply = call(&mut read, &mut write, &args).await?;
            if let Some(err) = reply.strip_prefix('-') {
                return Ok(match first_word(err) {
                    "LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" => Status::NotYet(err.to_string()),
                    _ => Status::Failed(format!("AUTH was refused: {err}")),
                });
            }
        }
        let reply = call(&mut read, &mut write, &["PING"]).await?;
        Ok(match reply.strip_prefix('-') {
            None if reply == "+PONG" => Status::Ready,
            None => Status::NotYet(format!("unexpected reply to PING: {reply}")),
            Some(err) if AUTH_ERRORS.contains(&first_word(err)) => {
                Status::Failed(format!("PING was refused: {err}"))
            }
            Some(err) => Status::NotYet(err.to_string()),
        })
    }
}

impl Probe for RedisProbe {
    fn name(&self) -> String {
        format!("redis {}", self.addr)
    }

    fn check(&mut self) -> BoxFuture<'_, Status> {
        Box::pin(async move {
            match self.ping().await {
                Ok(status) => status,
                Err(e) => Status::NotYet(format!("connecting to {}: {e}", self.addr)),
            }
        })
    }
}

/// Sends one command as a RESP array of bulk strings and reads the first line of the reply.
async fn call(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    args: &[&str],
) -> Result<String, std::io::Error> {
    let mut msg = format!("*{}\r\n", args.len());
    for a in args {
        msg.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    write.write_all(msg.as_bytes()).await?;
    let mut line = String::new();
    if read.read_line(&mut line).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    Ok(line.trim_end().to_string())
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or_default()
}

/// Decodes `%XX` escapes in a URL's user or password.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_address_user_and_password() {
        let p = RedisProbe::from_url("redis://:p%40ss@127.0.0.1:6390/0").unwrap();
        assert_eq!(
            (p.addr.as_str(), p.username.as_deref(), p.password.as_deref()),
            ("127.0.0.1:6390", None, Some("p@ss"))
        );
        let p = RedisProbe::from_url("redis://app:pw@cache:7000").unwrap();
        assert_eq!(
            (p.addr.as_str(), p.username.as_deref(), p.password.as_deref()),
            ("cache:7000", Some("app"), Some("pw"))
        );
        let p = RedisProbe::from_url("redis://cache").unwrap();
        assert_eq!((p.addr.as_str(), p.password.as_deref()), ("cache:6379", None));
        assert_eq!(p.name(), "redis cache:6379");
    }

    #[test]
    fn bad_urls_are_rejected_without_the_password() {
        let text = RedisProbe::from_url("http://x:1").unwrap_err().to_string();
        assert!(text.contains("must start with redis://"), "{text}");
        let text = RedisProbe::from_url("redis://:secret@host:port").unwrap_err().to_string();
        assert!(text.contains("not a number") && !text.contains("secret"), "{text}");
    }
}
