//! The log's writer: lines collected in memory and written to stderr in batches.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Log lines wait at most this long before they are written.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A buffer this full is written at once. Under load a batch (the writer woken, the buffers
/// swapped under the loggers' lock, a write) costs far more than its bytes: at 130,000 popups
/// a second (24 MB of lines), batches of 64 KiB (370 a second) cost the server about 0.5 µs
/// of CPU a request more than batches that fill for a whole [`FLUSH_EVERY`]; see
/// benches/RESULTS.md.
const FLUSH_AT: usize = 1024 * 1024;
/// A buffer this full makes loggers wait for the writer (the log is never dropped).
const BLOCK_AT: usize = 8 * 1024 * 1024;

/// Log lines collected in memory and written to stderr in batches by a background thread:
/// a request handler copies its line and moves on, and the kernel sees one write per batch
/// instead of one per request.
#[derive(Clone)]
pub(super) struct BatchedStderr(Arc<Shared>);

struct Shared {
    buffer: Mutex<Vec<u8>>,
    wake: Condvar,
}

impl BatchedStderr {
    pub(super) fn start() -> Self {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(FLUSH_AT)),
            wake: Condvar::new(),
        });
        let writer = BatchedStderr(shared);
        let background = writer.clone();
        let spawned = std::thread::Builder::new()
            .name("popup-ldap-log".into())
            .spawn(move || {
                // Two buffers take turns: loggers fill one while the other is written, and
                // neither is grown again from nothing after each batch.
                let mut spare = Vec::with_capacity(FLUSH_AT);
                loop {
                    {
                        let buffer = background.lock();
                        let (mut buffer, _) = background
                            .0
                            .wake
                            .wait_timeout_while(buffer, FLUSH_EVERY, |b| b.len() < FLUSH_AT)
                            .unwrap_or_else(|e| e.into_inner());
                        std::mem::swap(&mut *buffer, &mut spare);
                    }
                    write_out(&spare);
                    spare.clear();
                    if spare.capacity() > 2 * FLUSH_AT {
                        // After a burst: the memory of a blocked stderr is not kept.
                        spare = Vec::with_capacity(FLUSH_AT);
                    }
                }
            });
        if spawned.is_err() {
            eprintln!("popup-ldap: no log thread; log lines are written as they come");
        }
        writer
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        crate::locks::lock(&self.0.buffer)
    }

    /// Adds `line` to the next batch.
    pub(super) fn append(&self, line: &[u8]) {
        let mut buffer = self.lock();
        if buffer.len() >= BLOCK_AT {
            // The writer is behind (stderr blocked): write synchronously rather than drop.
            let pending = std::mem::take(&mut *buffer);
            drop(buffer);
            write_out(&pending);
            buffer = self.lock();
        }
        let before = buffer.len();
        buffer.extend_from_slice(line);
        // Once, as the buffer fills: a notification is a system call even when nobody waits,
        // and the writer, when it next waits, finds the full buffer without one.
        if before < FLUSH_AT && buffer.len() >= FLUSH_AT {
            self.0.wake.notify_one();
        }
    }

    pub(super) fn flush_now(&self) {
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
        self.append(line);
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
