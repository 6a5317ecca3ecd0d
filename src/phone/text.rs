//! Stored values as people type them: several numbers in one value, words and extensions
//! around the digits.

/// Splits a stored value that may hold several numbers (`09-7654321 / 09-7654322`).
pub(super) fn split_numbers(value: &str) -> Vec<String> {
    // `(0)` is a national trunk prefix written after a country code: `+972 (0)3 ...`.
    let mut text = value.replace("(0)", " ");
    if text.chars().any(char::is_alphabetic) {
        text = text
            .to_lowercase()
            .replace(" or ", "/")
            .replace(" או ", "/");
    }
    text.split(['/', ',', ';', '|', '\n', '\r', '\\'])
        .map(str::to_owned)
        .collect()
}

/// The number in one piece of a stored value: whether it starts with `+`, and its digits.
/// Leading words (`Mobile:`, `tel:`) are skipped; the number ends at the first letter or `#`,
/// which is where an extension (`ext 12`, `x12`, `#12`) or a remark starts.
pub(super) fn number_digits(piece: &str) -> Option<(bool, String)> {
    let start = piece.find(|c: char| c.is_ascii_digit() || c == '+')?;
    let rest = &piece[start..];
    let end = rest
        .find(|c: char| c.is_alphabetic() || c == '#')
        .unwrap_or(rest.len());
    let number = &rest[..end];
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    Some((number.starts_with('+'), digits))
}
