//! The connection budget: at most `server.max_connections` client connections are open. At
//! the limit a new connection makes room by closing idle ones (those that never completed a
//! request first, then the longest idle), so that an idle flood cannot lock real popups out;
//! when every connection is busy answering, the new one is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::clock::Clock;
use super::metrics::{Closed, ConnectionStats};

/// Descriptors kept free for everything but client connections: the directory, the state
/// file, the log, the metrics listener.
pub const RESERVED_DESCRIPTORS: u64 = 256;
/// The default budget when the descriptor limit allows more.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// One eviction closes this share of the budget (at least one), so that a flood does not
/// pay for a scan on every connection.
const EVICT_SHARE: usize = 32;
/// Out of descriptors, this share of the budget is closed at once.
const SHED_SHARE: usize = 4;

/// The default `server.max_connections` for a process allowed `descriptors` open files:
/// half of what is left after [`RESERVED_DESCRIPTORS`], at most [`DEFAULT_MAX_CONNECTIONS`].
pub fn default_max_connections(descriptors: u64) -> usize {
    let usable = descriptors.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    usize::try_from(usable)
        .unwrap_or(usize::MAX)
        .clamp(16, DEFAULT_MAX_CONNECTIONS)
}

/// The open connections.
#[derive(Debug)]
pub struct Budget {
    max: usize,
    open: Mutex<Open>,
    next_id: AtomicU64,
    stats: Arc<ConnectionStats>,
}

#[derive(Debug, Default)]
struct Open {
    clocks: HashMap<u64, Arc<Clock>>,
    /// Connections asked to close that have not gone yet.
    leaving: usize,
}

/// A connection's place in the budget, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    budget: Arc<Budget>,
    id: u64,
}

impl Budget {
    /// A budget of `max` connections, counted in `stats`.
    pub fn new(max: usize, stats: Arc<ConnectionStats>) -> Arc<Self> {
        Arc::new(Budget {
            max,
            open: Mutex::new(Open::default()),
            next_id: AtomicU64::new(0),
            stats,
        })
    }

    /// The configured maximum.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().clocks.len()
    }

    /// Takes a slot for a connection with `clock`, closing idle connections if the budget is
    /// spent; `None` when every connection is busy.
    pub fn admit(self: &Arc<Self>, clock: &Arc<Clock>) -> Option<Slot> {
        let mut open = self.lock();
        if open.clocks.len() - open.leaving >= self.max
            && self.evict_idle(&mut open, EVICT_SHARE) == 0
        {
            self.stats.closed(Closed::Refused, 1);
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        open.clocks.insert(id, clock.clone());
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            budget: self.clone(),
            id,
        })
    }

    /// Closes a quarter of the budget's worth of idle connections to free descriptors (the
    /// process ran out of them: worse than a spent budget).
    pub fn shed(&self) -> usize {
        self.evict_idle(&mut self.lock(), SHED_SHARE)
    }

    fn evict_idle(&self, open: &mut Open, share: usize) -> usize {
        let mut idle: Vec<&Arc<Clock>> = open
            .clocks
            .values()
            .filter(|c| c.is_idle() && !c.is_evicted())
            .collect();
        let batch = (self.max / share).max(1).min(idle.len());
        if batch == 0 {
            return 0;
        }
        if batch < idle.len() {
            idle.select_nth_unstable_by_key(batch - 1, |c| c.eviction_rank());
        }
        let closed = idle[..batch].iter().filter(|c| c.evict()).count();
        open.leaving += closed;
        self.stats.closed(Closed::Evicted, closed as u64);
        closed
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        crate::locks::lock(&self.open)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.budget.lock();
        if let Some(clock) = open.clocks.remove(&self.id) {
            self.budget.stats.open.fetch_sub(1, Ordering::Relaxed);
            if clock.is_evicted() {
                open.leaving = open.leaving.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_room_under_the_descriptor_limit() {
        assert_eq!(default_max_connections(1024), 384);
        assert_eq!(default_max_connections(20_000), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(default_max_connections(100), 16);
    }

    #[test]
    fn a_full_budget_closes_idle_connections_that_never_answered_first() {
        let stats = Arc::new(ConnectionStats::default());
        let budget = Budget::new(16, stats.clone());
        let kept_alive: Vec<_> = (0..8)
            .map(|_| {
                let clock = Arc::new(Clock::new(true));
                drop(clock.request());
                (budget.admit(&clock).expect("room"), clock)
            })
            .collect();
        let silent: Vec<_> = (0..8)
            .map(|_| {
                let clock = Arc::new(Clock::new(true));
                (budget.admit(&clock).expect("room"), clock)
            })
            .collect();
        let newcomer = Arc::new(Clock::new(true));
        let slot = budget.admit(&newcomer).expect("room made");
        assert_eq!(silent.iter().filter(|(_, c)| c.is_evicted()).count(), 1);
        assert!(kept_alive.iter().all(|(_, c)| !c.is_evicted()));
        assert_eq!(stats.closed_total(Closed::Evicted), 1);
        assert_eq!(stats.open.load(Ordering::Relaxed), 17);
        drop((slot, silent));
        assert_eq!(budget.open(), 8);
        drop(kept_alive);
        assert_eq!(budget.open(), 0);
    }

    #[test]
    fn busy_connections_are_never_closed_for_room() {
        let stats = Arc::new(ConnectionStats::default());
        let budget = Budget::new(16, stats.clone());
        let clocks: Vec<Arc<Clock>> = (0..16).map(|_| Arc::new(Clock::new(true))).collect();
        let answering: Vec<_> = clocks.iter().map(|c| c.request()).collect();
        let slots: Vec<_> = clocks.iter().map(|c| budget.admit(c)).collect();
        assert!(slots.iter().all(Option::is_some));
        assert!(budget.admit(&Arc::new(Clock::new(true))).is_none());
        assert_eq!(stats.closed_total(Closed::Refused), 1);
        drop(answering);
        assert!(budget.admit(&Arc::new(Clock::new(true))).is_some());
    }
}
