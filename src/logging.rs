//! Logging through `tracing`: plain lines suited to journald, and numbers masked by default.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Digits of a phone number left visible when masking.
const VISIBLE_DIGITS: usize = 3;
/// Log lines wait at most this long before they are written.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A buffer this full is written at once.
const FLUSH_AT: usize = 64 * 1024;
/// A buffer this full makes loggers wait for the writer (the log is never dropped).
const BLOCK_AT: usize = 8 * 1024 * 1024;

/// Starts logging to stderr at `level`, unless `RUST_LOG` says otherwise. Returns the guard
/// that writes out what is left when dropped: keep it until exit.
pub fn init(level: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = BatchedStderr::start();
    // Under systemd the journal adds its own timestamps.
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .with_ansi(false);
    let result = if under_systemd {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
    // A second initialisation (tests) keeps the first subscriber.
    drop(result);
    LogGuard(writer)
}

/// Writes the remaining log lines when dropped.
pub struct LogGuard(BatchedStderr);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.0.flush_now();
    }
}

/// Log lines collected in memory and written to stderr in batches by a background thread:
/// a request handler copies its line and moves on, and the kernel sees one write per batch
/// instead of one per request.
#[derive(Clone)]
struct BatchedStderr(Arc<Shared>);

struct Shared {
    buffer: Mutex<Vec<u8>>,
    wake: Condvar,
}

impl BatchedStderr {
    fn start() -> Self {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(FLUSH_AT)),
            wake: Condvar::new(),
        });
        let writer = BatchedStderr(shared);
        let background = writer.clone();
        let spawned = std::thread::Builder::new()
            .name("popup-ldap-log".into())
            .spawn(move || loop {
                let pending = {
                    let buffer = background.lock();
                    let (mut buffer, _) = background
                        .0
                        .wake
                        .wait_timeout_while(buffer, FLUSH_EVERY, |b| b.len() < FLUSH_AT)
                        .unwrap_or_else(|e| e.into_inner());
                    std::mem::take(&mut *buffer)
                };
                write_out(&pending);
            });
        if spawned.is_err() {
            eprintln!("popup-ldap: no log thread; log lines are written as they come");
        }
        writer
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        crate::locks::lock(&self.0.buffer)
    }

    fn flush_now(&self) {
        let pending = std::mem::take(&mut *self.lock());
        write_out(&pending);
    }
}

fn write_out(bytes: &[u8]) {
    if !bytes.is_empty() {
        let mut stderr = std::io::stderr().lock();
        // Nowhere to report a failing stderr.
        let _ = stderr.write_all(bytes).and_then(|()| stderr.flush());
    }
}

impl Write for BatchedStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.lock();
        if buffer.len() >= BLOCK_AT {
            // The writer is behind (stderr blocked): write synchronously rather than drop.
            let pending = std::mem::take(&mut *buffer);
            drop(buffer);
            write_out(&pending);
            buffer = self.lock();
        }
        buffer.extend_from_slice(line);
        if buffer.len() >= FLUSH_AT {
            self.0.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = BatchedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A phone value for logs: all but the last digits replaced by `*` when `mask` is set.
pub fn phone_for_log(value: &str, mask: bool) -> String {
    if !mask {
        return value.to_owned();
    }
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + VISIBLE_DIGITS > digits {
                    return c;
                }
                return '*';
            }
            if c.is_alphanumeric() {
                '*'
            } else {
                c
            }
        })
        .collect()
}

/// `[log]`
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `level`: a tracing filter such as `info` or `popup_ldap=debug`; `RUST_LOG` wins.
    pub level: String,
    /// `mask_numbers`: show only the last 3 digits of phone numbers in logs.
    pub mask_numbers: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_all_but_the_last_three_digits() {
        assert_eq!(phone_for_log("0722776772", true), "*******772");
        assert_eq!(phone_for_log("+972-72-277-6772", true), "+***-**-***-*772");
        assert_eq!(phone_for_log("12", true), "12");
        assert_eq!(phone_for_log("Anonymous", true), "*********");
        assert_eq!(phone_for_log("0722776772", false), "0722776772");
    }
}
