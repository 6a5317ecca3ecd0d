//! The one brace syntax of templates (`[response]` fields, `directory.match_filter`): text with
//! `{placeholder}`s, `{{` and `}}` for literal braces. What a placeholder may name is up to
//! each template kind.

/// A piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Literal text, escapes resolved.
    Text(String),
    /// What stood between `{` and `}`.
    Placeholder(&'a str),
}

/// Splits `source` into text and placeholders; the error says which brace is unmatched.
pub fn pieces(source: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = source;
    while let Some(at) = rest.find(['{', '}']) {
        text.push_str(&rest[..at]);
        let (brace, after) = (rest.as_bytes()[at], &rest[at + 1..]);
        if after.as_bytes().first() == Some(&brace) {
            text.push(char::from(brace));
            rest = &after[1..];
        } else if brace == b'}' {
            return Err(format!(
                "{source:?} has a `}}` without its `{{` (write `}}}}` for a literal one)"
            ));
        } else {
            let end = after
                .find('}')
                .ok_or_else(|| format!("{source:?} has a `{{` without its `}}`"))?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Placeholder(&after[..end]));
            rest = &after[end + 1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_placeholders_and_escapes() {
        let text = |t: &str| Piece::Text(t.to_owned());
        assert_eq!(
            pieces("a{b}c{{d}}{e|f}").unwrap(),
            [
                text("a"),
                Piece::Placeholder("b"),
                text("c{d}"),
                Piece::Placeholder("e|f")
            ]
        );
        assert_eq!(pieces("").unwrap(), []);
        assert_eq!(pieces("{x}").unwrap(), [Piece::Placeholder("x")]);
        assert_eq!(pieces("é{{ü}}").unwrap(), [text("é{ü}")]);
    }

    #[test]
    fn unmatched_braces_are_named() {
        assert!(pieces("a{b").unwrap_err().contains("`{` without its `}`"));
        assert!(pieces("a}b").unwrap_err().contains("`}` without its `{`"));
        assert!(pieces("{a}}").unwrap_err().contains("`}` without its `{`"));
    }
}
