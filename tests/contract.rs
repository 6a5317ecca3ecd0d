//! Voicenter's Pop Up Screen contract, end to end through the assembled routes, answered from a
//! real slapd over TLS.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Slapd;
use popup_ldap::http::{routes, App};
use popup_ldap::settings::Config;
use serde_json::{json, Value};

const CLIENT: &str = "192.0.2.10:40000";

/// The endpoint in its default mode: an index synced from slapd.
async fn app(slapd: &Slapd, extra: &str) -> Arc<App> {
    Arc::new(
        App::open(slapd.config(extra).http_setup())
            .await
            .expect("app"),
    )
}

/// The endpoint searching slapd on every call.
async fn live_app(slapd: &Slapd, extra: &str) -> Arc<App> {
    let config = Config::parse(&slapd.live_config_text(extra), slapd.dir.path()).expect("config");
    Arc::new(App::open(config.http_setup()).await.expect("app"))
}

struct Reply {
    status: u16,
    content_type: String,
    json: Value,
}

async fn send(app: &Arc<App>, req: warp::test::RequestBuilder) -> Reply {
    let res = req.reply(&routes(app.clone())).await;
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let json = serde_json::from_slice(res.body())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", res.body()));
    Reply {
        status: res.status().as_u16(),
        content_type,
        json,
    }
}

fn get(query: &str) -> warp::test::RequestBuilder {
    warp::test::request()
        .method("GET")
        .path(&format!("/popup?{query}"))
        .remote_addr(CLIENT.parse().expect("addr"))
}

fn post(content_type: &str, body: &str) -> warp::test::RequestBuilder {
    warp::test::request()
        .method("POST")
        .path("/popup")
        .header("content-type", content_type)
        .body(body)
        .remote_addr(CLIENT.parse().expect("addr"))
}

async fn popup(app: &Arc<App>, phone: &str) -> Value {
    let r = send(app, get(&format!("phone={}", urlencode(phone)))).await;
    assert_eq!(r.status, 200, "{phone}: {}", r.json);
    r.json
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

const DANA: &str = "דנה לוי";

#[tokio::test]
async fn all_three_request_formats_answer_the_same() {
    let slapd = Slapd::start();
    let app = app(
        &slapd,
        "[response]\nurl = \"https://intranet.example.com/people/{uid}?from={call.did}\"",
    )
    .await;
    let expected = json!({
        "STATUS": "OK", "CLIENTNAME": DANA, "COMPANY": "Voicenter", "TOTAL": 1,
        "URL": "https://intranet.example.com/people/dana?from=0722776773"
    });
    let g = send(
        &app,
        get("phone=0722776772&ivrid=202010111sdsd3684752bcb3d&extenUser=NaDzw50l&did=0722776773&statusCall=Ringin"),
    )
    .await;
    assert_eq!((g.status, &g.json), (200, &expected));
    assert_eq!(g.content_type, "application/json; charset=utf-8");

    let f = send(
        &app,
        post(
            "application/x-www-form-urlencoded",
            "phone=0722776772&ivrid=202010111sdsd3684752bcb3d&extenUser=NaDzw5Ol&did=0722776773&status=Ringing",
        ),
    )
    .await;
    assert_eq!((f.status, &f.json), (200, &expected));

    let j = send(
        &app,
        post(
            "application/json",
            r#"{"phone": "972722776772", "callerName": "Queue Testing",
                "ivrid": "20220916103546022555eb61e755c08a", "extenUser": "KGpK4iWq",
                "did": "0722776773", "status": "Ringing", "direction": "Incoming",
                "recordFile": "x.mp3", "isMuted": false, "callStarted": 1663324548,
                "isAnswered": false, "callAnswered": 0,
                "currentCall": {"callStarted": 1663324548, "callerphone": "972722776772"}}"#,
        ),
    )
    .await;
    assert_eq!((j.status, &j.json), (200, &expected));
}

