//! The answers the endpoint sends: Voicenter's popup JSON, and JSON errors for everything else.

use std::convert::Infallible;

use bytes::Bytes;
use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::hyper::Body;
use warp::reply::Response;
use warp::Rejection;

use crate::lookup::{Answer, PopupAnswer, Sent};

const JSON: &str = "application/json; charset=utf-8";

#[derive(Serialize)]
struct Failure<'a> {
    #[serde(rename = "STATUS")]
    status: &'static str,
    #[serde(rename = "MESSAGE")]
    message: &'a str,
}

/// The popup JSON exactly as the endpoint sends it: `STATUS`, the fields present, `TOTAL`.
///
/// Written piece by piece rather than by serde_json's serializer (a call a key and a value,
/// each string scanned byte by byte: 1,100 instructions a popup); a value with a quote, a
/// backslash or a control character is still escaped by serde_json.
pub fn popup_json(answer: &PopupAnswer) -> String {
    let fields = [
        (r#","CLIENTNAME":"#, &answer.client_name),
        (r#","COMPANY":"#, &answer.company),
        (r#","URL":"#, &answer.url),
    ];
    let room: usize = fields
        .iter()
        .map(|(key, value)| value.as_ref().map_or(0, |v| key.len() + v.len() + 2))
        .sum();
    let mut out = String::with_capacity(room + 48);
    out.push_str(r#"{"STATUS":"OK""#);
    for (key, value) in fields {
        if let Some(value) = value {
            out.push_str(key);
            json_string(&mut out, value);
        }
    }
    out.push_str(r#","TOTAL":"#);
    out.push_str(itoa::Buffer::new().format(answer.total));
    out.push('}');
    out
}

/// `value` as a JSON string.
fn json_string(out: &mut String, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        out.push_str(&to_json(&value));
    }
}

/// `answer` as sent, its popup JSON rendered the first time.
pub fn sent(answer: &Answer) -> &Sent {
    answer.sent(|popup| Bytes::from(popup_json(popup)))
}

/// HTTP 200 with the popup JSON.
pub fn popup(sent: &Sent) -> Response {
    json(StatusCode::OK, sent.body.clone())
}

/// The error JSON: `{"STATUS":"ERROR","MESSAGE":...}`.
pub fn error_json(message: &str) -> String {
    to_json(&Failure {
        status: "ERROR",
        message,
    })
}

/// An error answer with `status`.
pub fn error(status: StatusCode, message: &str) -> Response {
    json(status, error_json(message))
}

/// The health and readiness answers: `{"STATUS":"OK"}`, or 503 with nothing more said.
pub fn status(ok: bool) -> Response {
    if ok {
        json(StatusCode::OK, r#"{"STATUS":"OK"}"#.to_owned())
    } else {
        error(StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// The single rejection handler: whatever warp rejects still gets a JSON answer.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let (status, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed; use GET or POST",
        )
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        (StatusCode::BAD_REQUEST, "the request could not be read")
    };
    Ok(error(status, message))
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising these plain structs cannot fail; keep a valid answer regardless.
    serde_json::to_string(value)
        .unwrap_or_else(|_| r#"{"STATUS":"ERROR","MESSAGE":"internal error"}"#.to_owned())
}

fn json(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    // The answers carry personal data: no cache may keep them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_are_left_out_and_hebrew_is_intact() {
        let a = PopupAnswer {
            client_name: Some("דנה לוי".into()),
            company: None,
            url: None,
            total: 1,
        };
        assert_eq!(
            popup_json(&a),
            r#"{"STATUS":"OK","CLIENTNAME":"דנה לוי","TOTAL":1}"#
        );
        assert_eq!(
            popup_json(&PopupAnswer::default()),
            r#"{"STATUS":"OK","TOTAL":0}"#
        );
    }

    #[tokio::test]
    async fn an_answer_sent_again_is_the_same_bytes_rendered_once() {
        use crate::lookup::Outcome;
        let answer = Answer::new(
            PopupAnswer {
                client_name: Some("Dana \"D\" Levi".into()),
                total: 1,
                ..PopupAnswer::default()
            },
            crate::lookup::Trace::default(),
        );
        let body = |r: Response| async { warp::hyper::body::to_bytes(r.into_body()).await };
        let first = body(popup(sent(&answer))).await.expect("first body");
        let kept = &answer.sent(|_| panic!("kept once sent")).body;
        let again = body(popup(sent(&answer))).await.expect("second body");
        assert_eq!(first, popup_json(&answer.popup).as_bytes());
        let what = sent(&answer);
        assert_eq!((what.outcome, what.total), (Outcome::Match, 1));
        assert_eq!(what.server, None);
        assert_eq!((&first, &again), (kept, kept));
        // The very bytes kept, not a copy.
        assert_eq!(again.as_ptr(), kept.as_ptr());
        // A copy changed after the original was sent is sent as changed.
        let mut copy = answer.clone();
        copy.popup.client_name = Some("Avi".into());
        let copied = body(popup(sent(&copy))).await.expect("copy's body");
        assert_eq!(copied, popup_json(&copy.popup).as_bytes());
    }

    proptest::proptest! {
        #[test]
        fn any_text_reads_back_as_sent(
            name in proptest::option::of(".*"),
            company in proptest::option::of("[\\x00-\\x7f]*"),
            url in proptest::option::of(".*"),
            total in 0usize..100_000,
        ) {
            let a = PopupAnswer { client_name: name, company, url, total };
            let back: serde_json::Value =
                serde_json::from_str(&popup_json(&a)).expect("valid JSON");
            let text = |key: &str| back.get(key).map(|v| v.as_str().expect("a string").to_owned());
            let present = [&a.client_name, &a.company, &a.url].iter().filter(|v| v.is_some()).count();
            proptest::prop_assert_eq!(back.as_object().map(|o| o.len()), Some(2 + present));
            proptest::prop_assert_eq!(&back["STATUS"], "OK");
            proptest::prop_assert_eq!(text("CLIENTNAME"), a.client_name);
            proptest::prop_assert_eq!(text("COMPANY"), a.company);
            proptest::prop_assert_eq!(text("URL"), a.url);
            proptest::prop_assert_eq!(back["TOTAL"].as_u64(), Some(total as u64));
        }
    }

    #[test]
    fn every_field_in_the_contract_order() {
        let a = PopupAnswer {
            client_name: Some("Dana \"D\" Levi\n".into()),
            company: Some("Voicenter".into()),
            url: Some("https://intranet/people?id=1&x=\\".into()),
            total: 12,
        };
        assert_eq!(
            popup_json(&a),
            r#"{"STATUS":"OK","CLIENTNAME":"Dana \"D\" Levi\n","COMPANY":"Voicenter","URL":"https://intranet/people?id=1&x=\\","TOTAL":12}"#
        );
    }

    #[test]
    fn errors_are_json() {
        let r = error(StatusCode::BAD_REQUEST, "bad \"phone\"");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[header::CONTENT_TYPE], JSON);
    }
}
