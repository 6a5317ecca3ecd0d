//! One client connection's clock: which phase it is in (waiting for its first request,
//! reading a request head, answering, idle between requests) and when that phase must end.
//!
//! hyper 0.14 has a header-read timeout, but it starts whenever hyper waits for a head, so it
//! would also cut kept-alive connections at the head timeout, and it has nothing for HTTP/2 or
//! for the first request after a TLS handshake. The clock is driven from outside hyper instead:
//! reads from the socket (see [`super::wire`]) mark a head as started, requests start and end
//! the answering phase, and [`Clock::watch`] resolves when the current phase has run out.
//!
//! The request path only touches counters and flags: no clock reads, no wake-ups. The watcher
//! looks at them every [`TICK_SHARE`]th of the head timeout and keeps the times itself, so a
//! phase is timed from the first look that saw it: deadlines are met within one tick late.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::settings::ConnectionTimeouts;

/// The watcher looks every `header_timeout / TICK_SHARE`.
const TICK_SHARE: u32 = 4;

/// Why a connection must close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No complete request within the head timeout after connecting (or the TLS handshake).
    FirstRequest,
    /// A request head started but did not complete within the head timeout (slow drip).
    Head,
    /// Kept alive with no request for the idle timeout.
    Idle,
    /// Closed by the connection budget to make room.
    Evicted,
}

/// A connection's phases, shared by its socket, its requests, its watcher and the budget.
#[derive(Debug)]
pub struct Clock {
    started: Instant,
    /// Requests being answered.
    active: AtomicU32,
    /// Requests answered.
    served: AtomicU64,
    /// Bytes arrived while no request was answered: a head has started.
    head_started: AtomicBool,
    /// Milliseconds after `started` since when the connection has been idle, as last seen
    /// by the watcher (for the budget's choice of whom to close).
    idle_since_ms: AtomicU64,
    /// HTTP/1: bytes between requests start a head. (HTTP/2 sends pings and window updates
    /// between requests, so there only the idle and first-request limits apply.)
    http1: AtomicBool,
    /// Set once the budget has chosen this connection to close.
    evicted: AtomicBool,
    evict: Notify,
}

