//! `cargo bench`: request latency of popup-ldap (release build) answering from a real slapd
//! over LDAPS, over one keep-alive HTTP connection, one request at a time.
//!
//! Environment: `BENCH_REQUESTS` (default 5000) requests after `BENCH_WARMUP` (default 200).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{binary, client_for, free_port, Slapd};

/// Callers of the fixture, in the forms Voicenter sends, plus misses.
const CALLERS: &[&str] = &[
    "0722776772",
    "972722776772",
    "035551234",
    "035551235",
    "026543210",
    "097654322",
    "0534445566",
    "089876543",
    "0523334444",
    "0500000000",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Connection {
            reader: BufReader::new(stream),
        }
    }

    /// Sends a GET and reads the whole answer; returns the status.
    fn get(&mut self, target: &str) -> u16 {
        write!(
            self.reader.get_mut(),
            "GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n"
        )
        .expect("write");
        let mut status = 0;
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("read");
            if status == 0 {
                status = line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .expect("status");
            } else if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("length");
            } else if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        status
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let requests = env_usize("BENCH_REQUESTS", 5000);
    let warmup = env_usize("BENCH_WARMUP", 200);
    let slapd = Slapd::start();
    let port = free_port();
    let config = slapd.config_file(
        "bench.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{}",
            slapd.config_text("[rate_limit]\nenabled = false\n[log]\nlevel = \"warn\"")
        ),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut child = binary()
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .spawn()
        .expect("spawn popup-ldap");
    client_for(&mut child, addr);

    let mut conn = Connection::open(addr);
    let targets: Vec<String> = CALLERS
        .iter()
        .map(|c| format!("/popup?phone={c}&statusCall=Ringing"))
        .collect();
    for i in 0..warmup {
        assert_eq!(conn.get(&targets[i % targets.len()]), 200);
    }
    let mut times = Vec::with_capacity(requests);
    let started = Instant::now();
    for i in 0..requests {
        let t = Instant::now();
        assert_eq!(conn.get(&targets[i % targets.len()]), 200);
        times.push(t.elapsed());
    }
    let total = started.elapsed();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("live mode, slapd over LDAPS (tests/fixtures/people.ldif), 1 connection, sequential");
    println!(
        "requests {requests}  req/s {:.0}  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        requests as f64 / total.as_secs_f64(),
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.90)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1]),
    );
    let _ = child.kill();
    let _ = child.wait();
}
