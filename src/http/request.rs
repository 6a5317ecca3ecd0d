//! Reading a Pop Up Screen request, whichever of its three formats carries it, into
//! [`CallDetails`].

use std::borrow::Cow;

use crate::call::CallDetails;

/// A request that cannot be read, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body was over `server.max_body_bytes`.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body did not arrive within `server.body_timeout_s`.
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    /// The body could not be read.
    #[error("the request body could not be read: {0}")]
    Body(String),
    /// Not a form or JSON body.
    #[error("Content-Type {0:?} is not supported; send application/x-www-form-urlencoded or application/json")]
    UnsupportedType(String),
    /// A body without a Content-Type.
    #[error("the request has a body but no Content-Type; send application/x-www-form-urlencoded or application/json")]
    MissingType,
    /// Malformed JSON.
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    /// JSON that is not an object.
    #[error("the JSON body must be an object such as {{\"phone\": \"0722776772\"}}")]
    NotAnObject,
    /// A JSON `phone` that is neither a string nor a whole number >= 0.
    #[error("`phone` must be a string or a whole number such as 972722776772")]
    PhoneType,
    /// A form body that is not UTF-8.
    #[error("the form body is not UTF-8")]
    NotUtf8,
}

/// Reads the fields of a query string (GET) or a form body.
pub fn from_form(text: &str) -> CallDetails {
    let mut fields = Fields::default();
    let mut rest = Some(text);
    while let Some(pairs) = rest {
        let (pair, more) = cut(pairs, b'&');
        let (name, value) = cut(pair, b'=');
        fields.set(&form_decoded(name), || {
            Some(form_decoded(value.unwrap_or_default()).into_owned())
        });
        rest = more;
    }
    fields.call
}

/// `text` before and after the first `byte` (ASCII), if there is one: `str::split` and
/// `split_once` go through a character searcher, a third of reading a short query.
fn cut(text: &str, byte: u8) -> (&str, Option<&str>) {
    match text.bytes().position(|b| b == byte) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    }
}

/// A piece of a form decoded as `form_urlencoded` does (`+` is a space, `%XX` a byte,
/// invalid UTF-8 replaced), borrowed when there is nothing to decode: `form_urlencoded::parse`
/// checks every piece three times over (about 330 instructions a piece) even then.
fn form_decoded(piece: &str) -> Cow<'_, str> {
    if !piece.bytes().any(|b| b == b'+' || b == b'%') {
        return Cow::Borrowed(piece);
    }
    let spaced = piece.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Reads a POST body by its Content-Type; an empty body leaves `query` (the URL's fields) as
/// the request.
pub fn from_body(
    content_type: Option<&str>,
    body: &[u8],
    query: CallDetails,
) -> Result<CallDetails, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(query);
    }
    let essence = content_type
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .ok_or(RequestError::MissingType)?;
    let from_body = match essence.as_str() {
        "application/x-www-form-urlencoded" => {
            from_form(std::str::from_utf8(body).map_err(|_| RequestError::NotUtf8)?)
        }
        "application/json" => from_json(body)?,
        _ => return Err(RequestError::UnsupportedType(essence)),
    };
    Ok(merge(from_body, query))
}

/// Reads a JSON object field by field, in the order sent, so that a repeated field keeps its
/// first value as in the other two formats (a `serde_json::Value` would keep the last).
fn from_json(body: &[u8]) -> Result<CallDetails, RequestError> {
    use serde::Deserializer as _;
    let mut reader = serde_json::Deserializer::from_slice(body);
    let fields = reader
        .deserialize_map(JsonFields)
        .and_then(|fields| reader.end().map(|()| fields))
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => RequestError::NotAnObject,
            _ => RequestError::Json(e.to_string()),
        })?;
    if fields.bad_phone {
        return Err(RequestError::PhoneType);
    }
    Ok(fields.call)
}

struct JsonFields;

