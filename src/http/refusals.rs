//! Refused requests (403, 401, 429, 400, 413, 408) in the log without flooding it: a client's
//! first refusal in an interval is logged as it happens, the rest are summarised per client
//! when the interval ends ("N more requests refused from X in the last 10 s"). At most
//! [`MAX_CLIENTS`] clients are named per interval; the others are counted together. Metrics
//! still count every refusal.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::metrics::Outcome;
use crate::cidr::Cidr;

/// How often summaries are written.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Clients named per interval; beyond them a flood of rotating addresses costs one line.
const MAX_CLIENTS: usize = 32;
/// The refusals summarised, in the order their counts are written.
const KINDS: [(Outcome, &str); 4] = [
    (Outcome::Forbidden, "forbidden"),
    (Outcome::Unauthorized, "unauthorized"),
    (Outcome::RateLimited, "rate_limited"),
    (Outcome::BadRequest, "bad_request"),
];

/// Refusals seen in the current interval.
#[derive(Debug, Default)]
pub struct RefusalLog {
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// Refusals after the first, per named client.
    clients: HashMap<Cidr, [u64; KINDS.len()]>,
    /// Refusals from clients beyond the first [`MAX_CLIENTS`].
    others: [u64; KINDS.len()],
    other_clients: u64,
}

impl RefusalLog {
    /// Records a refusal of `client` (an address, or the network it is limited with);
    /// returns true when it should be logged now in full (the
    /// client's first in this interval), false when it is only counted for the summary.
    pub fn first(&self, client: Cidr, outcome: Outcome) -> bool {
        let Some(kind) = KINDS.iter().position(|(o, _)| *o == outcome) else {
            return true;
        };
        let mut window = self.lock();
        let named = window.clients.len();
        match window.clients.get_mut(&client) {
            Some(counts) => {
                counts[kind] += 1;
                false
            }
            None if named < MAX_CLIENTS => {
                window.clients.insert(client, [0; KINDS.len()]);
                true
            }
            None => {
                window.others[kind] += 1;
                window.other_clients += 1;
                false
            }
        }
    }

    /// Ends the interval: the summary lines of what was only counted, then a fresh window.
    pub fn summarise(&self) -> Vec<String> {
        let window = std::mem::take(&mut *self.lock());
        let seconds = INTERVAL.as_secs();
        let mut lines: Vec<String> = window
            .clients
            .iter()
            .filter(|(_, counts)| counts.iter().any(|n| *n > 0))
            .map(|(client, counts)| {
                format!(
                    "{} more requests refused from {client} in the last {seconds} s ({})",
                    counts.iter().sum::<u64>(),
                    breakdown(counts)
                )
            })
            .collect();
        if window.other_clients > 0 {
            lines.push(format!(
                "{} requests refused from clients beyond the first {MAX_CLIENTS} in the last \
                 {seconds} s ({})",
                window.other_clients,
                breakdown(&window.others)
            ));
        }
        lines.sort();
        lines
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        crate::locks::lock(&self.window)
    }
}

fn breakdown(counts: &[u64; KINDS.len()]) -> String {
    let mut out = String::new();
    for ((_, name), n) in KINDS.iter().zip(counts).filter(|(_, n)| **n > 0) {
        let sep = if out.is_empty() { "" } else { " " };
        // Writing into a String cannot fail.
        let _ = write!(out, "{sep}{name}={n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_from_one_client_is_one_line_now_and_one_per_interval() {
        let log = RefusalLog::default();
        let client: Cidr = "203.0.113.7".parse().expect("address");
        assert!(log.first(client, Outcome::RateLimited));
        let logged_now = (0..10_000)
            .filter(|_| log.first(client, Outcome::RateLimited))
            .count();
        assert!(!log.first(client, Outcome::Unauthorized));
        assert_eq!(logged_now, 0);
        assert_eq!(
            log.summarise(),
            [
                "10001 more requests refused from 203.0.113.7 in the last 10 s \
              (unauthorized=1 rate_limited=10000)"
            ]
        );
        assert!(log.summarise().is_empty());
        assert!(
            log.first(client, Outcome::Forbidden),
            "a new interval logs again"
        );
    }

    #[test]
    fn rotating_addresses_are_named_up_to_a_limit_then_counted_together() {
        let log = RefusalLog::default();
        let logged = (0..1000u32)
            .map(|n| Cidr::of((0xcb00_7100 + n).to_be_bytes().into(), 32))
            .filter(|ip| log.first(*ip, Outcome::Forbidden))
            .count();
        assert_eq!(logged, MAX_CLIENTS);
        assert_eq!(
            log.summarise(),
            [
                "968 requests refused from clients beyond the first 32 in the last 10 s \
              (forbidden=968)"
            ]
        );
    }
}
