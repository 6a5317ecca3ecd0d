//! A small HTTP/1.1 load generator: one thread per keep-alive connection, cycling through
//! request targets, either as fast as answers come (closed loop, for the maximum rate) or on
//! a fixed schedule (open loop; latency counted from the scheduled send time, so queueing is
//! not hidden). Threads sleep with the kernel's high-resolution timers. On a schedule the
//! threads run at nice -10 (as root): Voicenter's sender is another host, so its lateness in
//! sending, when the servers' work takes the cores, is not the servers' to count.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a run measured.
pub struct Outcome {
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    /// Each call's latency from the time it was due (the generator's own lateness included),
    /// and from the time it was sent (what the server and the network took), sorted.
    latencies: Vec<Duration>,
    served: Vec<Duration>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// This run and `other` as one.
    pub fn and(mut self, other: Outcome) -> Outcome {
        self.requests += other.requests;
        self.errors += other.errors;
        self.seconds += other.seconds;
        self.latencies.extend(other.latencies);
        self.latencies.sort();
        self.served.extend(other.served);
        self.served.sort();
        self
    }

    /// The latency at `p` (0.0 to 1.0) from the time each call was due, in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        at(&self.latencies, p)
    }

    /// The latency at `p` from the time each call was sent, in milliseconds: without the
    /// load generator's own lateness in sending (its threads share the cores).
    pub fn served_ms(&self, p: f64) -> f64 {
        at(&self.served, p)
    }
}

fn at(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// How requests are paced.
#[derive(Clone, Copy)]
pub enum Pace {
    /// Each connection sends its next request when the last is answered.
    Closed,
    /// This many requests per second over all connections.
    Fixed(f64),
}

struct Conn {
    reader: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn {
            reader: BufReader::new(stream),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// One GET; returns the status.
    fn get(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.reader.get_mut().write_all(request)?;
        let mut status = 0;
        let mut length = 0;
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = self.line.as_str();
            if status == 0 {
                status = line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if line.len() > 15 && line[..15].eq_ignore_ascii_case("content-length:") {
                length = line[15..].trim().parse().unwrap_or(0);
            } else if line == "\r\n" {
                break;
            }
        }
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body)?;
        Ok(status)
    }
}

/// Runs `connections` keep-alive connections against `addr` for `warmup` then `duration`,
/// cycling through `targets`; only the requests after the warm-up are measured.
pub fn run(
    addr: SocketAddr,
    targets: &[String],
    connections: usize,
    pace: Pace,
    warmup: Duration,
    duration: Duration,
) -> Outcome {
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        targets
            .iter()
            .map(|t| format!("GET {t} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes())
            .collect(),
    );
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let requests = requests.clone();
            std::thread::spawn(move || {
                if matches!(pace, Pace::Fixed(_)) {
                    ahead_of_servers();
                }
                let (mut latencies, mut served) = (Vec::new(), Vec::new());
                let mut errors = 0;
                let Ok(mut conn) = Conn::open(addr) else {
                    return (latencies, served, 1);
                };
                let mut i = c;
                loop {
                    let scheduled = match pace {
                        Pace::Closed => Instant::now(),
                        Pace::Fixed(rate) => {
                            let at = start + Duration::from_secs_f64(i as f64 / rate);
                            let now = Instant::now();
                            if at > now {
                                std::thread::sleep(at - now);
                            }
                            at
                        }
                    };
                    if scheduled >= end {
                        break;
                    }
                    let sent = Instant::now();
                    let ok = matches!(conn.get(&requests[i % requests.len()]), Ok(200));
                    if scheduled >= measure_from {
                        served.push(sent.elapsed());
                        latencies.push(scheduled.elapsed());
                        errors += usize::from(!ok);
                    }
                    if !ok {
                        match Conn::open(addr) {
                            Ok(c) => conn = c,
                            Err(_) => return (latencies, served, errors + 1),
                        }
                    }
                    i += connections;
                }
                (latencies, served, errors)
            })
        })
        .collect();
    let (mut latencies, mut served) = (Vec::new(), Vec::new());
    let mut errors = 0;
    for t in threads {
        if let Ok((l, s, e)) = t.join() {
            latencies.extend(l);
            served.extend(s);
            errors += e;
        }
    }
    latencies.sort();
    served.sort();
    Outcome {
        requests: latencies.len(),
        errors,
        seconds: duration.as_secs_f64(),
        latencies,
        served,
    }
}

/// Puts the calling thread at nice -10, ahead of the servers (nice 0) and the sync thread
/// (nice 10); says once when it may not (not root), as its rows then count its lateness.
fn ahead_of_servers() {
    static SAID: std::sync::Once = std::sync::Once::new();
    let refused = rustix::process::setpriority_process(Some(rustix::thread::gettid()), -10).err();
    if let Some(why) = refused {
        SAID.call_once(|| {
            eprintln!(
                "the open-loop generator could not raise its priority ({why}): its own \
                 lateness counts in the rows measured from when calls were due"
            )
        });
    }
}
