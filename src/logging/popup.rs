//! The popup's log line, one a request: written straight to the log's writer in the layout of
//! every other line ([`super::line`]), without tracing's event machinery (the dispatch, a
//! visitor call a field and `core::fmt` for the `%` ones cost 3,600 instructions, a sixth of
//! a popup's). The filter still decides: `RUST_LOG` or `log.level` naming [`POPUP_TARGET`].

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::SystemTime;

use tracing::Level;

use super::batch::BatchedStderr;
use super::line::{level, write_time, Escaped};
use super::Address;

/// The popup line's target: the module that logged it through tracing, kept so that filter
/// directives naming it still apply.
const POPUP_TARGET: &str = "popup_ldap::http::handlers";

/// Where popup lines go once [`super::init`] has installed its subscriber.
static WRITER: OnceLock<Writer> = OnceLock::new();

struct Writer {
    out: BatchedStderr,
    time: bool,
}

thread_local! {
    /// The line being written, its allocation kept from one request to the next.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A line's buffer is kept up to this size; the buffer of a longer line (a huge `ivrid`,
/// escaped) is freed once the line is written.
const KEPT_LINE_BYTES: usize = 1024;

/// Sends popup lines to `out`, with the time first when `time`.
pub(super) fn install(out: BatchedStderr, time: bool) {
    // Installed once, with the one subscriber.
    let _ = WRITER.set(Writer { out, time });
}

/// Lines the installed writer's stderr refused (none before [`super::init`]).
pub(super) fn lines_lost() -> u64 {
    WRITER.get().map_or(0, |writer| writer.out.lines_lost())
}

/// A looked-up call's log line.
#[derive(Debug, Clone, Copy)]
pub struct PopupLine<'a> {
    /// The client (behind trusted proxies).
    pub client: IpAddr,
    /// Voicenter's call id.
    pub ivrid: &'a str,
    /// The call's state.
    pub state: &'a str,
    /// The caller's number as logs show it (masked by default).
    pub phone: &'a str,
    /// The outcome's label.
    pub outcome: &'static str,
    /// The entries found.
    pub total: usize,
    /// The directory server that answered, or `-`.
    pub server: &'a str,
    /// Microseconds the lookup took.
    pub us: u64,
}

impl PopupLine<'_> {
    /// Logs the line at INFO if the filter lets it through.
    pub fn log(&self) {
        if !tracing::enabled!(target: POPUP_TARGET, Level::INFO) {
            return;
        }
        match WRITER.get() {
            Some(writer) => self.buffered(writer.time.then(SystemTime::now), |line| {
                writer.out.append(line);
            }),
            // A subscriber other than ours (tests, a second initialisation).
            None => self.through_tracing(),
        }
    }

    /// Writes the line in this thread's buffer and hands it to `emit`.
    fn buffered(&self, now: Option<SystemTime>, emit: impl FnOnce(&[u8])) {
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            self.write(now, &mut line);
            emit(line.as_bytes());
            if line.capacity() > KEPT_LINE_BYTES {
                *line = String::new();
            }
        });
    }

    /// The same line as a tracing event.
    fn through_tracing(&self) {
        tracing::info!(
            target: POPUP_TARGET,
            client = %Address(self.client),
            ivrid = self.ivrid,
            state = self.state,
            phone = self.phone,
            outcome = %self.outcome,
            total = self.total,
            server = %self.server,
            us = self.us,
            "popup"
        );
    }

    /// The line as [`super::line::Line`] writes [`Self::through_tracing`]'s event.
    fn write(&self, now: Option<SystemTime>, out: &mut String) {
        if let Some(now) = now {
            write_time(out, now);
        }
        out.push_str(level(&Level::INFO));
        out.push_str(POPUP_TARGET);
        out.push_str(": popup client=");
        Address(self.client).push_to(out);
        let mut escaped = Escaped(out);
        for (name, value) in [
            (" ivrid=", self.ivrid),
            (" state=", self.state),
            (" phone=", self.phone),
        ] {
            escaped.0.push_str(name);
            escaped.string(value, true);
        }
        escaped.0.push_str(" outcome=");
        escaped.escape(self.outcome);
        escaped.0.push_str(" total=");
        escaped.0.push_str(itoa::Buffer::new().format(self.total));
        escaped.0.push_str(" server=");
        escaped.escape(self.server);
        escaped.0.push_str(" us=");
        escaped.0.push_str(itoa::Buffer::new().format(self.us));
        escaped.0.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// What a subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            crate::locks::lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    use super::*;
    use crate::logging::line::Line;

    /// The line as the tracing subscriber writes it.
    fn through_tracing(line: &PopupLine<'_>) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .event_format(Line { time: false })
            .finish();
        tracing::subscriber::with_default(subscriber, || line.through_tracing());
        let bytes = crate::locks::lock(&captured.0).clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn a_huge_line_is_written_whole_and_its_buffer_not_kept() {
        let ivrid = "\n".repeat(100_000);
        let line = PopupLine {
            client: IpAddr::from([10, 0, 0, 1]),
            ivrid: &ivrid,
            state: "Ringing",
            phone: "*******772",
            outcome: "match",
            total: 1,
            server: "-",
            us: 7,
        };
        let mut written = Vec::new();
        line.buffered(None, |bytes| written.extend_from_slice(bytes));
        let written = String::from_utf8(written).expect("utf-8");
        let expected = format!(
            " INFO popup_ldap::http::handlers: popup client=10.0.0.1 ivrid=\"{}\" \
             state=\"Ringing\" phone=\"*******772\" outcome=match total=1 server=- us=7\n",
            "\\n".repeat(100_000)
        );
        assert!(written == expected, "{}", &written[..120]);
        assert!(LINE.with(|l| l.borrow().capacity()) <= KEPT_LINE_BYTES);
        // A usual line keeps its buffer.
        let usual = PopupLine {
            ivrid: "123",
            ..line
        };
        usual.buffered(None, |_| ());
        assert!(LINE.with(|l| l.borrow().capacity()) > 0);
    }

    #[test]
    fn the_direct_line_is_the_line_tracing_writes() {
        let plain = PopupLine {
            client: IpAddr::from([127, 0, 0, 1]),
            ivrid: "123",
            state: "Ringing",
            phone: "*******772",
            outcome: "match",
            total: 1,
            server: "-",
            us: 42,
        };
        let hostile = PopupLine {
            client: "2001:db8::1".parse().expect("address"),
            ivrid: "a\"b\\c\nINFO forged",
            state: "\u{1b}[31mred",
            phone: "דנה",
            outcome: "no_match",
            total: 0,
            server: "dc1\r\n.example",
            us: u64::MAX,
        };
        for line in [plain, hostile] {
            let mut direct = String::new();
            line.write(None, &mut direct);
            assert_eq!(direct, through_tracing(&line));
            assert_eq!(direct.matches('\n').count(), 1, "{direct}");
        }
    }
}
