//! Logging through `tracing`: plain lines suited to journald, and numbers masked by default.

use tracing_subscriber::EnvFilter;

/// Digits of a phone number left visible when masking.
const VISIBLE_DIGITS: usize = 3;

/// Starts logging to stderr at `level`, unless `RUST_LOG` says otherwise.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Under systemd the journal adds its own timestamps.
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let result = if under_systemd {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
    // A second initialisation (tests) keeps the first subscriber.
    drop(result);
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
