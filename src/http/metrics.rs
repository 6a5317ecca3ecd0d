//! Prometheus metrics: counters and a latency histogram kept in atomics, written in the text
//! exposition format on their own listener (`[metrics] listen`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thread_local::ThreadLocal;

use crate::directory::{Directory, IndexFigures, ServerStats};
use crate::lookup;

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Entries matched.
    Match,
    /// Nobody matched, or the number was withheld.
    Unknown,
    /// A call state that is not looked up.
    Skipped,
    /// A request that could not be read (400, 413).
    BadRequest,
    /// The directory failed or was too slow (503).
    DirectoryError,
    /// Over a rate limit (429).
    RateLimited,
    /// An address not allowed (403).
    Forbidden,
    /// A missing or wrong token (401).
    Unauthorized,
}

const OUTCOMES: [(Outcome, &str); 8] = [
    (Outcome::Match, "match"),
    (Outcome::Unknown, "unknown"),
    (Outcome::Skipped, "skipped"),
    (Outcome::BadRequest, "bad_request"),
    (Outcome::DirectoryError, "directory_error"),
    (Outcome::RateLimited, "rate_limited"),
    (Outcome::Forbidden, "forbidden"),
    (Outcome::Unauthorized, "unauthorized"),
];

impl Outcome {
    /// The outcome's name in metrics and logs.
    pub fn label(self) -> &'static str {
        OUTCOMES
            .iter()
            .find(|(o, _)| *o == self)
            .map_or("unknown", |(_, label)| label)
    }
}

impl From<lookup::Outcome> for Outcome {
    fn from(found: lookup::Outcome) -> Self {
        match found {
            lookup::Outcome::Match => Outcome::Match,
            lookup::Outcome::Unknown => Outcome::Unknown,
            lookup::Outcome::Skipped => Outcome::Skipped,
        }
    }
}

/// Directory error kinds counted (see `DirectoryError::kind`, plus `deadline`).
const ERROR_KINDS: [&str; 7] = [
    "connect",
    "unavailable",
    "search",
    "tls",
    "ldif",
    "startup",
    "deadline",
];

/// Upper bounds of the lookup latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Why the server closed a client connection (see [`ConnectionStats::closed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// No complete first request within `server.header_timeout_s`.
    FirstRequest = 0,
    /// A request head that took longer than `server.header_timeout_s` (slow drip).
    Head = 1,
    /// Kept alive with no request for `server.idle_timeout_s`.
    Idle = 2,
    /// Idle, and closed to make room for a new connection (budget spent, or no descriptors).
    Evicted = 3,
    /// Refused on arrival: the budget was spent and every connection busy.
    Refused = 4,
}

const CLOSED: [&str; 5] = [
    "first_request_timeout",
    "head_timeout",
    "idle_timeout",
    "evicted",
    "refused",
];

/// Client connection counters, shared by the accept loop, the budget and the log summary.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: AtomicU64,
    closed: [AtomicU64; CLOSED.len()],
    /// Failed `accept` calls (out of descriptors, mostly).
    pub accept_errors: AtomicU64,
}

impl ConnectionStats {
    /// Counts `n` connections closed for `why`.
    pub fn closed(&self, why: Closed, n: u64) {
        self.closed[why as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Connections closed for `why` so far.
    pub fn closed_total(&self, why: Closed) -> u64 {
        self.closed[why as usize].load(Ordering::Relaxed)
    }

    fn write(&self, out: &mut String) -> std::fmt::Result {
        gauge(
            out,
            "popup_connections_open",
            "Client connections open.",
            self.open.load(Ordering::Relaxed) as f64,
        )?;
        family(
            out,
            (
                "popup_connections_closed_total",
                "counter",
                "Client connections the server closed or refused, by reason.",
            ),
            "reason",
            CLOSED
                .iter()
                .copied()
                .zip(self.closed.iter().map(|n| n.load(Ordering::Relaxed))),
        )?;
        counter(
            out,
            "popup_accept_errors_total",
            "Failed accepts (such as out of descriptors).",
            self.accept_errors.load(Ordering::Relaxed),
        )
    }
}

/// The counters of one running service.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Client connections.
    pub connections: std::sync::Arc<ConnectionStats>,
    /// Each thread's own counts, summed when read: two cores adding to one counter pass its
    /// cache line back and forth on every request.
    counts: ThreadLocal<Counts>,
}

/// One thread's counts. Only its thread adds to them (a load and a store, no locked
/// instruction); aligned so that two threads' counts never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counts {
    requests: [AtomicU64; OUTCOMES.len()],
    directory_errors: [AtomicU64; ERROR_KINDS.len()],
    /// Lookups by the first bucket they fit in, the last past every bound: one addition a
    /// lookup (the exposition's buckets are their running sums).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    lookup_micros: AtomicU64,
}

