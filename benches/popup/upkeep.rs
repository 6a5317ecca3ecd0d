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
    pub fn of(pid: u32) -> Usage {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.flatten().map(|t| t.path()).collect::<Vec<_>>())
            .unwrap_or_default();
        let cpu_ns = tasks
            .iter()
            .filter_map(|t| std::fs::read_to_string(t.join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Usage {
            cpu_ns,
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