#[tokio::test]
async fn every_call_phase_gets_an_ok_answer() {
    let slapd = Slapd::start();
    let app = app(&slapd, "").await;
    for state in [
        "Ringin", "Ringing", "RINGING", "Dialing", "Answer", "Hangup", "Ended",
    ] {
        let r = send(&app, get(&format!("phone=0722776772&statusCall={state}"))).await;
        assert_eq!(r.status, 200, "{state}");
        assert_eq!(r.json["CLIENTNAME"], DANA, "{state}");
    }
}

#[tokio::test]
async fn caller_numbers_match_stored_values_in_any_format() {
    let slapd = Slapd::start();
    let app = app(&slapd, "").await;
    for &(caller, name) in common::FORMATS {
        let answer = popup(&app, caller).await;
        assert_eq!(answer["CLIENTNAME"], name, "{caller}: {answer}");
        assert_eq!(answer["TOTAL"], 1, "{caller}: {answer}");
    }
}

#[tokio::test]
async fn a_different_number_never_matches() {
    let slapd = Slapd::start();
    let app = app(&slapd, "").await;
    // 073-5551234 shares its last 8 digits with 03-555-1234 and is returned by the wildcard
    // filter; verification keeps the callers apart.
    assert_eq!(
        popup(&app, "0735551234").await["CLIENTNAME"],
        "Decoy Other Area"
    );
    assert_eq!(popup(&app, "035551234").await["TOTAL"], 1);
    assert_eq!(popup(&app, "045551234").await["CLIENTNAME"], "Near Miss");
    assert_eq!(
        popup(&app, "0635551234").await,
        json!({"STATUS": "OK", "TOTAL": 0})
    );
}

#[tokio::test]
async fn several_matches_count_distinct_entries_and_pick_deterministically() {
    let slapd = Slapd::start();
    let app = app(&slapd, "").await;
    for _ in 0..3 {
        let answer = popup(&app, "0523334444").await;
        assert_eq!(answer["TOTAL"], 2, "{answer}");
        assert_eq!(answer["CLIENTNAME"], "ליאור חדד", "{answer}");
    }
}

