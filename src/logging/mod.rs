//! Logging through `tracing`: plain lines suited to journald, and numbers masked by default.

mod address;
mod batch;
mod line;
mod popup;

use tracing_subscriber::EnvFilter;

use batch::BatchedStderr;
use line::Line;

use address::Address;
pub use popup::PopupLine;

/// Digits of a phone number left visible when masking.
const VISIBLE_DIGITS: usize = 3;

/// Starts logging to stderr at `level`, unless `RUST_LOG` says otherwise. Returns the guard
/// that writes out what is left when dropped: keep it until exit.
pub fn init(level: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Under systemd the journal adds its own timestamps.
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let writer = BatchedStderr::start(!under_systemd);
    let result = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .with_ansi(false)
        .event_format(Line {
            time: !under_systemd,
        })
        .try_init();
    // A second initialisation (tests) keeps the first subscriber, and its popup lines.
    if result.is_ok() {
        popup::install(writer.clone(), !under_systemd);
    }
    LogGuard(writer)
}

/// Log lines stderr refused since start (a full disk): they are dropped, not kept for
/// later, and counted here.
pub fn lines_lost() -> u64 {
    popup::lines_lost()
}

/// Writes the remaining log lines when dropped.
pub struct LogGuard(BatchedStderr);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.0.flush_now();
    }
}

/// A phone value for logs: all but the last digits replaced by `*` when `mask` is set.
pub fn phone_for_log(value: &str, mask: bool) -> String {
    if !mask {
        return value.to_owned();
    }
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    let mut seen = 0;
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        out.push(if c.is_ascii_digit() {
            seen += 1;
            if seen + VISIBLE_DIGITS > digits {
                c
            } else {
                '*'
            }
        } else if c.is_alphanumeric() {
            '*'
        } else {
            c
        });
    }
    out
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
