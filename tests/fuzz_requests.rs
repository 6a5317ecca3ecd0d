//! Arbitrary bytes in the query string, a form body and a JSON body always get a JSON answer:
//! never a panic, never a 5xx (the demo directory cannot be unavailable).

use std::sync::Arc;

use popup_ldap::http::{routes, App};
use popup_ldap::settings::Config;
use proptest::prelude::*;

/// Cases per property; three properties.
const CASES: u32 = 3000;

fn app(runtime: &tokio::runtime::Runtime) -> Arc<App> {
    let mut config = Config::embedded_demo().expect("demo config");
    config.rate_limit = None;
    Arc::new(
        runtime
            .block_on(App::open(config.http_setup()))
            .expect("app"),
    )
}

fn check(runtime: &tokio::runtime::Runtime, app: &Arc<App>, req: warp::test::RequestBuilder) {
    let res = runtime.block_on(req.reply(&routes(app.clone())));
    let status = res.status().as_u16();
    assert!(
        matches!(status, 200 | 400 | 413),
        "status {status}: {:?}",
        res.body()
    );
    assert_eq!(
        res.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let json: serde_json::Value = serde_json::from_slice(res.body()).expect("a JSON body");
    let expected = if status == 200 { "OK" } else { "ERROR" };
    assert_eq!(json["STATUS"], expected, "{json}");
}

fn percent_encoded(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_query_string(phone in proptest::collection::vec(any::<u8>(), 0..48),
                        other in "[a-zA-Z0-9_=&%.+*()-]{0,40}") {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let app = app(&runtime);
        let path = format!("/popup?phone={}&{other}", percent_encoded(&phone));
        check(&runtime, &app, warp::test::request().path(&path));
    }

    #[test]
    fn any_form_body(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let app = app(&runtime);
        let req = warp::test::request()
            .method("POST")
            .path("/popup")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        check(&runtime, &app, req);
    }

    #[test]
    fn any_json_body(body in proptest::collection::vec(any::<u8>(), 0..256),
                     phone in ".{0,40}",
                     shape in 0u8..4) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let app = app(&runtime);
        // Raw bytes, and well-formed JSON whose fields hold anything.
        let body = match shape {
            0 => body,
            1 => serde_json::json!({"phone": phone, "status": "Ringing"}).to_string().into_bytes(),
            2 => serde_json::json!({"phone": [phone], "did": {"x": 1}}).to_string().into_bytes(),
            _ => serde_json::json!([phone, 1, null]).to_string().into_bytes(),
        };
        let req = warp::test::request()
            .method("POST")
            .path("/popup")
            .header("content-type", "application/json")
            .body(body);
        check(&runtime, &app, req);
    }
}
