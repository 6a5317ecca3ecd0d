//! The log's writer: lines collected in memory and written to stderr in batches.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

use super::line::{level, write_time, Escaped};

/// Log lines wait at most this long before they are written.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A buffer this full is written at once. Under load a batch (the writer woken, the buffers
/// swapped under the loggers' lock, a write) costs far more than its bytes: at 130,000 popups
/// a second (24 MB of lines), batches of 64 KiB (370 a second) cost the server about 0.5 µs
/// of CPU a request more than batches that fill for a whole [`FLUSH_EVERY`]; see
/// benches/RESULTS.md.
const FLUSH_AT: usize = 1024 * 1024;
/// A buffer this full makes loggers wait for the writer (a slow stderr loses nothing; one
/// that refuses lines loses them, counted: see [`BatchedStderr::lines_lost`]).
const BLOCK_AT: usize = 8 * 1024 * 1024;

/// Log lines collected in memory and written to stderr in batches by a background thread:
/// a request handler copies its line and moves on, and the kernel sees one write per batch
/// instead of one per request.
#[derive(Clone)]
pub(super) struct BatchedStderr(Arc<Shared>);

struct Shared {
    buffer: Mutex<Vec<u8>>,
    wake: Condvar,
    out: Mutex<Output>,
    /// Lines a failing stderr refused, since start.
    lost: AtomicU64,
    /// Whether lines start with the time (for the line that reports lost ones).
    time: bool,
}

/// Where the batches go (stderr, but for tests), and the lines it refused since it last
/// took one.
struct Output {
    to: Box<dyn Write + Send>,
    lost: Option<Lost>,
}

/// Lines a failing stderr (a full disk, an I/O error) refused, and the last error.
struct Lost {
    lines: u64,
    why: std::io::Error,
    /// The last write ended within a line (the rest of which is lost).
    torn: bool,
}

impl BatchedStderr {
    /// A writer to stderr, with the time first in its own lines when `time`.
    pub(super) fn start(time: bool) -> Self {
        Self::start_to(Box::new(std::io::stderr()), time)
    }

    /// A writer to `out` with its background thread.
    fn start_to(out: Box<dyn Write + Send>, time: bool) -> Self {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(FLUSH_AT)),
            wake: Condvar::new(),
            out: Mutex::new(Output {
                to: out,
                lost: None,
            }),
            lost: AtomicU64::new(0),
            time,
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

    /// Lines stderr refused since start (they are not written later: a batch that fails
    /// once is dropped, and the loggers go on).
    pub(super) fn lines_lost(&self) -> u64 {
        self.0.lost.load(Ordering::Relaxed)
    }

    /// Writes `bytes`; when stderr refuses them, counts their lines as lost, and the first
    /// batch it takes again is preceded by a line saying how many and why.
    fn write_out(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut out = crate::locks::lock(&self.0.out);
        let Output { to, lost } = &mut *out;
        if let Some(gap) = lost {
            let line = gap.line(self.0.time);
            match write_whole(to.as_mut(), line.as_bytes()) {
                Ok(()) => *lost = None,
                Err((unwritten, _)) => gap.torn |= unwritten.len() < line.len(),
            }
        }
        if let Err((unwritten, why)) = write_whole(to.as_mut(), bytes) {
            let lines = lines_in(unwritten);
            self.0.lost.fetch_add(lines, Ordering::Relaxed);
            let written = &bytes[..bytes.len() - unwritten.len()];
            let gap = match lost {
                Some(gap) => {
                    gap.why = why;
                    gap
                }
                None => lost.insert(Lost {
                    lines: 0,
                    why,
                    torn: false,
                }),
            };
            gap.lines += lines;
            if let Some(last) = written.last() {
                gap.torn = *last != b'\n';
            }
        }
    }
}

/// Writes `bytes` whole, else returns what was not written and why.
fn write_whole<'a>(
    to: &mut dyn Write,
    mut bytes: &'a [u8],
) -> Result<(), (&'a [u8], std::io::Error)> {
    while !bytes.is_empty() {
        match to.write(bytes) {
            Ok(0) => return Err((bytes, std::io::ErrorKind::WriteZero.into())),
            Ok(written) => bytes = &bytes[written..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((bytes, e)),
        }
    }
    // Stderr is not buffered: its flush does nothing that could fail.
    let _ = to.flush();
    Ok(())
}

/// The lines `bytes` holds or begins (a batch ends with a whole line).
fn lines_in(bytes: &[u8]) -> u64 {
    let ends = bytes.iter().filter(|b| **b == b'\n').count();
    u64::try_from(ends).unwrap_or(u64::MAX).max(1)
}

impl Lost {
    /// The log line that reports the loss, laid out as every other line.
    fn line(&self, time: bool) -> String {
        let mut line = String::with_capacity(160);
        if self.torn {
            line.push('\n');
        }
        if time {
            write_time(&mut line, SystemTime::now());
        }
        line.push_str(level(&Level::WARN));
        line.push_str("popup_ldap::logging: log lines lost, stderr refused them lines=");
        line.push_str(itoa::Buffer::new().format(self.lines));
        line.push_str(" why=");
        Escaped(&mut line).string(&self.why.to_string(), true);
        line.push('\n');
        line
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
        let writer = BatchedStderr::start_to(Box::new(sink.clone()), false);
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
        let writer = BatchedStderr::start_to(Box::new(sink.clone()), false);
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

    /// A stderr on a disk that takes `room` more bytes, then refuses the rest (ENOSPC).
    #[derive(Clone, Default)]
    struct Disk {
        bytes: Arc<Mutex<Vec<u8>>>,
        room: Arc<Mutex<usize>>,
    }

    impl Write for Disk {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut room = lock(&self.room);
            if *room == 0 {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            let taken = bytes.len().min(*room);
            *room -= taken;
            lock(&self.bytes).extend_from_slice(&bytes[..taken]);
            Ok(taken)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_a_full_disk_refuses_are_counted_and_reported_once_it_takes_lines_again() {
        let disk = Disk::default();
        let writer = BatchedStderr::start_to(Box::new(disk.clone()), false);
        // Batches written straight (the background thread has nothing to write). Room for
        // one line and the first bytes of the next: four lines lost, one of them torn.
        *lock(&disk.room) = 12;
        writer.write_out(b"line 1\nline 2\nline 3\nline 4\nline 5\n");
        assert_eq!(writer.lines_lost(), 4);
        writer.write_out(b"line 6\n");
        assert_eq!(
            writer.lines_lost(),
            5,
            "a disk still full loses the next lines too"
        );
        // Room again: the next batch follows a line on the loss.
        *lock(&disk.room) = usize::MAX;
        writer.write_out(b"line 7\n");
        let written = String::from_utf8(lock(&disk.bytes).clone()).expect("utf-8");
        assert_eq!(
            written,
            "line 1\nline \n WARN popup_ldap::logging: log lines lost, stderr refused them \
             lines=5 why=\"No space left on device (os error 28)\"\nline 7\n"
        );
        writer.write_out(b"line 8\n");
        assert!(
            lock(&disk.bytes).ends_with(b"line 7\nline 8\n"),
            "reported once"
        );
        assert_eq!(writer.lines_lost(), 5);
    }
}
