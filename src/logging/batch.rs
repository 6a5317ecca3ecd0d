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
    /// Where the batches go: stderr, but for tests.
    out: Mutex<Box<dyn Write + Send>>,
}

impl BatchedStderr {
    pub(super) fn start() -> Self {
        Self::start_to(Box::new(std::io::stderr()))
    }

    /// A writer to `out` with its background thread.
    fn start_to(out: Box<dyn Write + Send>) -> Self {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(FLUSH_AT)),
            wake: Condvar::new(),
            out: Mutex::new(out),
        });
        let writer = BatchedStderr(shared);
        let background = writer.clone();
        let spawned = std::thread::Builder::new()
            .name("popup-ldap-log".into())
            .spawn(move || {
                crate::priority::lower("log");
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
                    background.write_out(&spare);
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
            self.write_out(&pending);
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
        self.write_out(&pending);
    }

    fn write_out(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            let mut out = crate::locks::lock(&self.0.out);
            // Nowhere to report a failing stderr.
            let _ = out.write_all(bytes).and_then(|()| out.flush());
        }
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;
    use std::time::Instant;

    use super::*;
    use crate::locks::lock;

    /// A stderr that keeps what it is sent, and blocks while closed.
    #[derive(Clone)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        open: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Sink {
        fn new(open: bool) -> Self {
            Sink {
                bytes: Arc::default(),
                open: Arc::new((Mutex::new(open), Condvar::new())),
            }
        }

        fn open(&self) {
            *lock(&self.open.0) = true;
            self.open.1.notify_all();
        }

        fn len(&self) -> usize {
            lock(&self.bytes).len()
        }
    }

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (open, opened) = &*self.open;
            drop(opened.wait_while(lock(open), |open| !*open));
            lock(&self.bytes).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_far_short_of_a_batch_is_written_after_flush_every() {
        let sink = Sink::new(true);
        let writer = BatchedStderr::start_to(Box::new(sink.clone()));
        let logged = Instant::now();
        writer.append(b"one line\n");
        while sink.len() == 0 {
            assert!(
                logged.elapsed() < FLUSH_EVERY * 40,
                "a lone line still waits for a batch to fill"
            );
            thread::sleep(FLUSH_EVERY / 10);
        }
        assert_eq!(*lock(&sink.bytes), b"one line\n");
    }

    #[test]
    fn a_blocked_stderr_holds_loggers_back_and_loses_nothing() {
        let sink = Sink::new(false);
        let writer = BatchedStderr::start_to(Box::new(sink.clone()));
        let (done, finished) = mpsc::channel();
        let lines = 2 * BLOCK_AT / 1024;
        let logger = {
            let writer = writer.clone();
            thread::spawn(move || {
                let line = [[b'x'; 1023].as_slice(), b"\n"].concat();
                for _ in 0..lines {
                    writer.append(&line);
                }
                done.send(()).expect("test waiting");
            })
        };
        assert!(
            finished.recv_timeout(Duration::from_millis(500)).is_err(),
            "a logger went on past BLOCK_AT with stderr blocked"
        );
        sink.open();
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("the logger goes on once stderr takes lines again");
        logger.join().expect("logger");
        writer.flush_now();
        // The writer thread may still be writing its last batch.
        let started = Instant::now();
        while sink.len() < lines * 1024 && started.elapsed() < Duration::from_secs(10) {
            thread::sleep(FLUSH_EVERY);
        }
        let bytes = lock(&sink.bytes).clone();
        assert_eq!(bytes.len(), lines * 1024);
        assert!(bytes
            .split(|b| *b == b'\n')
            .all(|l| l.is_empty() || l.len() == 1023));
    }
}