impl<'de> serde::de::Visitor<'de> for JsonFields {
    type Value = Fields;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Fields::default();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !Fields::reads(&name) {
                // Voicenter's richer fields (currentCall, isMuted, ...) are not ours to read.
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            let (text, usable) = match map.next_value::<serde_json::Value>()? {
                serde_json::Value::String(s) => (Some(s), true),
                serde_json::Value::Number(n) => (n.as_u64().map(|n| n.to_string()), n.is_u64()),
                serde_json::Value::Null => (None, true),
                _ => (None, false),
            };
            // `phone` must be a string or a whole number >= 0: `-972...`, `9.7e11`, `[1]` or
            // `{}` are not a number as dialled. `null` counts as absent.
            if !usable && name.eq_ignore_ascii_case("phone") && fields.call.phone.is_none() {
                fields.bad_phone = true;
            }
            fields.set(&name, || text);
        }
        Ok(fields)
    }
}

/// The fields read so far; a repeated field keeps its first value, and `statusCall` wins over
/// `status`, in all three formats.
#[derive(Default)]
struct Fields {
    call: CallDetails,
    state_from_status_call: bool,
    bad_phone: bool,
}

impl Fields {
    const NAMES: [&'static str; 6] = ["phone", "ivrid", "extenuser", "did", "statuscall", "status"];

    fn reads(name: &str) -> bool {
        Self::NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// Stores a field by its (case-insensitive) name.
    fn set(&mut self, name: &str, value: impl FnOnce() -> Option<String>) {
        let call = &mut self.call;
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        let slot = if is("phone") {
            &mut call.phone
        } else if is("ivrid") {
            &mut call.ivrid
        } else if is("extenuser") {
            &mut call.exten_user
        } else if is("did") {
            &mut call.did
        } else if is("statuscall") {
            if !self.state_from_status_call {
                if let Some(state) = value() {
                    call.state = Some(state);
                    self.state_from_status_call = true;
                }
            }
            return;
        } else if is("status") {
            &mut call.state
        } else {
            return;
        };
        if slot.is_none() {
            *slot = value();
        }
    }
}

fn merge(primary: CallDetails, fallback: CallDetails) -> CallDetails {
    CallDetails {
        phone: primary.phone.or(fallback.phone),
        ivrid: primary.ivrid.or(fallback.ivrid),
        exten_user: primary.exten_user.or(fallback.exten_user),
        did: primary.did.or(fallback.did),
        state: primary.state.or(fallback.state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The short cut decodes every piece as `form_urlencoded` does, whatever it holds:
        /// escapes, broken escapes, `+`, bytes that are not UTF-8 once decoded.
        #[test]
        fn pieces_decode_as_form_urlencoded_does(piece in "([a-zA-Z0-9 +%.~*-]|%[0-9a-fA-F]{2}|%[89a-fA-F][0-9a-fA-F]|\\PC){0,24}") {
            let piece = piece.replace(['&', '='], "");
            let text = format!("x={piece}");
            let expected = form_urlencoded::parse(text.as_bytes()).next().map(|(_, v)| v.into_owned());
            prop_assert_eq!(Some(form_decoded(&piece).into_owned()), expected);
        }
    }

    fn voicenter_get() -> CallDetails {
        CallDetails {
            phone: Some("0722776772".into()),
            ivrid: Some("202010111sdsd3684752bcb3d".into()),
            exten_user: Some("NaDzw50l".into()),
            did: Some("0722776773".into()),
            state: Some("Ringin".into()),
        }
    }

    #[test]
    fn the_published_get_example() {
        let q = "phone=0722776772&ivrid=202010111sdsd3684752bcb3d&extenUser=NaDzw50l&did=0722776773&statusCall=Ringin";
        assert_eq!(from_form(q), voicenter_get());
    }

    #[test]
    fn the_published_form_example_with_status() {
        let body = b"phone=0722776772&ivrid=202010111sdsd3684752bcb3d&extenUser=NaDzw50l&did=0722776773&status=Ringin";
        let call = from_body(
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            body,
            CallDetails::default(),
        )
        .expect("form");
        assert_eq!(call, voicenter_get());
    }

    #[test]
    fn the_published_json_example() {
        let body = br#"{"phone": "972722776772", "callerName": "Queue Testing",
            "ivrid": "20220916103546022555eb61e755c08a", "extenUser": "KGpK4iWq",
            "did": "0776707528", "status": "Ringing", "direction": "Incoming",
            "isMuted": false, "callStarted": 1663324548, "isAnswered": false,
            "currentCall": {"callStarted": 1663324548, "callerphone": "972722776772"}}"#;
        let call = from_body(Some("application/json"), body, CallDetails::default()).expect("json");
        assert_eq!(call.phone.as_deref(), Some("972722776772"));
        assert_eq!(call.exten_user.as_deref(), Some("KGpK4iWq"));
        assert_eq!(call.state.as_deref(), Some("Ringing"));
    }

    #[test]
    fn json_numbers_and_status_call_precedence() {
        let body = br#"{"status": "Answer", "phone": 972722776772, "statusCall": "Ringin"}"#;
        let call = from_body(Some("application/json"), body, CallDetails::default()).expect("json");
        assert_eq!(call.phone.as_deref(), Some("972722776772"));
        assert_eq!(call.state.as_deref(), Some("Ringin"));
    }

    #[test]
    fn json_phone_numbers_must_be_whole_and_not_negative() {
        let json = |body: &str| {
            from_body(
                Some("application/json"),
                body.as_bytes(),
                CallDetails::default(),
            )
        };
        for bad in [
            r#"{"phone": -972722776772}"#,
            r#"{"phone": 9.72722776772e11}"#,
            r#"{"phone": 972722776772.0}"#,
            r#"{"phone": true}"#,
            r#"{"phone": {"n": 1}}"#,
        ] {
            assert_eq!(json(bad), Err(RequestError::PhoneType), "{bad}");
        }
        let call = json(r#"{"phone": null, "did": 35551234.5}"#).expect("null is absent");
        assert_eq!((call.phone, call.did), (None, None));
    }

    #[test]
    fn repeated_fields_keep_their_first_value_in_every_format() {
        let want = (Some("111".to_owned()), Some("Ringing".to_owned()));
        let pick = |c: CallDetails| (c.phone, c.state);
        let q = "phone=111&statusCall=Ringing&phone=222&statusCall=Hangup&status=Answer";
        assert_eq!(pick(from_form(q)), want);
        let form = from_body(
            Some("application/x-www-form-urlencoded"),
            q.as_bytes(),
            CallDetails::default(),
        );
        assert_eq!(pick(form.expect("form")), want);
        let body = br#"{"status":"Answer","phone":"111","statusCall":"Ringing","phone":"222",
                        "statusCall":"Hangup","phone":-1}"#;
        let json = from_body(Some("application/json"), body, CallDetails::default());
        assert_eq!(pick(json.expect("json")), want);
    }

    #[test]
    fn empty_post_uses_the_query() {
        let call = from_body(None, b"", from_form("phone=1")).expect("query");
        assert_eq!(call.phone.as_deref(), Some("1"));
    }

    #[test]
    fn body_fields_win_over_query_fields() {
        let call = from_body(
            Some("application/x-www-form-urlencoded"),
            b"phone=2",
            from_form("phone=1&did=3"),
        )
        .expect("form");
        assert_eq!(
            (call.phone.as_deref(), call.did.as_deref()),
            (Some("2"), Some("3"))
        );
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let none = CallDetails::default;
        let cases: [(Option<&str>, &[u8], RequestError); 6] = [
            (
                Some("application/json"),
                b"{\"phone\":",
                RequestError::Json(String::new()),
            ),
            (
                Some("application/json"),
                b"[\"0722776772\"]",
                RequestError::NotAnObject,
            ),
            (
                Some("application/json"),
                b"{\"phone\":[1]}",
                RequestError::PhoneType,
            ),
            (
                Some("text/plain"),
                b"phone=1",
                RequestError::UnsupportedType("text/plain".into()),
            ),
            (None, b"phone=1", RequestError::MissingType),
            (
                Some("application/x-www-form-urlencoded"),
                b"phone=\xff",
                RequestError::NotUtf8,
            ),
        ];
        for (ct, body, want) in cases {
            let got = from_body(ct, body, none()).expect_err("refused");
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{ct:?}: {got}"
            );
        }
    }
}