impl Clock {
    /// A clock for a connection that starts now.
    pub fn new(http1: bool) -> Self {
        Clock {
            started: Instant::now(),
            active: AtomicU32::new(0),
            served: AtomicU64::new(0),
            head_started: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            http1: AtomicBool::new(http1),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    /// Says which protocol the connection speaks, once it is known.
    pub fn set_http1(&self, http1: bool) {
        self.http1.store(http1, Ordering::Relaxed);
    }

    /// Bytes arrived from the client.
    pub fn bytes_in(&self) {
        if self.http1.load(Ordering::Relaxed)
            && self.active.load(Ordering::Relaxed) == 0
            && !self.head_started.load(Ordering::Relaxed)
        {
            self.head_started.store(true, Ordering::Relaxed);
        }
    }

    /// A request is being answered until the returned guard is dropped.
    pub fn request(self: &Arc<Self>) -> Answering {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(false, Ordering::Relaxed);
        Answering(self.clone())
    }

    /// Whether no request is being answered.
    pub fn is_idle(&self) -> bool {
        self.active.load(Ordering::Relaxed) == 0
    }

    /// How the budget ranks idle connections for closing, first closed first: connections
    /// that never completed a request (idle floods, slow drips) before kept-alive clients,
    /// then the longest idle.
    pub fn eviction_rank(&self) -> (bool, Instant) {
        let served = self.served.load(Ordering::Relaxed) > 0;
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        (served, self.started + since)
    }

    /// Asks the connection to close; false if it had been asked already.
    pub fn evict(&self) -> bool {
        let first = !self.evicted.swap(true, Ordering::Relaxed);
        if first {
            self.evict.notify_one();
        }
        first
    }

    /// Whether [`Clock::evict`] was called.
    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Resolves when the connection must close: its current phase ran out (at most one tick
    /// late), or the budget evicted it.
    pub async fn watch(&self, limits: &ConnectionTimeouts) -> Expiry {
        tokio::select! {
            why = self.expiry(limits) => why,
            () = self.evict.notified() => Expiry::Evicted,
        }
    }

    async fn expiry(&self, limits: &ConnectionTimeouts) -> Expiry {
        let tick = limits.header / TICK_SHARE;
        let mut phase = Phase {
            served: 0,
            idle_since: self.started,
            head_since: None,
        };
        loop {
            let now = Instant::now();
            let next = match self.deadline(&mut phase, now, limits) {
                Some((at, why)) if at <= now => return why,
                Some((at, _)) => at.min(now + tick),
                None => now + tick,
            };
            tokio::time::sleep_until(next).await;
        }
    }

    /// When the current phase ends, and what it is; `None` while a request is answered.
    /// Updates what the watcher has seen.
    fn deadline(
        &self,
        seen: &mut Phase,
        now: Instant,
        limits: &ConnectionTimeouts,
    ) -> Option<(Instant, Expiry)> {
        let served = self.served.load(Ordering::Relaxed);
        if served != seen.served {
            // Requests were answered since the last look: idle from now.
            seen.served = served;
            seen.idle_since = now;
            seen.head_since = None;
            let ms = now.saturating_duration_since(self.started).as_millis();
            self.idle_since_ms
                .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        if !self.is_idle() {
            seen.head_since = None;
            return None;
        }
        if self.head_started.load(Ordering::Relaxed) {
            let since = *seen.head_since.get_or_insert(now);
            return Some((since + limits.header, Expiry::Head));
        }
        seen.head_since = None;
        if served == 0 {
            return Some((self.started + limits.header, Expiry::FirstRequest));
        }
        Some((seen.idle_since + limits.idle, Expiry::Idle))
    }
}

/// What the watcher has seen of a connection.
struct Phase {
    served: u64,
    idle_since: Instant,
    head_since: Option<Instant>,
}

/// A request in progress; dropping it makes the connection idle again (when it was the last).
pub struct Answering(Arc<Clock>);

impl Drop for Answering {
    fn drop(&mut self) {
        let clock = &self.0;
        clock.served.fetch_add(1, Ordering::Relaxed);
        clock.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, scaled down: tokio's paused clock (its `test-util` feature) would be built
    // into the binary `cargo bench` measures too (cargo unifies a dev-dependency's features),
    // with a lock on every clock read. Idle is ten heads, so that a late timer on a loaded
    // test machine cannot make one phase's deadline pass for another's.
    const LIMITS: ConnectionTimeouts = ConnectionTimeouts {
        header: Duration::from_millis(200),
        body: Duration::from_millis(200),
        idle: Duration::from_millis(2000),
    };

    /// How late a timer may fire on a loaded test machine, beyond the watcher's one tick.
    const LATE: Duration = Duration::from_millis(1000);
    /// How much later than the test a spawned watcher may start timing (a preempted thread).
    const EARLY: Duration = Duration::from_millis(50);

    async fn expires(clock: &Clock) -> (Expiry, Duration) {
        let started = Instant::now();
        let why = clock.watch(&LIMITS).await;
        (why, started.elapsed())
    }

    /// Within [`EARLY`] before `at` milliseconds and one tick and [`LATE`] after.
    fn about(took: Duration, at: u64) -> bool {
        let at = Duration::from_millis(at);
        (at - EARLY..=at + LIMITS.header / TICK_SHARE + LATE).contains(&took)
    }

    #[tokio::test]
    async fn a_silent_connection_gets_the_head_timeout() {
        let clock = Clock::new(true);
        let (why, took) = expires(&clock).await;
        assert_eq!(why, Expiry::FirstRequest);
        assert!(about(took, 200), "{took:?}");
    }

    #[tokio::test]
    async fn a_slow_head_after_a_request_is_cut_at_the_head_timeout() {
        let clock = Arc::new(Clock::new(true));
        let watching = {
            let clock = clock.clone();
            tokio::spawn(async move { expires(&clock).await })
        };
        drop(clock.request());
        tokio::time::sleep(Duration::from_millis(600)).await;
        clock.bytes_in();
        clock.bytes_in();
        let (why, took) = watching.await.expect("watcher");
        assert_eq!(why, Expiry::Head);
        assert!(about(took, 800), "{took:?}");
    }

    #[tokio::test]
    async fn kept_alive_connections_get_the_idle_timeout_and_requests_stop_the_clock() {
        let clock = Arc::new(Clock::new(false));
        let answering = clock.request();
        clock.bytes_in();
        let waiting = tokio::time::timeout(LIMITS.idle + LIMITS.header, clock.watch(&LIMITS));
        assert!(
            waiting.await.is_err(),
            "no deadline while a request is answered"
        );
        drop(answering);
        let (why, took) = expires(&clock).await;
        assert_eq!(why, Expiry::Idle);
        assert!(about(took, 2000), "{took:?}");
    }

    #[tokio::test]
    async fn eviction_ends_the_watch_at_once() {
        let clock = Arc::new(Clock::new(true));
        let watching = {
            let clock = clock.clone();
            tokio::spawn(async move { expires(&clock).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(clock.evict());
        let (why, took) = watching.await.expect("watcher");
        assert_eq!(why, Expiry::Evicted);
        let at = Duration::from_millis(100);
        assert!((at - EARLY..=at + LATE).contains(&took), "{took:?}");
    }

    #[test]
    fn connections_that_never_answered_are_evicted_first() {
        let fresh = Clock::new(true);
        let kept_alive = Arc::new(Clock::new(true));
        drop(kept_alive.request());
        assert!(fresh.eviction_rank() < kept_alive.eviction_rank());
        assert!(fresh.evict() && !fresh.evict() && fresh.is_evicted());
    }
}
