//! Reading a Pop Up Screen request, whichever of its three formats carries it, into
//! [`CallDetails`].

use crate::call::CallDetails;

/// A request that cannot be read, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body was over `server.max_body_bytes`.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
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
    /// A JSON field of a type that cannot be a phone number.
    #[error("`phone` must be a string or a number")]
    PhoneType,
    /// A form body that is not UTF-8.
    #[error("the form body is not UTF-8")]
    NotUtf8,
}

/// Reads the fields of a query string (GET) or a form body.
pub fn from_form(text: &str) -> CallDetails {
    let pairs = form_urlencoded::parse(text.as_bytes());
    let mut call = CallDetails::default();
    for (name, value) in pairs {
        set(&mut call, &name, || Some(value.into_owned()));
    }
    call
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

fn from_json(body: &[u8]) -> Result<CallDetails, RequestError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))?;
    let object = value.as_object().ok_or(RequestError::NotAnObject)?;
    let mut call = CallDetails::default();
    for (name, value) in object {
        let text = match value {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Null => None,
            _ if name.eq_ignore_ascii_case("phone") => return Err(RequestError::PhoneType),
            // Voicenter's richer fields (currentCall, isMuted, ...) are not ours to read.
            _ => None,
        };
        set(&mut call, name, || text);
    }
    Ok(call)
}

/// Stores a field by its (case-insensitive) name; the first occurrence wins, and
/// `statusCall` wins over `status`.
fn set(call: &mut CallDetails, name: &str, value: impl FnOnce() -> Option<String>) {
    let slot = match name.to_ascii_lowercase().as_str() {
        "phone" => &mut call.phone,
        "ivrid" => &mut call.ivrid,
        "extenuser" => &mut call.exten_user,
        "did" => &mut call.did,
        "statuscall" => {
            call.state = value().or(call.state.take());
            return;
        }
        "status" => &mut call.state,
        _ => return,
    };
    if slot.is_none() {
        *slot = value();
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
