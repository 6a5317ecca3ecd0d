//! Reports on stdout for the one-shot commands (`check-config`, `lookup`).

/// Writes to stdout. A closed stdout (`popup-ldap check-config | head -1`) is not an error
/// worth a panic: what follows is simply not shown.
pub fn out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// `println!` through [`out`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::out(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use say;
