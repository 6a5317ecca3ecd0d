//! The LDIF file source (RFC 2849 content records): the embedded demo directory, or a file an
//! admin exports for a directory the service cannot reach.

use base64::Engine as _;

use super::{binary_value, Entry, LdifData};

/// An LDIF file that cannot be read or parsed, with the line at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LDIF {origin}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct LdifError {
    /// The file, or `embedded demo`.
    pub origin: String,
    /// The 1-based line, when one is at fault.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Loads the configured LDIF text.
pub fn load(data: &LdifData) -> Result<Vec<Entry>, LdifError> {
    match data {
        LdifData::Embedded(text) => parse(text, "embedded demo"),
        LdifData::File(path) => {
            let origin = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|e| LdifError {
                origin: origin.clone(),
                line: None,
                message: format!("cannot read: {e}"),
            })?;
            let text = String::from_utf8(bytes).map_err(|e| LdifError {
                origin: origin.clone(),
                line: None,
                message: format!("not UTF-8 text ({e}); base64-encode binary values with `::`"),
            })?;
            parse(&text, &origin)
        }
    }
}

/// Parses LDIF content records. Change records, `:<` URL values and entries without a DN are
/// errors; binary values other than `objectGUID` are dropped.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Entry>, LdifError> {
    let fail = |line: usize, message: String| LdifError {
        origin: origin.to_owned(),
        line: Some(line),
        message,
    };
    let lines = unfold(text)
        .map_err(|line| fail(line, "continuation line with nothing to continue".into()))?;
    let mut entries = Vec::new();
    let mut dn: Option<String> = None;
    let mut attrs: Vec<(String, Vec<String>)> = Vec::new();
    let mut first_record = true;
    for (n, line) in lines.iter().chain(std::iter::once(&(0, String::new()))) {
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if let Some(dn) = dn.take() {
                entries.push(Entry::new(&dn, std::mem::take(&mut attrs)));
            }
            continue;
        }
        let (name, value) = attribute_line(line).map_err(|m| fail(*n, m))?;
        let name_lower = name.to_ascii_lowercase();
        if first_record && dn.is_none() && name_lower == "version" {
            first_record = false;
            continue;
        }
        first_record = false;
        match (dn.is_some(), name_lower.as_str()) {
            (false, "dn") => {
                let Value::Text(v) = value else {
                    return Err(fail(*n, "the DN is not UTF-8".into()));
                };
                dn = Some(v);
            }
            (false, _) => return Err(fail(*n, format!("`{name}` before the entry's `dn:` line"))),
            (true, "changetype") => {
                return Err(fail(
                    *n,
                    "change records are not supported; export content records".into(),
                ))
            }
            (true, "dn") => {
                return Err(fail(
                    *n,
                    "second `dn:` without a blank line between entries".into(),
                ))
            }
            (true, _) => {
                // Attribute options (`cn;lang-he`) belong to the attribute itself.
                let base = name.split(';').next().unwrap_or(name);
                let text = match value {
                    Value::Text(v) => Some(v),
                    Value::Binary(b) => binary_value(base, &b),
                };
                if let Some(text) = text {
                    attrs.push((base.to_owned(), vec![text]));
                }
            }
        }
    }
    Ok(entries)
}

/// The logical lines of `text`, continuation lines joined, each with the line number where it
/// started; a continuation with nothing to continue is an error at its line.
fn unfold(text: &str) -> Result<Vec<(usize, String)>, usize> {
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(cont) = raw.strip_prefix(' ') {
            match lines.last_mut() {
                Some((_, last)) if !last.is_empty() => last.push_str(cont),
                _ => return Err(i + 1),
            }
        } else {
            lines.push((i + 1, raw.to_owned()));
        }
    }
    Ok(lines)
}

enum Value {
    Text(String),
    Binary(Vec<u8>),
}

fn attribute_line(line: &str) -> Result<(&str, Value), String> {
    let (name, rest) = line
        .split_once(':')
        .ok_or_else(|| format!("expected `attribute: value`, found {line:?}"))?;
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';' || c == '.');
    if !valid_name {
        return Err(format!("{name:?} is not an attribute name"));
    }
    if let Some(b64) = rest.strip_prefix(':') {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("`{name}::` value is not base64: {e}"))?;
        return Ok((
            name,
            match String::from_utf8(bytes) {
                Ok(s) => Value::Text(s),
                Err(e) => Value::Binary(e.into_bytes()),
            },
        ));
    }
    if rest.starts_with('<') {
        return Err(format!("`{name}:<` URL values are not supported"));
    }
    Ok((name, Value::Text(rest.trim_start_matches(' ').to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Name;

    #[test]
    fn reads_records_folding_base64_and_options() {
        let text = "version: 1\n\
                    # people\n\
                    dn: uid=a,dc=x\n\
                    cn: Avi\n\
                    \x20Cohen\n\
                    cn;lang-he:: 15DXkdeZINeb15TXnw==\n\
                    telephoneNumber: 03-5551234\n\
                    objectGUID:: eFY0EjQSeFaavN7wEjRWeA==\n\
                    jpegPhoto:: /9j/\n\
                    \n\
                    \n\
                    dn:: dWlkPWIsZGM9eA==\n\
                    mobile: 054-1234567\n";
        let entries = parse(text, "t").expect("parses");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].dn(), "uid=a,dc=x");
        assert_eq!(
            entries[0].values("cn").collect::<Vec<_>>(),
            ["AviCohen", "אבי כהן"]
        );
        assert_eq!(
            entries[0].first(Name::of("objectguid").expect("name")),
            Some("12345678-1234-5678-9abc-def012345678")
        );
        assert_eq!(entries[0].values("jpegphoto").count(), 0);
        assert_eq!(entries[1].dn(), "uid=b,dc=x");
        assert_eq!(
            entries[1].first(Name::of("mobile").expect("name")),
            Some("054-1234567")
        );
    }

    #[test]
    fn malformed_files_name_the_line() {
        for (text, line, needle) in [
            ("cn: a\n", 1, "before the entry"),
            ("dn: a\nnot an attribute\n", 2, "expected"),
            ("dn: a\nchangetype: modify\n", 2, "change records"),
            ("dn: a\ncn:: !!!\n", 2, "not base64"),
            ("dn: a\ncn:< file:///etc/passwd\n", 2, "URL values"),
            ("dn: a\ndn: b\n", 2, "second"),
            (" x\n", 1, "continuation"),
            ("dn: a\nc n: x\n", 2, "not an attribute name"),
        ] {
            let e = parse(text, "f.ldif").expect_err(text);
            assert_eq!(e.line, Some(line), "{text}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
            assert!(e.to_string().starts_with("LDIF f.ldif line"), "{e}");
        }
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = load(&LdifData::File("/nonexistent/x.ldif".into())).expect_err("missing");
        assert!(e.to_string().contains("cannot read"), "{e}");
    }
}
