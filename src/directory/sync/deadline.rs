//! The limit on a whole sync (`index.sync_timeout_s`), which guards against a directory that
//! answers too slowly, not against a paced read's own pauses: a resync made while calls are
//! answered pauses after each page as long as the page took, so it may take twice its
//! unpaced time, and it should not fail where the same read at full speed would not.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::directory::ldap::Pauses;

/// Runs `read` until it ends, or `None` once it has run `limit` besides its `pauses`.
pub(super) async fn within<T>(
    limit: Duration,
    pauses: &Pauses,
    read: impl Future<Output = T>,
) -> Option<T> {
    let started = Instant::now();
    let mut read = std::pin::pin!(read);
    loop {
        // A pause is counted as it starts, so a deadline that passes during one is moved.
        let deadline = started + limit + pauses.total();
        match tokio::time::timeout_at(deadline, read.as_mut()).await {
            Ok(done) => return Some(done),
            Err(_) if started + limit + pauses.total() <= Instant::now() => return None,
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that works `work` (sleeping), pauses `pause` as a paced read does, then works
    /// `work` again.
    async fn read(pauses: &Pauses, work: Duration, pause: Duration) -> &'static str {
        tokio::time::sleep(work).await;
        pauses.add(pause);
        tokio::time::sleep(pause).await;
        tokio::time::sleep(work).await;
        "done"
    }

    const MS: Duration = Duration::from_millis(1);

    // The durations leave hundreds of milliseconds for late timers on a loaded machine.

    #[tokio::test]
    async fn a_reads_pauses_do_not_count_against_the_limit() {
        let pauses = Pauses::default();
        // 400 ms of work and 1.5 s of pause within a limit of 1 s.
        let done = within(1000 * MS, &pauses, read(&pauses, 200 * MS, 1500 * MS)).await;
        assert_eq!(done, Some("done"));
    }

    #[tokio::test]
    async fn a_read_working_longer_than_the_limit_is_given_up_at_the_limit_plus_its_pauses() {
        let pauses = Pauses::default();
        let started = Instant::now();
        // 2 s of work and 1 s of pause within a limit of 1.5 s: given up after 2.5 s.
        let done = within(1500 * MS, &pauses, read(&pauses, 1000 * MS, 1000 * MS)).await;
        assert_eq!(done, None);
        let took = started.elapsed();
        assert!(
            took >= 2500 * MS,
            "given up after {took:?}, before its limit"
        );
    }

    #[tokio::test]
    async fn without_pauses_the_limit_is_the_limit() {
        let pauses = Pauses::default();
        let started = Instant::now();
        let done = within(200 * MS, &pauses, read(&pauses, 300 * MS, Duration::ZERO)).await;
        assert_eq!(done, None);
        assert!(started.elapsed() >= 200 * MS);
    }
}
