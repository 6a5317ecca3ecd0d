//! The log line: tracing-subscriber's default layout (`time level spans target: message
//! fields`), written without `core::fmt` for strings and numbers, with control characters
//! escaped in every message and value.
//!
//! Why not tracing-subscriber's own formatter: it writes every field through `core::fmt`
//! (about 1,100 instructions a field: 13,000 of the 48,000 a popup request cost, see
//! benches/RESULTS.md), and writes values logged with `%` as they are, so a caller's `ivrid`
//! holding a newline would forge a log line of its own.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter installed by [`super::init`].
pub(super) struct Line {
    /// Whether lines start with the time (not under systemd: the journal adds its own).
    pub(super) time: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Built in a string of its own, then handed over whole: pushing to a `String` is
        // inlined, writing to the `Writer` is a dynamic call per piece.
        let mut line = String::with_capacity(256);
        let meta = event.metadata();
        if self.time {
            write_time(&mut line, SystemTime::now());
        }
        line.push_str(level(meta.level()));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                line.push_str(span.metadata().name());
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        line.push('{');
                        line.push_str(fields);
                        line.push('}');
                    }
                }
                line.push(':');
            }
            line.push(' ');
        }
        line.push_str(meta.target());
        line.push(':');
        let mut fields = Fields {
            out: Escaped(&mut line),
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        line.push('\n');
        writer.write_str(&line)
    }
}

/// The level as the default layout shows it: right-aligned in five columns, then a space.
pub(super) fn level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR ",
        Level::WARN => " WARN ",
        Level::INFO => " INFO ",
        Level::DEBUG => "DEBUG ",
        Level::TRACE => "TRACE ",
    }
}

thread_local! {
    /// The last second written by this thread, and its text up to the decimal point.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `2026-11-29T17:49:47.123456Z ` (RFC 3339 in UTC, microseconds), the date and time
/// formatted once a second per thread.
pub(super) fn write_time(out: &mut String, now: SystemTime) {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != seconds {
            cached.1 = second_text(seconds);
            cached.0 = seconds;
        }
        out.push_str(&cached.1);
    });
    let micros = since.subsec_micros();
    let mut divisor = 100_000;
    while divisor > 0 {
        out.push(char::from(b'0' + (micros / divisor % 10) as u8));
        divisor /= 10;
    }
    out.push_str("Z ");
}

/// `2026-11-29T17:49:47.` for `seconds` since the epoch.
fn second_text(seconds: u64) -> String {
    let at = i64::try_from(seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Writes an event's message and fields as the default layout does (` message name=value`,
/// strings in quotes as `{:?}` shows them), integers and plain strings without `core::fmt`.
struct Fields<'a> {
    out: Escaped<'a>,
    result: fmt::Result,
}

impl Fields<'_> {
    /// ` name=`, or ` ` before the message.
    fn name(&mut self, field: &Field) {
        let out = &mut self.out.0;
        out.push(' ');
        let name = field.name();
        if name != "message" {
            out.push_str(name.strip_prefix("r#").unwrap_or(name));
            out.push('=');
        }
    }

    fn record(&mut self, field: &Field, value: impl FnOnce(&mut Escaped) -> fmt::Result) {
        // `log` crate records carry their metadata as fields; the layout shows it already.
        if self.result.is_ok() && !field.name().starts_with("log.") {
            self.name(field);
            self.result = value(&mut self.out);
        }
    }

    fn plain(&mut self, field: &Field, text: &str) {
        self.record(field, |out| {
            out.0.push_str(text);
            Ok(())
        });
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let quoted = field.name() != "message";
        self.record(field, |out| {
            out.string(value, quoted);
            Ok(())
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.plain(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.plain(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.plain(field, if value { "true" } else { "false" });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record(field, |out| {
            write!(out, "{value}")?;
            let mut source = value.source();
            while let Some(cause) = source {
                write!(out, ": {cause}")?;
                source = cause.source();
            }
            Ok(())
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, |out| write!(out, "{value:?}"));
    }
}

/// The line being written, with C0 and C1 control characters (newlines, terminal escapes)
/// replaced by Rust escapes, so that no value can end a line or colour a terminal.
pub(super) struct Escaped<'a>(pub(super) &'a mut String);

impl Escaped<'_> {
    /// A string as `{:?}` shows it when `quoted`, else as it is (escaped either way); plain
    /// ASCII without `core::fmt`.
    pub(super) fn string(&mut self, value: &str, quoted: bool) {
        let plain = value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
        match (quoted, plain) {
            (false, _) => self.escape(value),
            (true, true) => {
                self.0.push('"');
                self.0.push_str(value);
                self.0.push('"');
            }
            // `str`'s `Debug` escapes every control character itself.
            (true, false) => {
                let _ = write!(self.0, "{value:?}");
            }
        }
    }

    pub(super) fn escape(&mut self, text: &str) {
        let mut rest = text;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| c.is_control()) {
            self.0.push_str(&rest[..at]);
            match c {
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                '\t' => self.0.push_str("\\t"),
                other => {
                    let _ = write!(self.0, "\\u{{{:x}}}", u32::from(other));
                }
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.push_str(rest);
    }
}

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.escape(text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        Escaped(&mut out).escape(text);
        out
    }

    #[test]
    fn control_characters_cannot_end_a_line_or_reach_a_terminal() {
        assert_eq!(escaped("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(escaped("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escaped("\u{9b}31m\u{7f}"), "\\u{9b}31m\\u{7f}");
        assert_eq!(escaped("דנה לוי 0722"), "דנה לוי 0722");
    }

    #[test]
    fn strings_are_quoted_as_debug_shows_them() {
        for value in [
            "Ringing",
            "",
            "say \"hi\"",
            "a\\b",
            "line\nbreak",
            "דנה",
            "\u{1b}",
        ] {
            let mut out = String::new();
            Escaped(&mut out).string(value, true);
            assert_eq!(out, format!("{value:?}"));
        }
    }

    #[test]
    fn time_is_rfc3339_with_microseconds() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_796_000_987_000_042);
        let mut out = String::new();
        write_time(&mut out, at);
        assert_eq!(out, "2026-11-30T01:09:47.000042Z ");
        let mut again = String::new();
        write_time(&mut again, at + std::time::Duration::from_millis(5));
        assert_eq!(again, "2026-11-30T01:09:47.005042Z ");
    }
}
