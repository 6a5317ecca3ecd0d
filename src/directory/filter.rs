//! LDAP filters for one caller: a template whose placeholders are the caller number's forms,
//! every value escaped by RFC 4515 before it enters the filter.
//!
//! Placeholders: `{e164}` (`+97235551234`), `{national}` (`035551234`), `{digits}`
//! (`97235551234`), `{significant}` (`35551234`), `{wildcard}` (`*3*5*5*5*1*2*3*4*`, which
//! matches any separators) and `{lastN}` such as `{last7}` (`5551234`).

use ldap3::ldap_escape;

use crate::braces::{self, Piece};
use crate::phone::{CallerNumber, NumberForms, PhoneKey};

/// A `match_filter` that does not parse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    E164,
    National,
    Digits,
    Significant,
    Wildcard,
    Last(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Form(Form),
}

/// A parsed `match_filter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterTemplate {
    source: String,
    parts: Vec<Part>,
}

impl FilterTemplate {
    /// Parses a template and checks that it renders to a valid filter.
    pub fn parse(source: &str) -> Result<Self, FilterError> {
        let mut parts = Vec::new();
        for piece in braces::pieces(source).map_err(FilterError)? {
            parts.push(match piece {
                Piece::Text(text) => Part::Text(text),
                Piece::Placeholder(name) => Part::Form(form(name)?),
            });
        }
        if !parts.iter().any(|p| matches!(p, Part::Form(_))) {
            return Err(FilterError(format!(
                "{source:?} uses no placeholder, so it would match the same entries for every \
                 caller; use {{e164}}, {{national}}, {{digits}}, {{significant}}, {{wildcard}} \
                 or {{lastN}}"
            )));
        }
        let template = FilterTemplate {
            source: source.to_owned(),
            parts,
        };
        let sample = template.render_forms(&NumberForms::sample(), false);
        if !is_filter(&sample) {
            return Err(FilterError(format!(
                "{source:?} is not a valid LDAP filter once filled in (gives {sample:?})"
            )));
        }
        Ok(template)
    }

    /// The default: any of `attributes` holds the caller's significant digits in order, with
    /// anything between them. Works on directories whose values use any separators; the
    /// matches are verified afterwards, so its looseness never yields a wrong name.
    pub fn any_attribute(attributes: &[String]) -> Self {
        let source = format!(
            "(|{})",
            attributes
                .iter()
                .map(|a| format!("({a}={{wildcard}})"))
                .collect::<String>()
        );
        let mut parts = Vec::new();
        parts.push(Part::Text("(|".to_owned()));
        for a in attributes {
            parts.push(Part::Text(format!("({a}=")));
            parts.push(Part::Form(Form::Wildcard));
            parts.push(Part::Text(")".to_owned()));
        }
        parts.push(Part::Text(")".to_owned()));
        FilterTemplate { source, parts }
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The filter for one caller, ANDed with the eligibility filter.
    pub fn for_caller(&self, eligibility: &str, number: &CallerNumber) -> String {
        let exact = !matches!(number.key, PhoneKey::E164(_));
        let matching = self.render_forms(&number.forms, exact);
        format!("(&{eligibility}{matching})")
    }

    fn render_forms(&self, forms: &NumberForms, exact: bool) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Form(form) => {
                    let value = match form {
                        Form::E164 => ldap_escape(forms.e164()),
                        Form::National => ldap_escape(forms.national()),
                        Form::Digits => ldap_escape(forms.digits()),
                        Form::Significant => ldap_escape(forms.significant()),
                        Form::Last(n) => ldap_escape(forms.last(*n)),
                        // An extension or unparsed number is matched as it is.
                        Form::Wildcard if exact => ldap_escape(forms.digits()),
                        // Digits and `*` only: nothing to escape.
                        Form::Wildcard => forms.wildcard().into(),
                    };
                    out.push_str(&value);
                }
            }
        }
        out
    }
}

/// A complete RFC 4515 filter, parenthesised (ldap3's parser also takes `a=b` bare).
pub fn is_filter(text: &str) -> bool {
    text.starts_with('(') && text.ends_with(')') && ldap3::parse_filter(text).is_ok()
}

fn form(name: &str) -> Result<Form, FilterError> {
    Ok(match name {
        "e164" => Form::E164,
        "national" => Form::National,
        "digits" => Form::Digits,
        "significant" => Form::Significant,
        "wildcard" => Form::Wildcard,
        other => match other.strip_prefix("last").and_then(|n| n.parse().ok()) {
            Some(n) if (4..=15).contains(&n) => Form::Last(n),
            _ => {
                return Err(FilterError(format!(
                    "unknown placeholder {{{other}}}; use {{e164}}, {{national}}, {{digits}}, \
                     {{significant}}, {{wildcard}} or {{lastN}} with N from 4 to 15"
                )))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::{Caller, PhoneNormalizer};

    fn number(raw: &str) -> CallerNumber {
        match PhoneNormalizer::new("IL", 6).expect("IL").caller(raw) {
            Ok(Caller::Number(n)) => n,
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn default_filter_uses_wildcards_on_every_attribute() {
        let t = FilterTemplate::any_attribute(&["telephonenumber".into(), "mobile".into()]);
        assert_eq!(
            t.for_caller("(objectClass=person)", &number("035551234")),
            "(&(objectClass=person)(|(telephonenumber=*3*5*5*5*1*2*3*4*)(mobile=*3*5*5*5*1*2*3*4*)))"
        );
        assert_eq!(
            t.as_str(),
            "(|(telephonenumber={wildcard})(mobile={wildcard}))"
        );
    }

    #[test]
    fn extensions_are_matched_exactly() {
        let t = FilterTemplate::any_attribute(&["ipphone".into()]);
        assert_eq!(
            t.for_caller("(objectClass=*)", &number("1234")),
            "(&(objectClass=*)(|(ipphone=1234)))"
        );
    }

    #[test]
    fn every_form_renders() {
        let t = FilterTemplate::parse(
            "(|(a={e164})(b={national})(c={digits})(d={significant})(e={last7})(f={wildcard}))",
        )
        .expect("parses");
        assert_eq!(
            t.for_caller("(x=y)", &number("+972 3 555 1234")),
            "(&(x=y)(|(a=+97235551234)(b=035551234)(c=97235551234)(d=35551234)(e=5551234)(f=*3*5*5*5*1*2*3*4*)))"
        );
    }

    #[test]
    fn doubled_braces_are_literal_braces() {
        let t = FilterTemplate::parse("(&(tag={{x}})(mobile={e164}))").expect("parses");
        assert_eq!(
            t.for_caller("(x=y)", &number("+972 3 555 1234")),
            "(&(x=y)(&(tag={x})(mobile=+97235551234)))"
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        for (t, needle) in [
            ("(mobile={nope})", "unknown placeholder"),
            ("(mobile={last2})", "unknown placeholder"),
            ("(mobile={e164}", "not a valid LDAP filter"),
            ("(mobile=123)", "no placeholder"),
            ("(mobile={e164)", "without its"),
            ("(mobile=}{e164})", "without its"),
        ] {
            let e = FilterTemplate::parse(t).expect_err(t).to_string();
            assert!(e.contains(needle), "{t}: {e}");
        }
    }
}
