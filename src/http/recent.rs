//! The last calls answered, in memory only, for the admin console.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::locks::lock;

/// Calls kept.
pub const KEPT: usize = 200;

/// One call as the console lists it.
#[derive(Clone, Debug)]
pub struct RecentCall {
    /// When it was answered.
    pub at: SystemTime,
    /// The caller's number as the log shows it (masked unless `log.mask_numbers = false`).
    pub shown: String,
    /// The number as sent, kept only when numbers are not masked.
    pub phone: Option<String>,
    /// The outcome's label.
    pub outcome: &'static str,
    /// TOTAL.
    pub total: usize,
    /// How long the lookup took, in microseconds.
    pub micros: u64,
}

/// The last [`KEPT`] calls, newest last.
#[derive(Debug, Default)]
pub struct RecentCalls(Mutex<VecDeque<RecentCall>>);

impl RecentCalls {
    /// Keeps `call`, dropping the oldest past [`KEPT`].
    pub fn push(&self, call: RecentCall) {
        let mut calls = lock(&self.0);
        if calls.len() == KEPT {
            calls.pop_front();
        }
        calls.push_back(call);
    }

    /// The calls kept, newest first.
    pub fn newest_first(&self) -> Vec<RecentCall> {
        lock(&self.0).iter().rev().cloned().collect()
    }
}
