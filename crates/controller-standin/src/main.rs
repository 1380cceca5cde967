//! A stand-in for the controller under test, so the kind plan runs end to end in this
//! repository: it serves `/healthz` (alive) and `/readyz` (ready only while DataStorage's
//! readiness URL answers 200) on `HEALTH_PORT`, like a controller-runtime manager does.
//! The monorepo points its suite file at its real controller instead.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn main() {
    let port = std::env::var("HEALTH_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8081u16);
    let upstream = std::env::var("DATASTORAGE_READY_URL").unwrap_or_default();
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("controller-standin: cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "controller-standin: serving /healthz and /readyz on port {port}; ready while {upstream} answers 200"
    );
    let mut last = String::new();
    for conn in listener.incoming().flatten() {
        let path = request_path(&conn).unwrap_or_default();
        let (status, body) = match path.as_str() {
            "/healthz" => ("200 OK", "ok".to_string()),
            "/readyz" => match check(&upstream) {
                Ok(()) => ("200 OK", "ready".to_string()),
                Err(why) => ("503 Service Unavailable", format!("DataStorage not ready: {why}")),
            },
            _ => ("404 Not Found", "not found".to_string()),
        };
        if path == "/readyz" && body != last {
            eprintln!("controller-standin: {body}");
            last = body.clone();
        }
        let mut conn = conn;
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

/// The path of the request line, e.g. `/readyz`.
fn request_path(conn: &TcpStream) -> Option<String> {
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1).map(str::to_string)
}

/// `GET url` over plain HTTP answers 200.
fn check(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("`{url}` is not an http:// URL"))?;
    let (authority, path) =
        rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let addr = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    let mut stream = TcpStream::connect(&addr).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nhost: {authority}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| format!("{addr}: {e}"))?;
    match &head[9..12] {
        b"200" => Ok(()),
        code => Err(format!("GET {path}: {}", String::from_utf8_lossy(code))),
    }
}
