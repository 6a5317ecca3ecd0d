//! Templates that turn a directory entry and the call into CLIENTNAME, COMPANY and URL.
//!
//! A template is text with placeholders: `{displayName|cn}` takes the first attribute of the
//! list that the entry has; `{call.phone}`, `{call.did}`, `{call.extenUser}`, `{call.ivrid}`
//! and `{call.e164}` come from the request; `{dn}` is the entry's DN; `{total}` is TOTAL, how
//! many distinct entries hold the number. `{{` and `}}` are
//! literal braces. When any placeholder has no value the whole field is left out, so a URL is
//! never sent half-built.

use std::borrow::Cow;
use std::fmt::Write as _;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::braces::{self, Piece};
use crate::call::CallDetails;
use crate::directory::{Entry, Name};

/// Characters left as they are in URL values: RFC 3986 unreserved.
const URL_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A template that does not parse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

/// Where a placeholder's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    /// An entry attribute: its lower-cased name, and the name interned (compared with an
    /// entry's as a number; `None` when the table of names is full, and no entry can hold
    /// it then either).
    Attribute(String, Option<Name>),
    /// The entry's DN.
    Dn,
    /// TOTAL: how many entries hold the number.
    Total,
    /// A request field.
    Call(CallField),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallField {
    Phone,
    E164,
    Did,
    ExtenUser,
    Ivrid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Vec<Source>),
}

/// A parsed template; see the module documentation for the syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
    url: bool,
}

/// What a template is rendered against.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The matched entry; `None` for the unknown-caller answer.
    pub entry: Option<&'a Entry>,
    /// The request.
    pub call: &'a CallDetails,
    /// The caller number in E.164 form, when it parsed as one.
    pub e164: Option<&'a str>,
    /// TOTAL: how many distinct entries hold the number.
    pub total: usize,
}

/// The request fields, besides the caller's number, that templates read: an answer depends on
/// these and on the number only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallFieldsRead {
    /// `{call.did}`
    pub did: bool,
    /// `{call.extenUser}`
    pub exten_user: bool,
    /// `{call.ivrid}`
    pub ivrid: bool,
}

impl CallFieldsRead {
    /// The fields read by either.
    pub fn or(self, other: Self) -> Self {
        CallFieldsRead {
            did: self.did || other.did,
            exten_user: self.exten_user || other.exten_user,
            ivrid: self.ivrid || other.ivrid,
        }
    }
}

impl Template {
    /// Parses a text template (CLIENTNAME, COMPANY).
    pub fn text(source: &str) -> Result<Self, TemplateError> {
        Self::parse(source, false)
    }

    /// Parses a URL template: it must start with `http://` or `https://`, and values are
    /// percent-encoded where they enter it.
    pub fn url(source: &str) -> Result<Self, TemplateError> {
        let lower = source.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(TemplateError(format!(
                "{source:?} must start with https:// or http://"
            )));
        }
        Self::parse(source, true)
    }

    fn parse(source: &str, url: bool) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        for piece in braces::pieces(source).map_err(TemplateError)? {
            parts.push(match piece {
                Piece::Text(text) => Part::Text(text),
                Piece::Placeholder(inside) => Part::Value(
                    inside
                        .split('|')
                        .map(parse_source)
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            });
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
            url,
        })
    }

    /// The template as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The request fields the template reads, besides the caller's number.
    pub fn call_fields(&self) -> CallFieldsRead {
        let reads = |field: CallField| {
            self.parts.iter().any(|p| match p {
                Part::Value(sources) => sources.contains(&Source::Call(field)),
                Part::Text(_) => false,
            })
        };
        CallFieldsRead {
            did: reads(CallField::Did),
            exten_user: reads(CallField::ExtenUser),
            ivrid: reads(CallField::Ivrid),
        }
    }

    /// The entry attributes the template reads, lower-cased.
    pub fn attributes(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().flat_map(|p| match p {
            Part::Value(sources) => sources
                .iter()
                .filter_map(|s| match s {
                    Source::Attribute(a, _) => Some(a.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            Part::Text(_) => Vec::new(),
        })
    }

    /// Renders the template, or `None` when a placeholder has no value.
    pub fn render(&self, ctx: &Context<'_>) -> Option<String> {
        let mut out = String::with_capacity(64);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value(sources) => {
                    let value = sources.iter().find_map(|s| resolve(s, ctx))?;
                    if self.url {
                        // Writing into a String cannot fail.
                        let _ = write!(out, "{}", utf8_percent_encode(&value, URL_VALUE));
                    } else {
                        out.push_str(&value);
                    }
                }
            }
        }
        let kept = out.trim_end().len();
        out.truncate(kept);
        let leading = out.len() - out.trim_start().len();
        out.drain(..leading);
        (!out.is_empty()).then_some(out)
    }
}