/// Adds `n` to a counter only this thread adds to.
fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl Metrics {
    fn own(&self) -> &Counts {
        self.counts.get_or_default()
    }

    /// The sum over every thread of the counter `which` picks.
    fn total(&self, which: impl Fn(&Counts) -> &AtomicU64) -> u64 {
        self.counts
            .iter()
            .map(|c| which(c).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// Counts a request's outcome.
    pub fn request(&self, outcome: Outcome) {
        if let Some(i) = OUTCOMES.iter().position(|(o, _)| *o == outcome) {
            add(&self.own().requests[i], 1);
        }
    }

    /// Counts a directory error by kind.
    pub fn directory_error(&self, kind: &str) {
        if let Some(i) = ERROR_KINDS.iter().position(|k| *k == kind) {
            add(&self.own().directory_errors[i], 1);
        }
    }

    /// Records how long a lookup took.
    pub fn lookup(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        let own = self.own();
        add(&own.buckets[bucket], 1);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        add(&own.lookup_micros, micros);
    }

    /// Requests by outcome label, in the order `/metrics` lists them.
    pub fn outcomes(&self) -> Vec<(&'static str, u64)> {
        OUTCOMES
            .iter()
            .enumerate()
            .map(|(i, (_, label))| (*label, self.total(|c| &c.requests[i])))
            .collect()
    }

    /// Lookups done and the microseconds they took, in total.
    pub fn lookup_totals(&self) -> (u64, u64) {
        let lookups = (0..=BUCKETS.len())
            .map(|b| self.total(|c| &c.buckets[b]))
            .fold(0, u64::wrapping_add);
        (lookups, self.total(|c| &c.lookup_micros))
    }

    /// Lookups that took at most each bound, in the order of [`BUCKETS`].
    fn cumulative_buckets(&self) -> impl Iterator<Item = u64> + '_ {
        (0..BUCKETS.len()).scan(0u64, |running, b| {
            *running = running.wrapping_add(self.total(|c| &c.buckets[b]));
            Some(*running)
        })
    }

    /// The text exposition, with the directory's own figures.
    pub fn render(&self, directory: &Directory) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = self.write(&mut out, directory);
        out
    }

    fn write(&self, out: &mut String, directory: &Directory) -> std::fmt::Result {
        family(
            out,
            (
                "popup_requests_total",
                "counter",
                "Popup requests by outcome.",
            ),
            "outcome",
            self.outcomes().into_iter(),
        )?;
        family(
            out,
            (
                "popup_directory_errors_total",
                "counter",
                "Directory failures by kind.",
            ),
            "kind",
            ERROR_KINDS
                .iter()
                .enumerate()
                .map(|(i, kind)| (*kind, self.total(|c| &c.directory_errors[i]))),
        )?;
        let bounds: Vec<String> = BUCKETS.iter().map(f64::to_string).collect();
        family(
            out,
            (
                "popup_lookup_seconds",
                "histogram",
                "Time to answer a lookup.",
            ),
            "le",
            bounds
                .iter()
                .map(String::as_str)
                .zip(self.cumulative_buckets()),
        )?;
        let (count, micros) = self.lookup_totals();
        writeln!(out, "popup_lookup_seconds_bucket{{le=\"+Inf\"}} {count}")?;
        writeln!(out, "popup_lookup_seconds_sum {}", micros as f64 / 1e6)?;
        writeln!(out, "popup_lookup_seconds_count {count}")?;
        self.connections.write(out)?;
        counter(
            out,
            "popup_log_lines_lost_total",
            "Log lines stderr refused (a full disk); the first line it takes again says how many.",
            crate::logging::lines_lost(),
        )?;
        if let Some(index) = directory.index_figures() {
            write_index(out, &index)?;
        }
        write_servers(out, &directory.servers())?;
        Ok(())
    }
}

