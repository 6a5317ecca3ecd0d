//! The issue's own measure of the request path: `wrk -t2 -c32` (Debian's `wrk`) against a
//! server, cycling through the same request targets as the purpose-built generator. wrk
//! drives its 32 connections from two event-loop threads, so it takes less of the two shared
//! cores a request than one blocking thread per connection does, and the servers' own cost
//! weighs more in the ratio.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// wrk's threads and connections, as the issue measured.
const THREADS: &str = "2";
const CONNECTIONS: &str = "32";

/// Writes a wrk script at `path` that sends a GET for each of `targets` in turn (the
/// requests formatted once, when each wrk thread starts); returns `path`.
pub fn script(path: PathBuf, targets: &[String]) -> PathBuf {
    // Request targets are URL text: nothing a Lua string literal would need escaped.
    assert!(targets.iter().all(|t| t
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')));
    let quoted: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let lua = format!(
        "local targets = {{{}}}\n\
         local requests = {{}}\n\
         local i = 0\n\
         function init(args)\n\
         \x20 for k, t in ipairs(targets) do requests[k] = wrk.format(\"GET\", t) end\n\
         \x20 i = math.random(#requests)\n\
         end\n\
         function request()\n\
         \x20 i = i % #requests + 1\n\
         \x20 return requests[i]\n\
         end\n",
        quoted.join(",")
    );
    std::fs::write(&path, lua).expect("write the wrk script");
    path
}

/// `pairs` rounds of the ceiling at `ceiling` then each of `servers`: each server's ratios to
/// the ceiling run just before it, sorted.
pub fn alternating(
    pairs: usize,
    duration: Duration,
    script: &Path,
    ceiling: SocketAddr,
    servers: [SocketAddr; 2],
) -> (Vec<f64>, Vec<f64>) {
    let mut ratios = (Vec::new(), Vec::new());
    for _ in 0..pairs {
        let base = rate(ceiling, script, duration);
        ratios.0.push(rate(servers[0], script, duration) / base);
        ratios.1.push(rate(servers[1], script, duration) / base);
    }
    ratios.0.sort_by(f64::total_cmp);
    ratios.1.sort_by(f64::total_cmp);
    ratios
}

/// Requests a second `wrk` sustained against `addr` for `duration` with `script`, after a
/// one-second warm-up run. Panics when wrk is missing or any answer was not a 200: a rate
/// of errors measures nothing.
pub fn rate(addr: SocketAddr, script: &Path, duration: Duration) -> f64 {
    run(addr, script, Duration::from_secs(1));
    run(addr, script, duration)
}

fn run(addr: SocketAddr, script: &Path, duration: Duration) -> f64 {
    let out = Command::new("wrk")
        .args(["-t", THREADS, "-c", CONNECTIONS])
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("-s")
        .arg(script)
        .arg(format!("http://{addr}/"))
        .output()
        .expect("wrk (apt-get install wrk)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !report.contains("Non-2xx") && !report.contains("Socket errors"),
        "wrk saw errors: {report}"
    );
    report
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in wrk's report: {report}"))
}
