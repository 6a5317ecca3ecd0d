//! The admin console in a real headless Chromium, driven over WebDriver (chromedriver), served
//! by the binary from a real slapd: the login, the preview's notification and explanation, a
//! right-to-left name, a hostile display name, the status page; and without the token, 401s
//! that say nothing.
//!
//! With `POPUP_LDAP_SCREENSHOTS=<folder>` the pages are saved there as PNGs (README's pictures:
//! `POPUP_LDAP_SCREENSHOTS=docs/screenshots tests/run.sh` or the same before
//! `cargo test --features kerberos --test console`).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http_raw as http, Server, Slapd, PEOPLE};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// 24 characters: long enough for the console's minimum.
const TOKEN: &str = "admin-token-for-the-test";

/// Someone whose display name is markup: it must show as text.
const HOSTILE: &str = "
dn: uid=mallory,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: mallory
cn: Mallory
sn: Mallory
displayName: <script>document.title='owned'</script><b>bold</b>
o: <img src=x onerror=alert(1)>
telephoneNumber: 03-666-1234
";

struct Console {
    slapd: Slapd,
    popup: std::net::SocketAddr,
    /// Kept for its drop, which stops the binary.
    _server: Server,
    admin: std::net::SocketAddr,
}

impl Console {
    fn start() -> Self {
        Self::start_with("", "")
    }

