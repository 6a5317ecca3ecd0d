//! The answers the endpoint sends: Voicenter's popup JSON, and JSON errors for everything else.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Rejection;

use crate::lookup::PopupAnswer;

const JSON: &str = "application/json; charset=utf-8";

#[derive(Serialize)]
struct Popup<'a> {
    #[serde(rename = "STATUS")]
    status: &'static str,
    #[serde(rename = "CLIENTNAME", skip_serializing_if = "Option::is_none")]
    client_name: Option<&'a str>,
    #[serde(rename = "COMPANY", skip_serializing_if = "Option::is_none")]
    company: Option<&'a str>,
    #[serde(rename = "URL", skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(rename = "TOTAL")]
    total: usize,
}

#[derive(Serialize)]
struct Failure<'a> {
    #[serde(rename = "STATUS")]
    status: &'static str,
    #[serde(rename = "MESSAGE")]
    message: &'a str,
}

/// The popup JSON exactly as the endpoint sends it.
pub fn popup_json(answer: &PopupAnswer) -> String {
    to_json(&Popup {
        status: "OK",
        client_name: answer.client_name.as_deref(),
        company: answer.company.as_deref(),
        url: answer.url.as_deref(),
        total: answer.total,
    })
}

/// HTTP 200 with the popup JSON.
pub fn popup(answer: &PopupAnswer) -> Response {
    json(StatusCode::OK, popup_json(answer))
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

fn json(status: StatusCode, body: String) -> Response {
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

    #[test]
    fn errors_are_json() {
        let r = error(StatusCode::BAD_REQUEST, "bad \"phone\"");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[header::CONTENT_TYPE], JSON);
    }
}
