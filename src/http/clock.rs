//! One client connection's clock: which phase it is in (waiting for its first request,
//! reading a request head, answering, idle between requests) and when that phase must end.
//!
//! hyper 0.14 has a header-read timeout, but it starts whenever hyper waits for a head, so it
//! would also cut kept-alive connections at the head timeout, and it has nothing for HTTP/2 or
//! for the first request after a TLS handshake. The clock is driven from outside hyper instead:
//! reads from the socket (see [`super::wire`]) start the head phase, requests start and end the
//! answering phase, and [`Clock::expiry`] resolves when the current phase has run out.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Notify;

use crate::config::ConnectionTimeouts;

/// Why a connection's time ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No complete request within the head timeout after connecting (or the TLS handshake).
    FirstRequest,
    /// A request head started but did not complete within the head timeout (slow drip).
    Head,
    /// Kept alive with no request for the idle timeout.
    Idle,
}

/// A connection's phases, in atomics: read by the connection's own task, written by its
/// socket reads and its requests.
#[derive(Debug)]
pub struct Clock {
    started: Instant,
    /// Requests being answered.
    active: AtomicU32,
    /// Requests answered.
    served: AtomicU64,
    /// Milliseconds after `started` when the last request was answered.
    idle_since: AtomicU64,
    /// Milliseconds after `started` (plus one) when the next head's first byte arrived; 0: none.
    head_since: AtomicU64,
    /// HTTP/1: bytes between requests start a head. (HTTP/2 sends pings and window updates
    /// between requests, so there only the idle and first-request limits apply.)
    http1: AtomicBool,
    /// Set once the budget has chosen this connection to close.
    evicted: AtomicBool,
    wake: Notify,
    evict: Notify,
}

impl Clock {
    /// A clock for a connection that starts now.
    pub fn new(http1: bool) -> Self {
        Clock {
            started: Instant::now(),
            active: AtomicU32::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            http1: AtomicBool::new(http1),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
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
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since.store(self.now_ms() + 1, Ordering::Relaxed);
            self.wake.notify_one();
        }
    }

    /// A request is being answered until the returned guard is dropped.
    pub fn request(self: &Arc<Self>) -> Answering {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
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
        let since = Duration::from_millis(self.idle_since.load(Ordering::Relaxed));
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

    /// Resolves when the budget asks this connection to close.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Resolves when the connection has been in its current phase for longer than allowed.
    pub async fn expiry(&self, limits: &ConnectionTimeouts) -> Expiry {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.deadline(limits) {
                None => woken.await,
                Some((at, why)) => {
                    if at <= Instant::now() {
                        return why;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = woken => {}
                    }
                }
            }
        }
    }

    /// When the current phase ends, and what it is; `None` while a request is answered.
    fn deadline(&self, limits: &ConnectionTimeouts) -> Option<(Instant, Expiry)> {
        if !self.is_idle() {
            return None;
        }
        let at = |ms: u64, limit: Duration| self.started + Duration::from_millis(ms) + limit;
        let head = self.head_since.load(Ordering::Relaxed);
        if head > 0 {
            return Some((at(head - 1, limits.header), Expiry::Head));
        }
        if self.served.load(Ordering::Relaxed) == 0 {
            return Some((at(0, limits.header), Expiry::FirstRequest));
        }
        Some((
            at(self.idle_since.load(Ordering::Relaxed), limits.idle),
            Expiry::Idle,
        ))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }
}

/// A request in progress; dropping it makes the connection idle again (when it was the last).
pub struct Answering(Arc<Clock>);

impl Drop for Answering {
    fn drop(&mut self) {
        let clock = &self.0;
        clock.served.fetch_add(1, Ordering::Relaxed);
        clock.idle_since.store(clock.now_ms(), Ordering::Relaxed);
        clock.active.fetch_sub(1, Ordering::Relaxed);
        clock.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionTimeouts = ConnectionTimeouts {
        header: Duration::from_secs(10),
        body: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    async fn expires(clock: &Clock) -> (Expiry, Duration) {
        let started = tokio::time::Instant::now();
        let why = clock.expiry(&LIMITS).await;
        (why, started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_gets_the_head_timeout() {
        let clock = Clock::new(true);
        let (why, took) = expires(&clock).await;
        assert_eq!(why, Expiry::FirstRequest);
        assert_eq!(took.as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_head_after_a_request_is_cut_at_the_head_timeout() {
        let clock = Arc::new(Clock::new(true));
        drop(clock.request());
        tokio::time::sleep(Duration::from_secs(30)).await;
        clock.bytes_in();
        clock.bytes_in();
        let (why, took) = expires(&clock).await;
        assert_eq!(why, Expiry::Head);
        assert_eq!(took.as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn kept_alive_connections_get_the_idle_timeout_and_requests_stop_the_clock() {
        let clock = Arc::new(Clock::new(false));
        let answering = clock.request();
        clock.bytes_in();
        let waiting = tokio::time::timeout(Duration::from_secs(3600), clock.expiry(&LIMITS));
        assert!(
            waiting.await.is_err(),
            "no deadline while a request is answered"
        );
        drop(answering);
        let (why, took) = expires(&clock).await;
        assert_eq!(why, Expiry::Idle);
        assert_eq!(took.as_secs(), 60);
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