    /// With `server` lines in `[server]` and `extra` lines after the configuration.
    fn start_with(server: &str, extra: &str) -> Self {
        let slapd = Slapd::start_with(&format!("{PEOPLE}\n{HOSTILE}"));
        std::fs::write(slapd.path("admin-token"), TOKEN).expect("token");
        let (port, admin) = (free_port(), free_port());
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{server}\n{}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             token_file = \"admin-token\"\n{extra}",
            slapd.config_text("")
        );
        let config = slapd.config_file("console.toml", &text);
        let server = Server::start(&config, ([127, 0, 0, 1], port).into());
        Console {
            slapd,
            popup: ([127, 0, 0, 1], port).into(),
            _server: server,
            admin: ([127, 0, 0, 1], admin).into(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
}

/// chromedriver on a free port, killed on drop.
struct Driver(Child, u16);

impl Driver {
    fn start() -> Self {
        let driver = common::installed("chromedriver", "apt-get install chromium chromium-driver");
        common::installed("chromium", "apt-get install chromium chromium-driver");
        let port = free_port();
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        common::wait_for_port_within(port, &mut child, "chromedriver", Duration::from_secs(10));
        Driver(child, port)
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--window-size=1280,900", "--lang=en-US"],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.1))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Saves the page when `POPUP_LDAP_SCREENSHOTS` names a folder.
async fn screenshot(browser: &Client, name: &str) {
    let Some(dir) = std::env::var_os("POPUP_LDAP_SCREENSHOTS") else {
        return;
    };
    let png = browser.screenshot().await.expect("screenshot");
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("save screenshot");
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Waits until the element's text is not empty, and returns it.
async fn wait_for_text(browser: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = text_of(browser, css).await;
        if !text.is_empty() {
            return text;
        }
        assert!(Instant::now() < deadline, "{css} stayed empty");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn preview(browser: &Client, phone: &str) {
    let field = browser.find(Locator::Css("#phone")).await.expect("#phone");
    field.clear().await.expect("clear");
    field.send_keys(phone).await.expect("type");
    // The explanation of the previous number is cleared first, so the wait sees the new one.
    browser
        .execute(
            "document.getElementById('explanation').textContent = '';",
            vec![],
        )
        .await
        .expect("clear");
    click(browser, "#look-up").await;
    wait_for_text(browser, "#explanation").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_previews_explains_and_reports_in_a_browser() {
    let console = Console::start();
    let driver = Driver::start();
    let browser = driver.browser().await;

    browser.goto(&console.url("/admin/")).await.expect("open");
    screenshot(&browser, "login").await;
    browser
        .find(Locator::Css("#token"))
        .await
        .expect("login form")
        .send_keys(TOKEN)
        .await
        .expect("type");
    click(&browser, "#login").await;
    browser
        .wait()
        .for_element(Locator::Css("#preview-form"))
        .await
        .expect("the console after logging in");

    // Dana: a Hebrew name, laid out right to left.
    preview(&browser, "0722776772").await;
    assert_eq!(text_of(&browser, "#bubble-name").await, "דנה לוי");
    assert_eq!(text_of(&browser, "#bubble-company").await, "Voicenter");
    let direction = browser
        .find(Locator::Css("#bubble-name"))
        .await
        .expect("name")
        .css_value("direction")
        .await
        .expect("direction");
    assert_eq!(direction, "rtl");
    let why = text_of(&browser, "#explanation").await;
    assert!(
        why.contains("uid=dana,ou=people,dc=example,dc=com"),
        "{why}"
    );
    assert!(why.contains("matched telephonenumber"), "{why}");
    let answer = text_of(&browser, "#answer").await;
    assert!(answer.contains("\"TOTAL\": 1"), "{answer}");
    // Shareable: the URL says what was previewed.
    let url = browser.current_url().await.expect("url");
    assert!(
        url.as_str().ends_with("#phone=0722776772&format=get"),
        "{url}"
    );
    screenshot(&browser, "preview").await;

    // Markup in the directory stays text, and runs nothing.
    preview(&browser, "036661234").await;
    assert_eq!(
        text_of(&browser, "#bubble-name").await,
        "<script>document.title='owned'</script><b>bold</b>"
    );
    let injected = browser
        .execute(
            "return document.querySelectorAll('#bubble script, #bubble b, #bubble img').length;",
            vec![],
        )
        .await
        .expect("count");
    assert_eq!(injected, json!(0));
    assert_ne!(browser.title().await.expect("title"), "owned");

    // Nobody: no notification.
    preview(&browser, "0509999999").await;
    let none = browser
        .find(Locator::Css("#bubble-none"))
        .await
        .expect("no-notification note");
    assert!(none.is_displayed().await.expect("displayed"));

    // Two calls from "Voicenter", for the counters and the recent calls.
    for phone in ["0722776772", "0509999999"] {
        let (status, _) = common::http(
            console.popup,
            &format!("GET /popup?phone={phone} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 200);
    }

    // The status page: the index's size, the server, the counters, the chart, the calls.
    click(&browser, "a[data-tab=status]").await;
    let summary = wait_for_text(&browser, "#status-summary").await;
    // The fixture's 15 people with a usable number, and Mallory.
    assert!(
        summary.contains("Index entries\n16") || summary.contains("Index entries 16"),
        "{summary}"
    );
    assert!(
        summary.contains("Ready\nyes") || summary.contains("Ready yes"),
        "{summary}"
    );
    let servers = wait_for_text(&browser, "#servers tbody").await;
    assert!(servers.contains(&console.slapd.ldaps_url()), "{servers}");
    assert!(servers.contains("active"), "{servers}");
    let bars = browser
        .find_all(Locator::Css("#chart svg rect"))
        .await
        .expect("chart");
    assert!(!bars.is_empty(), "no bar in the chart");
    let recent = wait_for_text(&browser, "#recent tbody").await;
    // Newest first; numbers masked as in the log, never whole.
    assert!(
        recent.contains("unknown") && recent.contains("match"),
        "{recent}"
    );
    assert!(recent.contains("*******772"), "{recent}");
    assert!(!recent.contains("0722776772"), "{recent}");
    screenshot(&browser, "status").await;

    // Directory hygiene: the fixture's value with no number, in a table that filters.
    click(&browser, "a[data-tab=hygiene]").await;
    let findings = wait_for_text(&browser, "#findings tbody").await;
    assert!(
        findings.contains("uid=nobody,ou=people,dc=example,dc=com")
            && findings.contains("ask reception"),
        "{findings}"
    );
    let repairs: u32 = text_of(&browser, "#repairs")
        .await
        .parse()
        .expect("a count");
    assert!(repairs > 5, "{repairs}");
    browser
        .find(Locator::Css("#hygiene-filter"))
        .await
        .expect("filter")
        .send_keys("nobody")
        .await
        .expect("type");
    let rows = browser
        .find_all(Locator::Css("#findings tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    browser
        .find(Locator::Css("#hygiene-filter"))
        .await
        .expect("filter")
        .clear()
        .await
        .expect("clear");
    screenshot(&browser, "hygiene").await;
    browser.close().await.expect("close");
}

/// The repair LDIF, applied with ldapmodify, leaves nothing to repair; lookups find the
/// people whose values it rewrote.
#[test]
fn the_repair_ldif_applies_and_leaves_nothing_to_repair() {
    let console = Console::start();
    let (status, head_and_ldif) = http(
        console.admin,
        &format!(
            "GET /admin/api/repair.ldif HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Connection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 200);
    let ldif = head_and_ldif
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .expect("body");
    assert!(ldif.contains("changetype: modify"), "{ldif}");
    assert!(
        ldif.contains("telephoneNumber: +972722776772")
            || ldif.contains("telephonenumber: +972722776772"),
        "{ldif}"
    );
    console.slapd.modify(ldif);
    // The same report from the command line, on the repaired directory: nothing left.
    let out_file = console.slapd.path("repair-again.ldif");
    let out = common::binary()
        .arg("--config")
        .arg(console.slapd.path("console.toml"))
        .args(["hygiene", "--repair-ldif"])
        .arg(&out_file)
        .output()
        .expect("hygiene");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("repair LDIF: 0 values of 0 entries"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&out_file).expect("file"), "");
    // Dana, rewritten to +972722776772, is found from the repaired directory.
    let out = common::binary()
        .arg("--config")
        .arg(console.slapd.path("console.toml"))
        .args(["lookup", "0722776772"])
        .output()
        .expect("lookup");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("matched telephonenumber: \"+972722776772\""),
        "{text}"
    );
}

#[test]
fn without_the_token_nothing_is_shown() {
    let console = Console::start();
    for path in [
        "/admin/",
        "/admin/api/status",
        "/admin/api/preview?phone=0722776772",
    ] {
        let (status, body) = http(
            console.admin,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 401, "{path}: {body}");
        for secret in ["Dana", "דנה", "ldaps://", "entries"] {
            assert!(!body.contains(secret), "{path} leaks {secret:?}: {body}");
        }
        assert!(body.contains("content-security-policy"), "{body}");
    }
    let (status, _) = http(
        console.admin,
        "GET /admin/api/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-wrong-token\r\n\
         Connection: close\r\n\r\n",
    );
    assert_eq!(status, 401);
    let (status, body) = http(
        console.admin,
        &format!(
            "GET /admin/api/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Connection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"entries\":"), "{body}");
    // A wrong token in the form: 401, no cookie.
    let form = "token=not-the-token-at-all";
    let (status, body) = http(
        console.admin,
        &format!(
            "POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    );
    assert_eq!(status, 401);
    assert!(!body.to_ascii_lowercase().contains("set-cookie"), "{body}");
}

/// Recent calls keep the whole number only when the log does, and not at all when turned off.
#[test]
fn recent_calls_follow_the_logs_masking() {
    let get = |console: &Console, path: &str| {
        common::http(
            console.admin,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
        .1
    };
    let call = |console: &Console| {
        common::http(
            console.popup,
            "GET /popup?phone=0722776772 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    };
    let console = Console::start_with("", "[log]\nmask_numbers = false\n");
    call(&console);
    let recent = get(&console, "/admin/api/recent");
    assert!(recent.contains("\"phone\":\"0722776772\""), "{recent}");
    let console = Console::start_with("", "recent_calls = false\n");
    call(&console);
    let recent = get(&console, "/admin/api/recent");
    assert!(
        recent.contains("\"enabled\":false") && recent.contains("\"calls\":[]"),
        "{recent}"
    );
}

/// A page served from `port` (another origin than the endpoint's) that calls the popup path
/// with `fetch` and puts the outcome in its title.
fn serve_page(port: u16, endpoint: std::net::SocketAddr) {
    let page = format!(
        "<!doctype html><title>waiting</title><script>\
         fetch('http://{endpoint}/popup?phone=0722776772')\
         .then((r) => r.json()).then((j) => {{ document.title = 'ok:' + j.CLIENTNAME; }})\
         .catch((e) => {{ document.title = 'blocked'; }});</script>"
    );
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("page port");
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
}

/// What the page's `fetch` got, once it has finished.
async fn fetched(browser: &Client, url: &str) -> String {
    browser.goto(url).await.expect("open the page");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let title = browser.title().await.expect("title");
        if title != "waiting" {
            return title;
        }
        assert!(Instant::now() < deadline, "the page's fetch never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// In Chromium: a page on a listed origin reads the answer of a cross-origin `fetch`; a page
/// on another origin is blocked by the browser.
#[tokio::test(flavor = "multi_thread")]
async fn a_listed_origin_calls_the_endpoint_from_the_browser() {
    let (listed, other) = (free_port(), free_port());
    let console = Console::start_with(
        &format!("cors_origins = [\"http://127.0.0.1:{listed}\"]"),
        "",
    );
    serve_page(listed, console.popup);
    serve_page(other, console.popup);
    let driver = Driver::start();
    let browser = driver.browser().await;
    let title = fetched(&browser, &format!("http://127.0.0.1:{listed}/")).await;
    assert_eq!(title, "ok:דנה לוי");
    let title = fetched(&browser, &format!("http://127.0.0.1:{other}/")).await;
    assert_eq!(title, "blocked");
    browser.close().await.expect("close");
}
