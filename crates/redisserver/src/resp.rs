//! Just enough of the Redis protocol (RESP) to ask a server whether it answers `PING`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Connects to the loopback port, authenticates if a password is given, and expects `+PONG`.
///
/// The error is a short human reason (connection refused, the server's error reply).
pub(crate) fn ping(port: u16, password: Option<&str>) -> Result<(), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;
    if let Some(pw) = password {
        let reply = call(&mut writer, &mut reader, &["AUTH", pw])?;
        if reply != "+OK" {
            return Err(format!("AUTH answered {reply}"));
        }
    }
    let reply = call(&mut writer, &mut reader, &["PING"])?;
    if reply == "+PONG" { Ok(()) } else { Err(format!("PING answered {reply}")) }
}

/// Sends one command as a RESP array of bulk strings and reads a one-line reply.
fn call(writer: &mut TcpStream, reader: &mut impl BufRead, args: &[&str]) -> Result<String, String> {
    let mut msg = format!("*{}\r\n", args.len());
    for a in args {
        msg.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    writer.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    if line.is_empty() {
        return Err("connection closed".into());
    }
    Ok(line.trim_end().to_string())
}
