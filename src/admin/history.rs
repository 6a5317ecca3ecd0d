//! The last hour of requests and lookup latency, one sample a minute, taken from the same
//! counters `/metrics` shows. In memory only.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::App;
use crate::locks::lock;

/// Samples kept: an hour of minutes.
const KEPT: usize = 60;
/// How often a sample is taken.
const EVERY: Duration = Duration::from_secs(60);

/// The counters' totals at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    requests: u64,
    lookups: u64,
    micros: u64,
}

/// One minute: requests answered, lookups made and their mean latency.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Minute {
    /// Requests of every outcome.
    pub requests: u64,
    /// Lookups made.
    pub lookups: u64,
    /// Their mean latency in microseconds (0 without lookups).
    pub mean_us: u64,
}

/// The samples: the counters' totals at each minute's end, oldest first.
#[derive(Default)]
pub struct History(Mutex<VecDeque<Totals>>);

impl History {
    /// Samples `app`'s counters now and every minute, for as long as the runtime runs.
    pub fn follow(self: &Arc<Self>, app: Arc<App>) {
        let history = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            loop {
                tick.tick().await;
                let now = totals(&app);
                let mut samples = lock(&history.0);
                if samples.len() > KEPT {
                    samples.pop_front();
                }
                samples.push_back(now);
            }
        });
    }

    /// The minutes of the last hour, oldest first, and the one going on now (so far).
    pub fn minutes(&self, app: &App) -> Vec<Minute> {
        let mut points: Vec<Totals> = lock(&self.0).iter().copied().collect();
        points.push(totals(app));
        points
            .windows(2)
            .map(|w| {
                let lookups = w[1].lookups.saturating_sub(w[0].lookups);
                Minute {
                    requests: w[1].requests.saturating_sub(w[0].requests),
                    lookups,
                    mean_us: w[1]
                        .micros
                        .saturating_sub(w[0].micros)
                        .checked_div(lookups)
                        .unwrap_or(0),
                }
            })
            .collect()
    }
}

fn totals(app: &App) -> Totals {
    let (lookups, micros) = app.metrics.lookup_totals();
    Totals {
        requests: app.metrics.outcomes().iter().map(|(_, n)| n).sum(),
        lookups,
        micros,
    }
}