/// Index mode: what the index holds and how its syncs went.
fn write_index(out: &mut String, index: &IndexFigures) -> std::fmt::Result {
    let (entries, numbers, status) = (index.entries, index.numbers, &index.status);
    let age = status.age().map_or(f64::NAN, |d| d.as_secs_f64());
    gauge(
        out,
        "popup_index_entries",
        "Entries in the index.",
        entries as f64,
    )?;
    gauge(
        out,
        "popup_index_numbers",
        "Distinct numbers in the index.",
        numbers as f64,
    )?;
    gauge(
        out,
        "popup_index_age_seconds",
        "Time since the index last matched the directory.",
        age,
    )?;
    gauge(
        out,
        "popup_sync_duration_seconds",
        "Duration of the last successful sync.",
        status.last_duration.map_or(f64::NAN, |d| d.as_secs_f64()),
    )?;
    family(
        out,
        ("popup_syncs_total", "counter", "Syncs by result."),
        "result",
        [("ok", status.succeeded), ("failed", status.failed)].into_iter(),
    )?;
    let source = index.source.as_str();
    family(
        out,
        (
            "popup_index_source",
            "gauge",
            "The directory server the index was last synced from (value 1).",
        ),
        "server",
        std::iter::once((source, 1)),
    )
}

/// Per directory server: connections made, attempts failed, and which one is in use.
fn write_servers(out: &mut String, servers: &[ServerStats]) -> std::fmt::Result {
    let each =
        |value: fn(&ServerStats) -> u64| servers.iter().map(move |s| (s.url.as_str(), value(s)));
    family(
        out,
        (
            "popup_directory_connects_total",
            "counter",
            "Connections made (connect, TLS, bind) per directory server.",
        ),
        "server",
        each(|s| s.connects),
    )?;
    family(
        out,
        (
            "popup_directory_connect_failures_total",
            "counter",
            "Connection attempts that failed or went unanswered, and connections that broke, per directory server.",
        ),
        "server",
        each(|s| s.failures),
    )?;
    family(
        out,
        (
            "popup_directory_server_active",
            "gauge",
            "1 for the directory server the shared connection goes to.",
        ),
        "server",
        each(|s| u64::from(s.active)),
    )
}

/// A metric family with one label: its HELP and TYPE lines, then one line per label value
/// (histogram buckets are named `<name>_bucket`).
fn family<'a>(
    out: &mut String,
    (name, kind, help): (&str, &str, &str),
    label: &str,
    series: impl Iterator<Item = (&'a str, u64)>,
) -> std::fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")?;
    let suffix = if kind == "histogram" { "_bucket" } else { "" };
    for (value, n) in series {
        let value = value.replace('\\', "\\\\").replace('"', "\\\"");
        writeln!(out, "{name}{suffix}{{{label}=\"{value}\"}} {n}")?;
    }
    Ok(())
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) -> std::fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} counter")?;
    writeln!(out, "{name} {value}")
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) -> std::fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} gauge")?;
    writeln!(out, "{name} {value}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{PhoneIndex, Source};

    #[test]
    fn counts_and_buckets() {
        let m = Metrics::default();
        m.request(Outcome::Match);
        m.request(Outcome::Match);
        m.request(Outcome::Unauthorized);
        m.directory_error("connect");
        m.lookup(Duration::from_micros(300));
        m.lookup(Duration::from_millis(30));
        m.lookup(Duration::from_secs(3));
        let text = m.render(&Directory::from(Source::File(Box::new(PhoneIndex::build(
            Vec::new(),
            &[],
            &crate::phone::PhoneNormalizer::new("IL", 6).unwrap(),
        )))));
        for line in [
            "popup_requests_total{outcome=\"match\"} 2",
            "popup_requests_total{outcome=\"unauthorized\"} 1",
            "popup_directory_errors_total{kind=\"connect\"} 1",
            "popup_lookup_seconds_bucket{le=\"0.0005\"} 1",
            "popup_lookup_seconds_bucket{le=\"0.05\"} 2",
            "popup_lookup_seconds_bucket{le=\"2.5\"} 2",
            "popup_lookup_seconds_bucket{le=\"+Inf\"} 3",
            "popup_lookup_seconds_sum 3.0303",
            "popup_lookup_seconds_count 3",
            "popup_connections_open 0",
            "popup_connections_closed_total{reason=\"head_timeout\"} 0",
            "popup_accept_errors_total 0",
            "popup_log_lines_lost_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn every_threads_counts_are_summed_also_after_it_ended() {
        let m = Metrics::default();
        std::thread::scope(|threads| {
            for _ in 0..4 {
                threads.spawn(|| {
                    for _ in 0..1000 {
                        m.request(Outcome::Match);
                        m.lookup(Duration::from_micros(2));
                    }
                });
            }
        });
        m.request(Outcome::Unknown);
        let outcomes = m.outcomes();
        assert!(outcomes.contains(&("match", 4000)), "{outcomes:?}");
        assert!(outcomes.contains(&("unknown", 1)), "{outcomes:?}");
        assert_eq!(m.lookup_totals(), (4000, 8000));
    }
}
