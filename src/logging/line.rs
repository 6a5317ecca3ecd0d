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
        let meta = event.metadata();
        if self.time {
            write_time(&mut writer, SystemTime::now())?;
        }
        writer.write_str(level(meta.level()))?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        writer.write_char('{')?;
                        writer.write_str(fields)?;
                        writer.write_char('}')?;
                    }
                }
                writer.write_char(':')?;
            }
            writer.write_char(' ')?;
        }
        writer.write_str(meta.target())?;
        writer.write_char(':')?;
        let mut fields = Fields {
            out: Escaped(&mut writer),
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The level as the default layout shows it: right-aligned in five columns, then a space.
fn level(level: &Level) -> &'static str {
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
fn write_time(out: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
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
        out.write_str(&cached.1)
    })?;
    let mut micros = [b'0'; 6];
    let mut n = since.subsec_micros();
    for digit in micros.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // Six ASCII digits.
    out.write_str(std::str::from_utf8(&micros).unwrap_or("000000"))?;
    out.write_str("Z ")
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
struct Fields<'w, 'a> {
    out: Escaped<'w, 'a>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// ` name=`, or ` ` before the message.
    fn name(&mut self, field: &Field) -> fmt::Result {
        self.out.0.write_char(' ')?;
        match field.name() {
            "message" => Ok(()),
            name => {
                self.out
                    .0
                    .write_str(name.strip_prefix("r#").unwrap_or(name))?;
                self.out.0.write_char('=')
            }
        }
    }

    fn record(&mut self, field: &Field, value: impl FnOnce(&mut Escaped) -> fmt::Result) {
        // `log` crate records carry their metadata as fields; the layout shows it already.
        if self.result.is_ok() && !field.name().starts_with("log.") {
            self.result = self.name(field).and_then(|()| value(&mut self.out));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let quoted = field.name() != "message";
        self.record(field, |out| out.string(value, quoted));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(field, |out| {
            out.0.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(field, |out| {
            out.0.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, |out| {
            out.0.write_str(if value { "true" } else { "false" })
        });
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
struct Escaped<'w, 'a>(&'w mut Writer<'a>);

impl Escaped<'_, '_> {
    /// A string as `{:?}` shows it when `quoted`, else as it is (escaped either way); plain
    /// ASCII without `core::fmt`.
    fn string(&mut self, value: &str, quoted: bool) -> fmt::Result {
        let plain = value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
        match (quoted, plain) {
            (false, _) => self.write_str(value),
            (true, true) => {
                self.0.write_char('"')?;
                self.0.write_str(value)?;
                self.0.write_char('"')
            }
            (true, false) => write!(self, "{value:?}"),
        }
    }
}

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| c.is_control()) {
            self.0.write_str(&rest[..at])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                other => write!(self.0, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        let mut writer = Writer::new(&mut out);
        Escaped(&mut writer).write_str(text).unwrap();
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
            let mut writer = Writer::new(&mut out);
            Escaped(&mut writer).string(value, true).unwrap();
            assert_eq!(out, format!("{value:?}"));
        }
    }

    #[test]
    fn time_is_rfc3339_with_microseconds() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_796_000_987_000_042);
        let mut out = String::new();
        write_time(&mut out, at).unwrap();
        assert_eq!(out, "2026-11-30T01:09:47.000042Z ");
        let mut again = String::new();
        write_time(&mut again, at + std::time::Duration::from_millis(5)).unwrap();
        assert_eq!(again, "2026-11-30T01:09:47.005042Z ");
    }
}