#[tokio::test]
async fn several_matches_answer_with_the_multiple_templates_in_both_modes() {
    let slapd = Slapd::start();
    let extra = "[response]\nmultiple_client_name = \"{total} people · first {displayName|cn}\"\n\
                 multiple_url = \"https://crm.example/search?phone={call.e164}\"\n\
                 url = \"https://intranet.example/{uid}\"";
    for app in [app(&slapd, extra).await, live_app(&slapd, extra).await] {
        let answer = popup(&app, "0523334444").await;
        assert_eq!(answer["TOTAL"], 2, "{answer}");
        assert_eq!(
            answer["CLIENTNAME"], "2 people · first ליאור חדד",
            "{answer}"
        );
        assert_eq!(
            answer["URL"], "https://crm.example/search?phone=%2B972523334444",
            "{answer}"
        );
        // One match keeps the ordinary templates.
        let answer = popup(&app, "035551234").await;
        assert_eq!(answer["TOTAL"], 1, "{answer}");
        assert!(
            answer["URL"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://intranet.example/")),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn binary_and_multi_valued_attributes_break_nothing() {
    let slapd = Slapd::start();
    // jpegPhoto holds bytes that are not UTF-8: the template falls back to the next attribute.
    let app = app(
        &slapd,
        "[response]\nclient_name = \"{jpegPhoto|cn}\"\ncompany = \"{objectClass}\"\n\
         url = \"https://x.example/{jpegPhoto}\"",
    )
    .await;
    assert_eq!(
        popup(&app, "0722776772").await,
        json!({"STATUS": "OK", "CLIENTNAME": "Dana Levi", "COMPANY": "inetOrgPerson", "TOTAL": 1})
    );
}

#[tokio::test]
async fn extensions_match_only_short_callers() {
    let slapd = Slapd::start();
    let app = app(&slapd, "").await;
    assert_eq!(popup(&app, "1234").await["CLIENTNAME"], "קבלה");
    assert_eq!(popup(&app, "0501234").await["TOTAL"], 0);
}

#[tokio::test]
async fn unknown_and_withheld_callers_are_ok_with_the_unknown_fields() {
    let slapd = Slapd::start();
    let app = app(
        &slapd,
        "[response]\nunknown_client_name = \"Unknown caller\"\n\
         unknown_url = \"https://crm.example.com/new?phone={call.phone}\"",
    )
    .await;
    assert_eq!(
        popup(&app, "0500000000").await,
        json!({"STATUS": "OK", "TOTAL": 0, "CLIENTNAME": "Unknown caller",
               "URL": "https://crm.example.com/new?phone=0500000000"})
    );
    for withheld in ["", "Anonymous", "private", "UNKNOWN", "Restricted"] {
        assert_eq!(
            popup(&app, withheld).await,
            json!({"STATUS": "OK", "TOTAL": 0, "CLIENTNAME": "Unknown caller"}),
            "{withheld:?}"
        );
    }
}

#[tokio::test]
async fn requests_that_cannot_be_understood_are_400_json() {
    let slapd = Slapd::start();
    let app = app(&slapd, "").await;
    let cases = [
        (get("ivrid=1&did=2"), "phone"),
        (get("phone=*)(uid=*"), "'*'"),
        (get("phone=0500*"), "'*'"),
        (get("phone=03\\5551234"), "'\\\\'"),
        (get(&format!("phone={}", "1".repeat(40))), "40 characters"),
        (post("application/json", "{\"phone\": "), "not valid JSON"),
        (post("application/json", "[1,2]"), "object"),
        (
            post("application/json", "{\"phone\": {\"a\": 1}}"),
            "string or a whole number",
        ),
        (
            post("application/json", "{\"phone\": -972722776772}"),
            "string or a whole number",
        ),
        (
            post("application/json", "{\"phone\": 9.72722776772e11}"),
            "string or a whole number",
        ),
        (post("text/xml", "<phone>1</phone>"), "text/xml"),
    ];
    for (req, needle) in cases {
        let r = send(&app, req).await;
        assert_eq!(r.status, 400, "{}", r.json);
        assert_eq!(r.json["STATUS"], "ERROR");
        let message = r.json["MESSAGE"].as_str().expect("message");
        assert!(message.contains(needle), "{message} lacks {needle}");
    }
}

#[tokio::test]
async fn a_repeated_phone_field_is_read_the_same_way_in_every_format() {
    let slapd = Slapd::start();
    let app = app(&slapd, "").await;
    let first = "0722776772";
    let other = "0399999999";
    let requests = [
        get(&format!("phone={first}&phone={other}")),
        post(
            "application/x-www-form-urlencoded",
            &format!("phone={first}&phone={other}"),
        ),
        post(
            "application/json",
            &format!("{{\"phone\": \"{first}\", \"phone\": \"{other}\"}}"),
        ),
        post(
            "application/json",
            &format!("{{\"phone\": 972722776772, \"phone\": \"{other}\"}}"),
        ),
    ];
    for req in requests {
        let r = send(&app, req).await;
        assert_eq!(r.status, 200, "{}", r.json);
        assert_eq!(r.json["CLIENTNAME"], DANA, "{}", r.json);
    }
}

#[tokio::test]
async fn caller_input_never_reaches_another_person() {
    let slapd = Slapd::start();
    let app = app(&slapd, "").await;
    for attack in [
        "*",
        "*)(uid=*",
        "0*",
        "*)(|(objectClass=*)",
        "\\2a",
        "0722776772)(uid=*",
    ] {
        let r = send(&app, get(&format!("phone={}", urlencode(attack)))).await;
        assert!(
            r.status == 400 || r.json == json!({"STATUS": "OK", "TOTAL": 0}),
            "{attack}: {} {}",
            r.status,
            r.json
        );
    }
}

#[tokio::test]
async fn oversized_bodies_unknown_paths_and_methods_get_json_errors() {
    let slapd = Slapd::start();
    let app = app(&slapd, "[server]\nmax_body_bytes = 1024").await;
    let big = format!("phone=0722776772&pad={}", "x".repeat(2000));
    let r = send(&app, post("application/x-www-form-urlencoded", &big)).await;
    assert_eq!((r.status, r.json["STATUS"].as_str()), (413, Some("ERROR")));

    let r = send(&app, warp::test::request().path("/other?phone=0722776772")).await;
    assert_eq!((r.status, r.json["STATUS"].as_str()), (404, Some("ERROR")));

    for method in ["PUT", "DELETE", "PATCH"] {
        let r = send(&app, warp::test::request().method(method).path("/popup")).await;
        assert_eq!(
            (r.status, r.json["STATUS"].as_str()),
            (405, Some("ERROR")),
            "{method}"
        );
    }
}

#[tokio::test]
async fn the_path_is_configurable() {
    let slapd = Slapd::start();
    let app = app(&slapd, "[server]\npath = \"/voicenter/popup\"").await;
    let r = send(
        &app,
        warp::test::request().path("/voicenter/popup?phone=0722776772"),
    )
    .await;
    assert_eq!(r.json["CLIENTNAME"], DANA);
    let r = send(&app, warp::test::request().path("/popup?phone=0722776772")).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn states_not_configured_are_answered_without_the_directory() {
    let mut slapd = Slapd::start();
    let app = live_app(&slapd, "[lookup]\nstates = [\"Ringing\", \"Dialing\"]").await;
    assert_eq!(
        send(&app, get("phone=0722776772&statusCall=Ringin"))
            .await
            .json["CLIENTNAME"],
        DANA
    );
    slapd.stop();
    for state in ["Answer", "Hangup"] {
        let r = send(&app, get(&format!("phone=0722776772&status={state}"))).await;
        assert_eq!(
            (r.status, &r.json),
            (200, &json!({"STATUS": "OK", "TOTAL": 0}))
        );
    }
    // A state that is looked up needs the (stopped) directory.
    assert_eq!(
        send(&app, get("phone=0722776772&statusCall=Ringin"))
            .await
            .status,
        503
    );
}

#[tokio::test]
async fn a_down_directory_is_a_503_within_the_deadline_and_recovers() {
    let mut slapd = Slapd::start();
    let app = live_app(&slapd, "[lookup]\ndeadline_ms = 1000").await;
    assert_eq!(popup(&app, "0722776772").await["CLIENTNAME"], DANA);
    slapd.stop();
    let started = Instant::now();
    let r = send(&app, get("phone=0722776772")).await;
    assert_eq!((r.status, r.json["STATUS"].as_str()), (503, Some("ERROR")));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    slapd.restart();
    assert_eq!(popup(&app, "0722776772").await["CLIENTNAME"], DANA);
}

#[tokio::test]
async fn a_hanging_directory_is_a_503_within_the_deadline() {
    let slapd = Slapd::start();
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr: SocketAddr = silent.local_addr().expect("addr");
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let text = slapd
        .live_config_text("[lookup]\ndeadline_ms = 500")
        .replace(&slapd.ldaps_url(), &format!("ldaps://{silent_addr}"));
    let config = Config::parse(&text, slapd.dir.path()).expect("config");
    let app = Arc::new(App::open(config.http_setup()).await.expect("app"));
    for _ in 0..3 {
        let started = Instant::now();
        let r = send(&app, get("phone=0722776772")).await;
        assert_eq!(r.status, 503, "{}", r.json);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn rate_limits_answer_429_before_any_lookup() {
    let slapd = Slapd::start();
    let app = app(
        &slapd,
        "[rate_limit]\nper_ip_per_second = 1\nper_ip_burst = 2\nglobal_per_second = 1\nglobal_burst = 3",
    ).await;
    let from = |ip: &str| get("phone=0722776772").remote_addr(ip.parse().expect("addr"));
    assert_eq!(send(&app, from("192.0.2.1:1")).await.status, 200);
    assert_eq!(send(&app, from("192.0.2.1:1")).await.status, 200);
    let r = send(&app, from("192.0.2.1:1")).await;
    assert_eq!((r.status, r.json["STATUS"].as_str()), (429, Some("ERROR")));
    // Another client has its own allowance, until the global one runs out.
    assert_eq!(send(&app, from("192.0.2.2:1")).await.status, 200);
    assert_eq!(send(&app, from("192.0.2.3:1")).await.status, 429);
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let slapd = Slapd::start();
    std::fs::write(slapd.path("token"), "0123456789abcdef0123\n").expect("write");
    let app = app(&slapd, "[access]\ntoken_file = \"token\"").await;
    let cases = [
        (get("phone=0722776772"), 401),
        (get("phone=0722776772&token=wrong-wrong-wrong-wrong"), 401),
        (get("phone=0722776772&token=0123456789abcdef0123"), 200),
        (
            get("phone=0722776772").header("x-popup-token", "0123456789abcdef0123"),
            200,
        ),
        (
            get("phone=0722776772").header("authorization", "Bearer 0123456789abcdef0123"),
            200,
        ),
        (
            post("application/json", r#"{"phone":"0722776772"}"#).header("x-popup-token", "nope"),
            401,
        ),
    ];
    for (req, status) in cases {
        let r = send(&app, req).await;
        assert_eq!(r.status, status, "{}", r.json);
        if status == 401 {
            assert_eq!(r.json["STATUS"], "ERROR");
            assert!(
                !r.json.to_string().contains(DANA),
                "nothing is revealed: {}",
                r.json
            );
        } else {
            assert_eq!(r.json["CLIENTNAME"], DANA);
        }
    }
}

#[tokio::test]
async fn the_allow_list_uses_forwarded_for_only_from_trusted_proxies() {
    let slapd = Slapd::start();
    let app = app(
        &slapd,
        "[access]\nallow = [\"203.0.113.0/24\"]\ntrusted_proxies = [\"10.0.0.1\"]",
    )
    .await;
    let from = |peer: &str, xff: Option<&str>| {
        let req = get("phone=0722776772").remote_addr(peer.parse().expect("addr"));
        match xff {
            Some(x) => req.header("x-forwarded-for", x),
            None => req,
        }
    };
    let cases = [
        (from("203.0.113.9:1", None), 200),
        (from("198.51.100.1:1", None), 403),
        // A spoofed header from an untrusted peer is ignored.
        (from("198.51.100.1:1", Some("203.0.113.9")), 403),
        // Through the trusted proxy, the forwarded client decides.
        (from("10.0.0.1:1", Some("203.0.113.9")), 200),
        (from("10.0.0.1:1", Some("198.51.100.1")), 403),
        (from("10.0.0.1:1", Some("203.0.113.9, 198.51.100.1")), 403),
    ];
    for (req, status) in cases {
        let r = send(&app, req).await;
        assert_eq!(r.status, status, "{}", r.json);
        assert_eq!(r.status == 200, r.json["CLIENTNAME"] == DANA, "{}", r.json);
    }
    // A forwarded address that is not text is refused, not guessed at.
    let binary = warp::http::HeaderValue::from_bytes(b"203.0.113.9\xff").expect("value");
    let req = get("phone=0722776772")
        .remote_addr("10.0.0.1:1".parse().expect("addr"))
        .header("x-forwarded-for", binary);
    let r = send(&app, req).await;
    assert_eq!((r.status, r.json["STATUS"].as_str()), (400, Some("ERROR")));
}

#[tokio::test]
async fn health_and_readiness_reveal_nothing_and_need_no_token() {
    let mut slapd = Slapd::start();
    std::fs::write(slapd.path("token"), "0123456789abcdef0123").expect("write");
    let access = "[access]\ntoken_file = \"token\"\nallow = [\"203.0.113.0/24\"]";
    let index = app(&slapd, &format!("[index]\nready_max_age_s = 1\n{access}")).await;
    let live = live_app(&slapd, access).await;
    let probe = |path: &str| warp::test::request().path(path);
    for app in [&index, &live] {
        let r = send(app, probe("/healthz")).await;
        assert_eq!((r.status, &r.json), (200, &json!({"STATUS": "OK"})));
        let r = send(app, probe("/readyz")).await;
        assert_eq!((r.status, &r.json), (200, &json!({"STATUS": "OK"})));
    }
    slapd.stop();
    // Live mode needs the directory; index mode needs a young enough index.
    assert_eq!(send(&live, probe("/readyz")).await.status, 503);
    assert_eq!(send(&index, probe("/readyz")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = send(&index, probe("/readyz")).await;
    assert_eq!((r.status, r.json["STATUS"].as_str()), (503, Some("ERROR")));
    assert_eq!(send(&index, probe("/healthz")).await.status, 200);
}

/// Calls from a browser: with `server.cors_origins`, preflights and answers carry CORS headers
/// for listed origins only (and Private Network Access's when Chrome asks); without the key,
/// nothing changes.
#[tokio::test]
async fn browser_origins_listed_in_cors_origins_may_call() {
    let slapd = Slapd::start();
    let origin = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";
    let listed = app(
        &slapd,
        &format!("[server]\ncors_origins = [\"{origin}\", \"https://crm.example.com\"]"),
    )
    .await;
    let plain = routes(app(&slapd, "").await);
    let with_cors = routes(listed);
    let preflight = |from: &str| {
        warp::test::request()
            .method("OPTIONS")
            .path("/popup")
            .header("origin", from)
            .header("access-control-request-method", "GET")
            .header("access-control-request-private-network", "true")
            .remote_addr(CLIENT.parse().expect("addr"))
    };
    let r = preflight(origin).reply(&with_cors).await;
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], origin);
    assert_eq!(h["access-control-allow-methods"], "GET, POST");
    assert_eq!(h["access-control-allow-private-network"], "true");
    assert_eq!(h["vary"], "Origin");
    let r = preflight("https://evil.example.net")
        .reply(&with_cors)
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let call = |from: &str| {
        warp::test::request()
            .path("/popup?phone=0722776772")
            .header("origin", from)
            .remote_addr(CLIENT.parse().expect("addr"))
    };
    let r = call("https://crm.example.com").reply(&with_cors).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://crm.example.com"
    );
    let r = call("https://evil.example.net").reply(&with_cors).await;
    assert_eq!(
        r.status(),
        200,
        "the call itself is answered; the browser withholds it"
    );
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // A preflight elsewhere is no preflight; one where a token is required is answered
    // (browsers send no credentials with preflights).
    let elsewhere = preflight(origin).path("/other").reply(&with_cors).await;
    assert_eq!(elsewhere.status(), 404);
    std::fs::write(slapd.path("token"), "0123456789abcdef0123\n").expect("write");
    let guarded = routes(
        app(
            &slapd,
            &format!("[server]\ncors_origins = [\"{origin}\"]\n[access]\ntoken_file = \"token\""),
        )
        .await,
    );
    assert_eq!(preflight(origin).reply(&guarded).await.status(), 204);
    assert_eq!(call(origin).reply(&guarded).await.status(), 401);

    // Without the key: no preflight answer, no CORS header.
    let r = preflight(origin).reply(&plain).await;
    assert_eq!(r.status(), 405);
    let r = call(origin).reply(&plain).await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
