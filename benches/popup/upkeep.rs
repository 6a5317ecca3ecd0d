//! What index mode costs between calls: idle polls (CPU and bytes written), a restart from
//! the state file while the directory is unreachable, and memory at its peak.

use std::time::Duration;

/// CPU time (all threads) and bytes written by a process so far.
#[derive(Clone, Copy)]
pub struct Usage {
    cpu_ns: u64,
    written: u64,
}

impl Usage {
    /// From `/proc`: user and system time of every thread, living or ended, in the kernel's
    /// 10 ms ticks (`USER_HZ` is 100 on Linux), and `wchar`.
    pub fn of(pid: u32) -> Usage {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces): state is the 3rd field,
        // utime and stime the 14th and 15th.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<u64> = after
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
        Usage {
            cpu_ns: ticks * 10_000_000,
            written: proc_field(pid, "io", "wchar:").unwrap_or(0.0) as u64,
        }
    }

    /// CPU milliseconds and bytes written per `polls` since `before`.
    pub fn per(&self, before: &Usage, polls: f64) -> (f64, f64) {
        (
            (self.cpu_ns.saturating_sub(before.cpu_ns)) as f64 / 1e6 / polls,
            (self.written.saturating_sub(before.written)) as f64 / polls,
        )
    }
}

/// What idle polls cost a server that polls every second, measured over `window`.
pub fn idle_polls(pid: u32, window: Duration) -> (f64, f64) {
    let before = Usage::of(pid);
    std::thread::sleep(window);
    Usage::of(pid).per(&before, window.as_secs_f64())
}

/// Waits (at most `limit`) until `pid` used under 50 ms of CPU in a second: slapd goes on
/// with live mode's abandoned full scans after the clients are gone, and the next runs must
/// not share the cores with them.
pub fn wait_idle(pid: u32, limit: Duration) {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        let before = Usage::of(pid);
        std::thread::sleep(Duration::from_secs(1));
        if Usage::of(pid).per(&before, 1.0).0 < 50.0 {
            return;
        }
    }
    eprintln!("slapd still busy after {limit:?}");
}

fn proc_field(pid: u32, file: &str, name: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident memory now, MiB.
pub fn rss_mib(pid: u32) -> f64 {
    proc_field(pid, "status", "VmRSS:").map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Peak resident memory, MiB.
pub fn hwm_mib(pid: u32) -> f64 {
    proc_field(pid, "status", "VmHWM:").map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Moves every thread of `pid` into Linux's idle scheduling class (`idle`) or back to the
/// ordinary one: a process that only runs when nothing else wants a core, as if it had a host
/// of its own. Threads started later inherit their creator's class.
pub fn idle_class(pid: u32, idle: bool) {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("threads of slapd");
    for task in tasks.flatten() {
        let status = std::process::Command::new("chrt")
            .arg(if idle { "--idle" } else { "--other" })
            .args(["-p", "0"])
            .arg(task.file_name())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("chrt (util-linux)");
        assert!(status.success(), "chrt failed on slapd's thread");
    }
}

/// The `us=` of the popup lines a server logged between byte offsets `from` and `to` of its
/// log: p99 and max, in milliseconds (NaN when there are none).
pub fn handling_ms(log: &std::path::Path, from: u64, to: u64) -> (f64, f64) {
    let text = std::fs::read(log).unwrap_or_default();
    let part = text
        .get(usize::try_from(from).unwrap_or(0)..usize::try_from(to).unwrap_or(0))
        .unwrap_or_default();
    let mut micros: Vec<u64> = String::from_utf8_lossy(part)
        .lines()
        .filter(|l| l.contains("handlers: popup "))
        .filter_map(|l| {
            l.rsplit_once(" us=")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    micros.sort_unstable();
    let at = |p: f64| {
        let i = ((micros.len().max(1) - 1) as f64 * p).round() as usize;
        micros.get(i).map_or(f64::NAN, |&us| us as f64 / 1000.0)
    };
    (at(0.99), at(1.0))
}
