//! The launcher against the machine's real `redis-server`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use redisserver::RedisServer;

/// Sends one inline command and returns the first reply line.
fn send(port: u16, lines: &[&str]) -> Vec<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    lines
        .iter()
        .map(|l| {
            writer.write_all(format!("{l}\r\n").as_bytes()).unwrap();
            let mut reply = String::new();
            reader.read_line(&mut reply).unwrap();
            reply.trim_end().to_string()
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

#[test]
fn starts_answers_restarts_and_cleans_up() {
    let mut redis = RedisServer::start().expect("start");
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert_eq!(send(redis.port(), &["SET k v", "GET k"]), ["+OK", "$1"]);
    assert!(redis.log_tail(50).contains("Ready to accept connections"), "{}", redis.log_tail(50));

    let port = redis.port();
    let first_pid = redis.pid().unwrap();
    redis.restart().unwrap();
    assert_eq!(redis.port(), port, "a restart keeps the port clients were given");
    assert_ne!(redis.pid().unwrap(), first_pid);
    assert!(!alive(first_pid), "the old server process is gone");
    assert_eq!(send(port, &["PING"]), ["+PONG"]);

    let dir = redis.dir().to_path_buf();
    let pid = redis.pid().unwrap();
    drop(redis);
    assert!(!alive(pid), "dropping the server stops it");
    assert!(!dir.exists(), "dropping the server removes its directory");
}

#[test]
fn a_password_is_required_and_in_the_url() {
    let redis = RedisServer::start_with_password("s3cret").unwrap();
    assert_eq!(redis.url(), format!("redis://:s3cret@127.0.0.1:{}", redis.port()));
    assert_eq!(redis.password(), Some("s3cret"));
    let replies = send(redis.port(), &["PING", "AUTH wrong", "AUTH s3cret", "PING"]);
    assert!(replies[0].starts_with("-NOAUTH"), "{replies:?}");
    assert!(replies[1].starts_with("-WRONGPASS"), "{replies:?}");
    assert_eq!(replies[2..], ["+OK", "+PONG"]);
}

#[test]
fn servers_run_side_by_side_on_their_own_ports() {
    let a = RedisServer::start().unwrap();
    let b = RedisServer::start().unwrap();
    assert_ne!(a.port(), b.port());
    send(a.port(), &["SET only-a 1"]);
    assert_eq!(send(b.port(), &["EXISTS only-a"]), [":0"]);
}
