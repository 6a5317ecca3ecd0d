//! Hostile and broken clients against the real binary: idle floods past the connection budget
//! and the descriptor limit, slow drips, bodies that never end, HTTP/2 stream floods, and
//! hyper's own error answers; real popups must keep answering throughout. And the request
//! shapes `tests/contract.rs` sends through warp's test filter, through the real listener.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{binary, client_for, free_port, Client};

const DANA: &str = "דנה לוי";
const POPUP: &str = "/popup?phone=0722776772";

/// A config serving the demo directory on `port` with rate limiting off and `extra` keys in
/// `[server]`.
fn config(dir: &Path, port: u16, server: &str, rest: &str) -> PathBuf {
    let path = dir.join("popup.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{server}\n\
         [directory]\nsource = \"ldif\"\nldif = \"{}/config/demo.ldif\"\n\
         phone_attributes = [\"telephoneNumber\", \"mobile\"]\n\
         [rate_limit]\nenabled = false\n{rest}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// The binary serving `config`, its log going to `dir/log`, with at most `descriptors` open
/// files when given.
struct Served {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Served {
    fn start(dir: &Path, config: &Path, port: u16, descriptors: Option<u64>) -> Self {
        let log = dir.join("log");
        let mut cmd = binary();
        cmd.arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        if let Some(n) = descriptors {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        client_for(&mut child, addr);
        Served { child, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log says `needle` (summaries come every 10 s).
    fn wait_for_log(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn proc(&self, file: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.child.id())).expect("proc")
    }

    fn rss_kib(&self) -> u64 {
        self.proc("status")
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// User + system CPU time so far.
    fn cpu(&self) -> Duration {
        let stat = self.proc("stat");
        let after_name = &stat[stat.rfind(')').expect("stat") + 2..];
        let fields: Vec<u64> = after_name
            .split(' ')
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // utime and stime are fields 14 and 15 of stat; `after_name` starts at field 3.
        let ticks = fields[11] + fields[12];
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }

    fn open_descriptors(&self) -> u64 {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("fd dir")
            .count() as u64
    }

    /// Lowers the running process's descriptor limit, as an admin's `prlimit` would.
    fn limit_descriptors(&self, n: u64) {
        let limit = libc::rlimit {
            rlim_cur: n,
            rlim_max: n,
        };
        // SAFETY: prlimit reads `limit` and writes nothing when `old` is null.
        let rc = unsafe {
            libc::prlimit(
                self.child.id() as libc::pid_t,
                libc::RLIMIT_NOFILE,
                &limit,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One popup on a fresh connection, as Voicenter sends it; true when Dana's name came back
/// within `within`.
fn popup_answers(addr: SocketAddr, within: Duration) -> bool {
    let started = Instant::now();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, within) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(within.saturating_sub(started.elapsed()).max(ms(1))));
    let request = format!("GET {POPUP} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.starts_with("HTTP/1.1 200") && text.contains(DANA) && started.elapsed() <= within
}

/// Sends `n` popups, `every` apart; returns how many failed.
fn popups(addr: SocketAddr, n: usize, every: Duration, within: Duration) -> usize {
    (0..n)
        .filter(|_| {
            let ok = popup_answers(addr, within);
            std::thread::sleep(every);
            !ok
        })
        .count()
}

/// Whether the server has closed `s` (EOF or reset), without waiting.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let closed = match s.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).expect("blocking");
    closed
}

/// How long until the server closes `s`, reading (and discarding) whatever it sends.
fn time_to_close(s: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut sink = [0u8; 4096];
    loop {
        match s.read(&mut sink) {
            Ok(0) => return started.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                return Duration::MAX
            }
            Err(_) => return started.elapsed(),
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok())
        .collect()
}

#[test]
fn idle_floods_past_the_budget_and_the_descriptor_limit_cost_no_popup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // A long head timeout, so that only the budget closes the idle flood.
    let config = config(dir.path(), port, "header_timeout_s = 60", "");
    let served = Served::start(dir.path(), &config, port, Some(512));
    let log = served.wait_for_log("connection limits", Duration::from_secs(5));
    assert!(
        log.contains("max_connections=128"),
        "512 descriptors: (512 - 256) / 2 = 128 connections by default\n{log}"
    );
    let rss_before = served.rss_kib();

    let mut flood = idle_connections(served.addr, 1_000);
    let dripping = slow_drips(served.addr, 50, Duration::from_secs(3));
    assert_eq!(popups(served.addr, 20, ms(100), Duration::from_secs(2)), 0);
    dripping.join().expect("drips");
    let still_open = flood
        .iter_mut()
        .map(closed_by_server)
        .filter(|closed| !closed)
        .count();
    assert!(
        still_open <= 128,
        "{still_open} idle connections kept past a budget of 128"
    );
    let log = served.wait_for_log("connections closed by the server", Duration::from_secs(12));
    assert!(log.contains("evicted="), "{log}");
    let grown = served.rss_kib().saturating_sub(rss_before);
    assert!(grown < 40 * 1024, "RSS grew by {grown} KiB");

    // Now the process runs out of descriptors with the budget not yet spent.
    let open = served.open_descriptors();
    served.limit_descriptors(open + 16);
    let cpu_before = served.cpu();
    let started = Instant::now();
    let flooding = std::thread::spawn(move || idle_connections(served_addr(port), 400));
    let failed = popups(served.addr, 20, ms(200), Duration::from_secs(5));
    let _more = flooding.join().expect("flood");
    let cpu = served.cpu() - cpu_before;
    assert_eq!(failed, 0, "popups failed while out of descriptors");
    assert!(
        cpu < started.elapsed() / 2,
        "the accept loop spun: {cpu:?} of CPU in {:?}",
        started.elapsed()
    );
    let log = served.wait_for_log("accepting connections failed", Duration::from_secs(12));
    let lines = log.matches("accepting connections failed").count();
    assert!(
        (1..=3).contains(&lines),
        "{lines} lines about failed accepts: once per interval with a count\n{log}"
    );
    assert!(log.contains("Too many open files"), "{log}");
    let not_popups = log.lines().filter(|l| !l.contains(": popup ")).count();
    assert!(
        not_popups < 20,
        "the floods were logged line by line:\n{log}"
    );
    drop(flood);
}

/// `n` clients sending a request head one byte every 100 ms for `lasting`.
fn slow_drips(addr: SocketAddr, n: usize, lasting: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut drips = idle_connections(addr, n);
        let head = b"GET /popup?phone=0722776772 HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n";
        let started = Instant::now();
        for byte in head.iter().cycle() {
            if started.elapsed() > lasting {
                return;
            }
            for s in &mut drips {
                let _ = s.write_all(&[*byte]);
            }
            std::thread::sleep(ms(100));
        }
    })
}

fn served_addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().expect("addr")
}

/// A server whose phases are short, for the timeout tests.
fn short_timeouts(dir: &Path) -> Served {
    let port = free_port();
    let config = config(
        dir,
        port,
        "header_timeout_s = 2\nbody_timeout_s = 2\nidle_timeout_s = 4",
        "",
    );
    Served::start(dir, &config, port, None)
}

#[test]
fn every_phase_of_a_connection_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = short_timeouts(dir.path());
    let addr = served.addr;
    let within = Duration::from_secs(8);

    // Silent from the start: the head timeout.
    let mut silent = TcpStream::connect(addr).expect("connect");
    let took = time_to_close(&mut silent, within);
    assert!((ms(1500)..ms(4000)).contains(&took), "silent: {took:?}");

    // One header byte every 300 ms: still the head timeout, counted from the first byte.
    let drip = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        let started = Instant::now();
        for byte in b"GET /popup?phone=0722776772 HTTP/1.1\r\nHost: x\r\nX-Slow: yes".repeat(10) {
            if s.write_all(&[byte]).is_err() {
                return started.elapsed();
            }
            std::thread::sleep(ms(300));
        }
        Duration::MAX
    });

    // Kept alive after an answer: the idle timeout (longer than the head timeout).
    let mut kept = TcpStream::connect(addr).expect("connect");
    kept.write_all(format!("GET {POPUP} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("write");
    let mut answer = vec![0u8; 4096];
    let n = kept.read(&mut answer).expect("answer");
    assert!(String::from_utf8_lossy(&answer[..n]).contains(DANA));
    let took = time_to_close(&mut kept, within);
    assert!((ms(3500)..ms(6000)).contains(&took), "kept alive: {took:?}");

    // A body that never completes, by length and chunked: 408 after the body timeout.
    for head in [
        "POST /popup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"phone\":",
        "POST /popup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"pho\r\n",
    ] {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(head.as_bytes()).expect("write");
        let started = Instant::now();
        s.set_read_timeout(Some(within)).expect("timeout");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("did not arrive within 2 s"), "{text}");
        assert!(started.elapsed() < ms(4000), "{:?}", started.elapsed());
    }

    let dripped = drip.join().expect("drip");
    assert!(dripped < ms(4500), "a slow drip was served for {dripped:?}");
    assert!(popup_answers(addr, Duration::from_secs(2)));
    let log = served.wait_for_log("slow_head=1", Duration::from_secs(12));
    assert!(log.contains("no_request=1"), "{log}");
}

#[test]
fn hyper_level_errors_answer_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = short_timeouts(dir.path());
    let client = Client(served.addr);
    let huge_header = format!(
        "GET {POPUP} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100_000)
    );
    let long_url = format!(
        "GET {POPUP}&pad={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(9_000)
    );
    for (raw, status, message) in [
        (
            huge_header.as_str(),
            431,
            "the request headers are too large",
        ),
        (long_url.as_str(), 414, "the request URL is too long"),
        ("GARBAGE\r\n\r\n", 400, "the request is malformed"),
        (
            "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            400,
            "the request is malformed",
        ),
    ] {
        let (got, body) = client.request(raw);
        assert_eq!(got, status, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
        assert_eq!(json["STATUS"], "ERROR");
        assert_eq!(json["MESSAGE"], message);
    }
}

/// The listener hands hyper's requests to the handler without warp's filters (the contract
/// tests go through them): every part of a request must still be read the same way.
#[test]
fn the_listener_reads_every_part_of_a_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = short_timeouts(dir.path());
    let client = Client(served.addr);
    let post = |content_type: &str, body: &str| {
        format!(
            "POST /popup?ivrid=7 HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let found = [
        client.get(POPUP),
        client.get("http://x/popup?phone=0722776772"),
        client.request(&post(
            "application/x-www-form-urlencoded",
            "phone=0722776772",
        )),
        client.request(&post("application/json", r#"{"phone":"0722776772"}"#)),
    ];
    for (status, body) in found {
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(json["CLIENTNAME"], DANA, "{body}");
    }
    let refused = [
        (client.get("/popup"), 400, "phone"),
        (client.get("/popup?"), 400, "phone"),
        (client.get("/elsewhere?phone=0722776772"), 404, "not found"),
        (
            client.request("DELETE /popup HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            405,
            "GET or POST",
        ),
        (
            client.request(&format!(
                "GET {POPUP} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: é\r\nConnection: close\r\n\r\n"
            )),
            400,
            "could not be read",
        ),
        (
            client.request(&post("text/xml", "<phone/>")),
            400,
            "text/xml",
        ),
    ];
    for ((status, body), expected, needle) in refused {
        assert_eq!(status, expected, "{body}");
        assert!(body.contains(needle), "{body} lacks {needle}");
    }
    assert_eq!(
        client.get("/healthz"),
        (200, r#"{"STATUS":"OK"}"#.to_owned())
    );
    // The peer's address reaches the log line; the POST's query was read with its body.
    let log = served.wait_for_log("ivrid=\"7\"", Duration::from_secs(5));
    assert!(log.contains("client=127.0.0.1 ivrid=\"7\""), "{log}");
}

/// The popup line has a writer of its own, but the log filter still decides.
#[test]
fn popup_lines_follow_the_log_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let quiet = "[log]\nlevel = \"info,popup_ldap::http::handlers=warn\"";
    let served = Served::start(dir.path(), &config(dir.path(), port, "", quiet), port, None);
    let (status, body) = Client(served.addr).get(POPUP);
    assert_eq!((status, body.contains(DANA)), (200, true), "{body}");
    // A bad request's line is a WARN from the same target: it shows, after the popup's
    // would have (one writer, in order).
    let (status, _) = Client(served.addr).get("/popup?phone=*");
    assert_eq!(status, 400);
    let log = served.wait_for_log("outcome=bad_request", Duration::from_secs(5));
    assert!(
        log.contains("WARN popup_ldap::http::handlers: popup client=127.0.0.1"),
        "{log}"
    );
    assert!(!log.contains("outcome=match"), "{log}");
}

/// HTTP/2 frames by hand (plaintext, prior knowledge), to open streams the way an attacker
/// would, without a client library's manners.
mod h2 {
    use super::*;

    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const SETTINGS: u8 = 0x4;
    pub const RST_STREAM: u8 = 0x3;
    pub const REFUSED_STREAM: [u8; 4] = [0, 0, 0, 0x7];
    pub const HEADERS: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }

    /// `POST /popup` with its body still to come (the stream stays open).
    pub fn open_stream(stream: u32) -> Vec<u8> {
        // HPACK: :method POST (static 3), :scheme http (6), :path (4) "/popup",
        // :authority (1) "x", all without indexing.
        let mut block = vec![0x83, 0x86, 0x04, 6];
        block.extend(b"/popup");
        block.extend([0x01, 1, b'x']);
        frame(HEADERS, END_HEADERS, stream, &block)
    }

    /// Reads frames until `until` says stop or the connection ends; returns them as
    /// (type, flags, stream, payload).
    pub fn read_frames(
        s: &mut TcpStream,
        mut until: impl FnMut(&[(u8, u8, u32, Vec<u8>)]) -> bool,
    ) -> Vec<(u8, u8, u32, Vec<u8>)> {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut frames = Vec::new();
        let mut head = [0u8; 9];
        while !until(&frames) && s.read_exact(&mut head).is_ok() {
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            if s.read_exact(&mut payload).is_err() {
                break;
            }
            frames.push((head[3], head[4], stream, payload));
        }
        frames
    }

    /// SETTINGS_MAX_CONCURRENT_STREAMS in a SETTINGS frame's payload.
    pub fn max_streams(payload: &[u8]) -> Option<u32> {
        payload.chunks_exact(6).find_map(|s| {
            (u16::from_be_bytes([s[0], s[1]]) == 0x3)
                .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
        })
    }
}

#[test]
fn http2_clients_get_a_stream_limit_and_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = short_timeouts(dir.path());
    let mut s = TcpStream::connect(served.addr).expect("connect");
    s.write_all(h2::PREFACE).expect("preface");
    s.write_all(&h2::frame(h2::SETTINGS, 0, 0, &[]))
        .expect("settings");
    let opened: Vec<u8> = (0..150u32)
        .flat_map(|i| h2::open_stream(2 * i + 1))
        .collect();
    s.write_all(&opened).expect("streams");
    let refused = |frames: &[(u8, u8, u32, Vec<u8>)]| {
        frames
            .iter()
            .filter(|(kind, _, _, payload)| {
                *kind == h2::RST_STREAM && payload[..] == h2::REFUSED_STREAM
            })
            .count()
    };
    let frames = h2::read_frames(&mut s, |f| refused(f) >= 50);
    let advertised = frames
        .iter()
        .find(|(kind, flags, ..)| *kind == h2::SETTINGS && flags & 1 == 0)
        .and_then(|(_, _, _, payload)| h2::max_streams(payload));
    assert_eq!(advertised, Some(100));
    assert_eq!(refused(&frames), 50, "streams past the 100th are refused");
    assert!(
        frames
            .iter()
            .filter(|(kind, _, _, payload)| {
                *kind == h2::RST_STREAM && payload[..] == h2::REFUSED_STREAM
            })
            .all(|(_, _, stream, _)| *stream > 200),
        "only streams past the limit are refused"
    );

    // 100,000 streams on one connection: all but 100 refused as they come, none kept.
    let rss_before = served.rss_kib();
    let mut flood = TcpStream::connect(served.addr).expect("connect");
    flood.write_all(h2::PREFACE).expect("preface");
    let _ = flood.write_all(&h2::frame(h2::SETTINGS, 0, 0, &[]));
    let reader = {
        let mut r = flood.try_clone().expect("clone");
        std::thread::spawn(move || h2::read_frames(&mut r, |_| false))
    };
    for batch in 0..100u32 {
        let frames: Vec<u8> = (0..1000u32)
            .flat_map(|i| h2::open_stream(2 * (batch * 1000 + i) + 1))
            .collect();
        if flood.write_all(&frames).is_err() {
            break;
        }
    }
    let frames = reader.join().expect("reader");
    assert_eq!(
        refused(&frames),
        99_900,
        "every stream past the 100th is refused, without being kept"
    );
    let grown = served.rss_kib().saturating_sub(rss_before);
    assert!(grown < 40 * 1024, "RSS grew by {grown} KiB");
    assert!(popup_answers(served.addr, Duration::from_secs(2)));
}

#[test]
fn ipv6_clients_are_rate_limited_by_their_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = config(
        dir.path(),
        port,
        "",
        "per_ip_per_second = 1\nper_ip_burst = 5\nglobal_per_second = 1000\n\
         global_burst = 1000\n[access]\ntrusted_proxies = [\"127.0.0.1\"]",
    )
    .to_path_buf();
    let text = std::fs::read_to_string(&config)
        .expect("read")
        .replace("enabled = false\n", "");
    std::fs::write(&config, text).expect("write");
    let served = Served::start(dir.path(), &config, port, None);
    let client = Client(served.addr);
    let from = |ip: &str| {
        client.request(&format!(
            "GET {POPUP} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {ip}\r\nConnection: close\r\n\r\n"
        ))
    };
    let statuses: Vec<u16> = (1..=10)
        .map(|n| from(&format!("2001:db8:0:7:{n:x}:{n:x}:{n:x}:{n:x}")).0)
        .collect();
    assert_eq!(statuses[..5], [200; 5]);
    assert_eq!(
        statuses[5..],
        [429; 5],
        "addresses of one /64 share a limit"
    );
    assert_eq!(from("2001:db8:0:8::1").0, 200, "the next /64 has its own");
    let log = served.wait_for_log("more requests refused from", Duration::from_secs(12));
    assert_eq!(log.matches("rate limited").count(), 1, "{log}");
    assert!(
        log.contains(
            "4 more requests refused from 2001:db8:0:7::/64 in the last 10 s (rate_limited=4)"
        ),
        "{log}"
    );
}