fn parse_source(name: &str) -> Result<Source, TemplateError> {
    let name = name.trim();
    if let Some(field) = name.strip_prefix("call.") {
        let field = match field {
            "phone" => CallField::Phone,
            "e164" => CallField::E164,
            "did" => CallField::Did,
            "extenUser" => CallField::ExtenUser,
            "ivrid" => CallField::Ivrid,
            other => {
                return Err(TemplateError(format!(
                    "unknown request field `call.{other}`; use call.phone, call.e164, call.did, \
                     call.extenUser or call.ivrid"
                )))
            }
        };
        return Ok(Source::Call(field));
    }
    if name.eq_ignore_ascii_case("dn") {
        return Ok(Source::Dn);
    }
    if name == "total" {
        return Ok(Source::Total);
    }
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        return Err(TemplateError(format!(
            "`{{{name}}}` is not an attribute name (letters, digits and `-`, starting with a letter)"
        )));
    }
    let name = name.to_ascii_lowercase();
    let interned = Name::of(&name);
    Ok(Source::Attribute(name, interned))
}

fn resolve<'a>(source: &Source, ctx: &Context<'a>) -> Option<Cow<'a, str>> {
    let value = match source {
        Source::Total => return Some(Cow::Owned(ctx.total.to_string())),
        Source::Attribute(_, name) => ctx.entry?.first((*name)?),
        Source::Dn => ctx.entry.map(Entry::dn),
        Source::Call(field) => match field {
            CallField::Phone => ctx.call.phone.as_deref(),
            CallField::E164 => ctx.e164,
            CallField::Did => ctx.call.did.as_deref(),
            CallField::ExtenUser => ctx.call.exten_user.as_deref(),
            CallField::Ivrid => ctx.call.ivrid.as_deref(),
        },
    }?;
    let value = value.trim();
    (!value.is_empty()).then_some(Cow::Borrowed(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry::new(
            "uid=dana,ou=people,dc=example,dc=com",
            [
                ("cn", vec!["דנה לוי"]),
                ("uid", vec!["dana levi/ש"]),
                ("mail", vec!["", "dana@example.com"]),
                ("o", vec!["  "]),
            ],
        )
    }

    fn render(t: &Template, e: Option<&Entry>) -> Option<String> {
        let call = CallDetails {
            phone: Some("0722776772".into()),
            did: Some("0722776773".into()),
            ..CallDetails::default()
        };
        t.render(&Context {
            entry: e,
            call: &call,
            e164: Some("+972722776772"),
            total: 1,
        })
    }

    #[test]
    fn fallbacks_take_the_first_present_attribute() {
        let e = entry();
        let t = Template::text("{displayName|cn}").expect("parses");
        assert_eq!(render(&t, Some(&e)).as_deref(), Some("דנה לוי"));
    }

    #[test]
    fn attribute_names_are_case_insensitive() {
        let e = entry();
        let t = Template::text("{CN}").expect("parses");
        assert_eq!(render(&t, Some(&e)).as_deref(), Some("דנה לוי"));
    }

    #[test]
    fn a_missing_value_leaves_the_field_out() {
        let e = entry();
        for src in [
            "{company|o}",
            "https://x.example/{title}",
            "{givenName} {sn}",
        ] {
            let t = if src.starts_with("https") {
                Template::url(src)
            } else {
                Template::text(src)
            }
            .expect("parses");
            assert_eq!(render(&t, Some(&e)), None, "{src}");
        }
    }

    #[test]
    fn urls_encode_values_and_keep_their_own_text() {
        let e = entry();
        let t = Template::url("https://intranet.example.com/p/{uid}?from={call.did}&n={call.e164}")
            .expect("parses");
        assert_eq!(
            render(&t, Some(&e)).as_deref(),
            Some("https://intranet.example.com/p/dana%20levi%2F%D7%A9?from=0722776773&n=%2B972722776772")
        );
    }

    #[test]
    fn request_fields_render_without_an_entry() {
        let t = Template::url("https://crm.example.com/new?phone={call.phone}").expect("parses");
        assert_eq!(
            render(&t, None).as_deref(),
            Some("https://crm.example.com/new?phone=0722776772")
        );
        let t = Template::text("{cn}").expect("parses");
        assert_eq!(render(&t, None), None);
    }

    #[test]
    fn braces_escape_and_dn() {
        let e = entry();
        let t = Template::text("{{{dn}}}").expect("parses");
        assert_eq!(
            render(&t, Some(&e)).as_deref(),
            Some("{uid=dana,ou=people,dc=example,dc=com}")
        );
    }

    #[test]
    fn later_values_of_an_attribute_are_used_when_the_first_is_blank() {
        let e = entry();
        let t = Template::text("{mail}").expect("parses");
        assert_eq!(render(&t, Some(&e)).as_deref(), Some("dana@example.com"));
    }

    #[test]
    fn bad_templates_say_why() {
        for (src, needle) in [
            ("{cn", "without its"),
            ("cn}", "without its"),
            ("{call.nope}", "unknown request field"),
            ("{}", "not an attribute name"),
            ("{a b}", "not an attribute name"),
            ("{cn|}", "not an attribute name"),
        ] {
            let err = Template::text(src).expect_err(src).to_string();
            assert!(err.contains(needle), "{src}: {err}");
        }
        let err = Template::url("ftp://x/{cn}")
            .expect_err("scheme")
            .to_string();
        assert!(err.contains("https://"), "{err}");
    }

    #[test]
    fn lists_its_attributes() {
        let t = Template::url("https://x/{uid|sAMAccountName}/{call.did}/{dn}").expect("parses");
        assert_eq!(
            t.attributes().collect::<Vec<_>>(),
            ["uid", "samaccountname"]
        );
    }
}
