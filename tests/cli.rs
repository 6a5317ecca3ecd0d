//! The popup-ldap binary: check-config, lookup and serve, against a real slapd and the demo.

mod common;

use std::process::Output;

use common::{binary, client_for, free_port, terminate, Server, Slapd, TestCa};
use popup_ldap::directory::SourceSettings;
use popup_ldap::settings::Config;

fn run(args: &[&str], config: Option<&std::path::Path>) -> Output {
    let mut cmd = binary();
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(args).output().expect("run popup-ldap")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed with `code` and said `needle` on stderr.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "{needle:?} missing from: {}",
        stderr(out)
    );
}

#[test]
fn check_config_connects_binds_and_searches() {
    let slapd = Slapd::start();
    // Index mode (the default) with a state file: checking saves nothing.
    let state = slapd.path("index.state");
    let extra = format!("[index]\nstate_file = \"{}\"", state.display());
    let config = slapd.config_file("popup.toml", &slapd.config_text(&extra));
    let out = run(&["check-config"], Some(&config));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(!state.exists(), "check-config wrote the state file");
    for needle in [
        ": valid",
        "index             15 entries with 17 distinct numbers",
        &format!("connected to {}", slapd.ldaps_url()),
        "bound as          cn=popup,ou=services,dc=example,dc=com",
        "5 entries with a phone attribute (and more)",
        "uid=avi,ou=people,dc=example,dc=com",
        "telephonenumber: \"+972 (0)3 555 1234\" -> +97235551234",
        "directory hygiene: 17 entries with a phone attribute",
        "  telephonenumber        12 entries, 12 values",
        "  mobile                 6 entries, 6 values",
        "values with no number in them (1):",
        "uid=nobody,ou=people,dc=example,dc=com  telephonenumber: \"ask reception\"",
        "values that are a number in no country (matched only digit for digit) (1):",
        "uid=odd,ou=people,dc=example,dc=com  mobile: \"12345678901234567890\"",
        "numbers held by several entries (1):",
        "+972523334444: uid=lior,ou=people,dc=example,dc=com; uid=shira,ou=people,dc=example,dc=com",
        "OK",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn check_config_shows_a_few_values_of_each_sample_attribute() {
    let slapd = Slapd::start();
    let numbers: String = (0..40)
        .map(|n| format!("telephoneNumber: 03-60000{n:02}\n"))
        .collect();
    slapd.modify(&format!(
        "dn: uid=dana,ou=people,dc=example,dc=com\nchangetype: modify\n\
         add: telephoneNumber\n{numbers}"
    ));
    let config = slapd.config_file("popup.toml", &slapd.config_text(""));
    let out = run(&["check-config"], Some(&config));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let sample = text.split("directory hygiene").next().expect("sample part");
    assert!(
        sample.contains("uid=dana,ou=people,dc=example,dc=com"),
        "{text}"
    );
    let shown = sample.matches("telephonenumber: \"03-60000").count();
    assert!(
        shown <= 3,
        "{shown} values of one attribute shown:\n{sample}"
    );
    assert!(sample.contains("more values"), "{sample}");
}

#[test]
fn check_config_explains_directory_failures() {
    let slapd = Slapd::start();
    std::fs::write(slapd.path("wrong"), "nope").expect("write");
    let wrong_password = slapd.config_text("").replace("bind-password", "wrong");
    let wrong_ca = slapd.config_text("").replace("/ca.pem", "/other-ca.pem");
    for (text, needle) in [
        (wrong_password, "invalid credentials"),
        (wrong_ca, "invalid peer certificate"),
    ] {
        let config = slapd.config_file("popup.toml", &text);
        let out = run(&["check-config"], Some(&config));
        assert_fails(&out, 69, needle);
        assert!(!stderr(&out).contains(common::BIND_PASSWORD));
    }
}

#[test]
fn invalid_configs_exit_78_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, key) in [
        (
            "[directory]\nsource = \"ldif\"\nldif = \"x.ldif\"\nurl = \"ldaps://x\"",
            "url",
        ),
        (
            "[directory]\nsource = \"ldap\"\nurls = [\"ldap://dc1\"]\nbase_dn = \"dc=x\"",
            "directory.urls",
        ),
        (
            "[server]\nlisten = \"nowhere\"\n[directory]\nsource = \"ldif\"\nldif = \"x\"",
            "server.listen",
        ),
        ("not toml at all [", "TOML"),
        (
            "[server]\nlisten = \"127.0.0.1:8080\"\n[metrics]\nlisten = \"127.0.0.1:8080\"\n\
             [directory]\nsource = \"ldif\"\nldif = \"x\"",
            "metrics.listen: 127.0.0.1:8080 is where server.listen (127.0.0.1:8080) already listens",
        ),
        (
            "[log]\nlevel = \"debgu\"\n[directory]\nsource = \"ldif\"\nldif = \"x\"",
            "log.level",
        ),
        (
            "[access]\nallow = [\"10.1.2.3/8\"]\n[directory]\nsource = \"ldif\"\nldif = \"x\"",
            "write the network 10.0.0.0/8",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).expect("write");
        for cmd in [&["check-config"][..], &["serve"], &["lookup", "0722776772"]] {
            assert_fails(&run(cmd, Some(&path)), 78, key);
        }
    }
    let out = run(&["check-config"], Some(&dir.path().join("missing.toml")));
    assert_fails(&out, 78, "cannot read");
}

#[test]
fn a_closed_stdout_ends_the_output_without_a_panic() {
    for args in [&["check-config"][..], &["lookup", "0722776772"]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = binary()
            .args(args)
            .stdout(writer)
            .output()
            .expect("run popup-ldap");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
}

#[test]
fn check_config_refuses_https_files_that_serve_could_not_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("garbage.pem"), "not a certificate").expect("write");
    std::fs::write(dir.path().join("k.pem"), "not a key").expect("write");
    let path = dir.path().join("c.toml");
    for (cert, needle) in [
        ("missing.pem", "server.tls_cert_file"),
        ("garbage.pem", "server.tls_cert_file"),
    ] {
        std::fs::write(
            &path,
            format!(
                "[server]\ntls_cert_file = \"{cert}\"\ntls_key_file = \"k.pem\"\n\
                 [directory]\nsource = \"ldif\"\nldif = \"{}/config/demo.ldif\"",
                env!("CARGO_MANIFEST_DIR")
            ),
        )
        .expect("write");
        for cmd in [&["check-config"][..], &["serve"]] {
            let out = run(cmd, Some(&path));
            assert_fails(&out, 78, needle);
            assert!(stderr(&out).contains(cert), "{}", stderr(&out));
        }
    }
}

#[test]
fn a_broken_ldif_file_is_named_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("d.ldif"),
        "dn: uid=a\ncn: A\nchangetype: delete\n",
    )
    .expect("write");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[directory]\nsource = \"ldif\"\nldif = \"d.ldif\"").expect("write");
    let out = run(&["check-config"], Some(&path));
    assert_fails(&out, 69, "d.ldif line 3: change records");
}

#[test]
fn lookup_explains_the_match() {
    let slapd = Slapd::start();
    let config = slapd.config_file(
        "popup.toml",
        &slapd.live_config_text("[response]\nurl = \"https://intranet.example.com/people/{uid}\""),
    );
    let out = run(
        &["lookup", "03-555-1234", "--state", "Ringin"],
        Some(&config),
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for needle in [
        "caller            \"03-555-1234\" -> +97235551234",
        "forms             e164 +97235551234  national 035551234  digits 97235551234  significant 35551234",
        "filter            (&(objectClass=inetOrgPerson)(|(telephonenumber=*3*5*5*5*1*2*3*4*)(mobile=*3*5*5*5*1*2*3*4*)(homephone=*3*5*5*5*1*2*3*4*)))",
        &format!("server            {}", slapd.ldaps_url()),
        "entries           1 match, 1 returned by the filter but not holding the number",
        "1 (best) uid=avi,ou=people,dc=example,dc=com",
        "matched telephonenumber: \"+972 (0)3 555 1234\"",
        "rejected uid=decoy,ou=people,dc=example,dc=com",
        "telephonenumber: \"073-5551234\" -> +972735551234",
        "answer            HTTP 200 {\"STATUS\":\"OK\",\"CLIENTNAME\":\"אבי כהן\",\"COMPANY\":\"Voicenter\",\"URL\":\"https://intranet.example.com/people/avi\",\"TOTAL\":1}",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn lookup_explains_an_index_answer() {
    let slapd = Slapd::start();
    let config = slapd.config_file("popup.toml", &slapd.config_text(""));
    let out = run(&["lookup", "0523334444"], Some(&config));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for needle in [
        "source            in-memory index of 15 entries",
        &format!("synced 0 s ago from {}", slapd.ldaps_url()),
        "entries           2 match\n",
        "1 (best) uid=lior,ou=people,dc=example,dc=com\n      matched mobile: \"052-3334444\"",
        "2 uid=shira,ou=people,dc=example,dc=com\n      matched mobile: \"052 333 4444\"",
        "\"TOTAL\":2}",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(
        !text.contains("filter "),
        "an index answer sends no filter:\n{text}"
    );
}

#[test]
fn lookup_reports_bad_numbers_and_a_down_directory() {
    let mut slapd = Slapd::start();
    let config = slapd.config_file("popup.toml", &slapd.config_text(""));
    let out = run(&["lookup", "*)(uid=*"], Some(&config));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("HTTP 400 {\"STATUS\":\"ERROR\""),
        "{}",
        stdout(&out)
    );
    slapd.stop();
    let out = run(&["lookup", "0722776772"], Some(&config));
    assert_fails(&out, 69, "no directory server could be used");
}

#[test]
fn the_demo_serves_without_any_configuration_and_masks_numbers_in_logs() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = binary()
        .args(["serve", "--listen", &addr])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let server = client_for(&mut child, addr.parse().expect("addr"));
    let (status, body) = server.get("/popup?phone=0722776772&statusCall=Ringin");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["CLIENTNAME"], "דנה לוי");
    assert_eq!(json["TOTAL"], 1);
    let (status, body) = server.request(&format!(
        "POST /popup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        r#"{"phone":"972541234567","status":"Ringing"}"#.len(),
        r#"{"phone":"972541234567","status":"Ringing"}"#
    ));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"TOTAL\":1"), "{body}");
    // Values that try to start log lines of their own, or to colour a terminal.
    let forged = "%0A2026-01-01T00:00:00.000000Z%20%20INFO%20forged%20line";
    let (status, _) = server.get(&format!(
        "/popup?phone=0722776772&statusCall=Ringing&ivrid=x{forged}%1B[31m"
    ));
    assert_eq!(status, 200);
    let (status, _) = server.get(&format!("/popup?phone=07227{forged}"));
    assert_eq!(status, 400);
    terminate(&child);
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "SIGTERM is a clean stop: {:?}",
        out.status
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("*******772"), "{log}");
    assert!(
        !log.contains("0722776772") && !log.contains("972541234567"),
        "{log}"
    );
    assert!(
        log.lines()
            .all(|l| !l.contains("forged") || l.contains(" popup ")),
        "a value started a line of its own: {log}"
    );
    assert!(!log.contains('\u{1b}'), "{log}");
    assert!(
        log.contains(r#"ivrid="x\n2026-01-01T00:00:00.000000Z  INFO forged line\u{1b}[31m""#),
        "{log}"
    );
}

#[test]
fn serve_answers_from_slapd() {
    let slapd = Slapd::start();
    let server = slapd.serve("");
    let (status, body) = server.client.get("/popup?phone=%2B972-72-277-6772");
    assert_eq!(status, 200);
    assert!(body.contains("דנה לוי"), "{body}");
}

#[test]
fn shipped_configurations_are_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bind-password"), "x").expect("write");
    std::fs::write(dir.path().join("popup-token"), "0123456789abcdef0123").expect("write");
    let ca = TestCa::new("shipped").ca_pem;
    std::fs::write(dir.path().join("ad-root-ca.pem"), &ca).expect("write");
    std::fs::write(dir.path().join("ldap-ca.pem"), &ca).expect("write");
    let root = env!("CARGO_MANIFEST_DIR");
    for name in ["popup-ldap.example.toml", "openldap.example.toml"] {
        // Only where the secrets live changes.
        let text = std::fs::read_to_string(format!("{root}/config/{name}"))
            .expect("read")
            .replace("/etc/popup-ldap/", &format!("{}/", dir.path().display()))
            .replace(
                "bind_password_credential = \"bind-password\"",
                "bind_password_file = \"bind-password\"",
            )
            .replace(
                "token_credential = \"popup-token\"",
                "token_file = \"popup-token\"",
            );
        let config = Config::parse(&text, dir.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let SourceSettings::Ldap(ldap) = &config.scopes[0].directory.source else {
            panic!("{name}: not an LDAP source")
        };
        assert!(ldap.index.is_some(), "{name}: index mode is the default");
        // The TLS settings (the CA file) load.
        popup_ldap::directory::LdapDirectory::new(ldap, config.lookup_setup().wanted_attributes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let out = run(
        &["check-config"],
        Some(std::path::Path::new(&format!("{root}/config/demo.toml"))),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("in-memory index of 30 entries"),
        "{}",
        stdout(&out)
    );
}

#[cfg(unix)]
#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = binary()
        .args(["serve", "--listen", &addr])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut heard = Vec::new();
    let mut buf = [0u8; 512];
    while !(heard.iter().any(|m: &String| m.starts_with("READY=1"))
        && heard.iter().any(|m| m == "WATCHDOG=1"))
    {
        let n = socket.recv(&mut buf).expect("a notification within 10 s");
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let ready = heard
        .iter()
        .find(|m| m.starts_with("READY=1"))
        .expect("ready");
    assert!(
        ready.contains(&format!("STATUS=answering on {addr}/popup")),
        "{ready}"
    );
    // Ready means listening.
    let client = client_for(&mut child, addr.parse().expect("addr"));
    assert_eq!(client.get("/healthz").0, 200);
    terminate(&child);
    loop {
        let n = socket.recv(&mut buf).expect("STOPPING within 10 s");
        if &buf[..n] == b"STOPPING=1" {
            break;
        }
    }
    assert!(child.wait().expect("wait").success());
}

/// Parses the Prometheus text format into (series, value), failing on any malformed line.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let value = match value {
                "NaN" => f64::NAN,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
            };
            (series.to_owned(), value)
        })
        .collect()
}

#[test]
fn metrics_are_scraped_and_count_outcomes() {
    let slapd = Slapd::start();
    std::fs::write(slapd.path("token"), "0123456789abcdef0123").expect("write");
    let (port, metrics_port) = (free_port(), free_port());
    let config = slapd.config_file(
        "popup.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n{}",
            slapd.config_text("[access]\ntoken_file = \"token\"")
        ),
    );
    let server = Server::start(&config, format!("127.0.0.1:{port}").parse().expect("addr"));
    let token = "token=0123456789abcdef0123";
    for target in [
        format!("/popup?phone=0722776772&{token}"),
        format!("/popup?phone=0722776772&{token}"),
        format!("/popup?phone=0500000000&{token}"),
        format!("/popup?phone=*&{token}"),
        "/popup?phone=0722776772".to_owned(),
    ] {
        server.client.get(&target);
    }
    let scrape = common::Client(format!("127.0.0.1:{metrics_port}").parse().expect("addr"));
    let (status, body) = scrape.get("/metrics");
    assert_eq!(status, 200, "{body}");
    let series = parse_metrics(&body);
    let value = |name: &str| {
        series
            .iter()
            .find(|(s, _)| s == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{name} missing:\n{body}"))
    };
    assert_eq!(value("popup_requests_total{outcome=\"match\"}"), 2.0);
    assert_eq!(value("popup_requests_total{outcome=\"unknown\"}"), 1.0);
    assert_eq!(value("popup_requests_total{outcome=\"bad_request\"}"), 1.0);
    assert_eq!(value("popup_requests_total{outcome=\"unauthorized\"}"), 1.0);
    assert_eq!(value("popup_lookup_seconds_count"), 4.0);
    assert_eq!(value("popup_index_entries"), 15.0);
    assert_eq!(value("popup_syncs_total{result=\"ok\"}"), 1.0);
    assert!(value("popup_index_age_seconds") < 60.0);
    assert!(value("popup_sync_duration_seconds") > 0.0);
    // The scrape reveals no personal data.
    assert!(
        !body.contains("0722776772") && !body.contains("dana"),
        "{body}"
    );
}

#[test]
fn a_stderr_that_refuses_lines_costs_no_answer_and_the_lines_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, metrics_port) = (free_port(), free_port());
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
             [directory]\nsource = \"ldif\"\nldif = \"{}/config/demo.ldif\"",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .expect("write");
    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let server = Server::start_logging(&path, addr, full);
    let scrape = common::Client(format!("127.0.0.1:{metrics_port}").parse().expect("addr"));
    let lost = || {
        let (status, body) = scrape.get("/metrics");
        assert_eq!(status, 200, "{body}");
        parse_metrics(&body)
            .into_iter()
            .find(|(series, _)| series == "popup_log_lines_lost_total")
            .map(|(_, n)| n)
            .unwrap_or_else(|| panic!("no popup_log_lines_lost_total:\n{body}"))
    };
    // Lines are written within 50 ms of being logged; the start's lines first.
    let within = |at_least: f64| {
        let started = std::time::Instant::now();
        while lost() < at_least {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{} lines counted lost, expected {at_least}",
                lost()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    within(1.0);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = lost();
    for _ in 0..3 {
        let (status, body) = server.client.get("/popup?phone=0722776772");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"STATUS\":\"OK\""), "{body}");
    }
    // One popup line a request.
    within(before + 3.0);
}

#[test]
fn sigterm_finishes_the_requests_in_flight() {
    // A directory that accepts connections and never answers keeps every lookup in flight
    // until its deadline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("popup.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[directory]\nsource = \"ldap\"\nmode = \"live\"\n\
             urls = [\"ldaps://{silent_addr}\"]\ndanger_accept_invalid_certs = true\n\
             base_dn = \"dc=example,dc=com\"\n[lookup]\ndeadline_ms = 1500\n[rate_limit]\nenabled = false"
        ),
    )
    .expect("write");
    let server = Server::start(&config, format!("127.0.0.1:{port}").parse().expect("addr"));
    let client = server.client;
    let in_flight: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || client.get("/popup?phone=0722776772")))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(400));
    terminate(&server.child);
    for request in in_flight {
        let (status, body) = request.join().expect("a complete answer, not a reset");
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("\"STATUS\":\"ERROR\""), "{body}");
    }
    let mut server = server;
    assert!(server.child.wait().expect("wait").success());
}

#[test]
fn sighup_reloads_a_good_configuration_and_keeps_the_running_one_on_a_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let path = dir.path().join("popup.toml");
    // The file names another address: `serve --listen` overrides it, on every reload too.
    let write = |client_name: &str, extra: &str| {
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"127.0.0.1:9\"\n[directory]\nsource = \"ldif\"\n\
                 ldif = \"{}/config/demo.ldif\"\n[response]\nclient_name = \"{client_name}\"\n{extra}",
                env!("CARGO_MANIFEST_DIR")
            ),
        )
        .expect("write");
    };
    write("{displayName|cn}", "");
    let mut child = binary()
        .arg("--config")
        .arg(&path)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let client = client_for(
        &mut child,
        format!("127.0.0.1:{port}").parse().expect("addr"),
    );
    let name = || {
        let (status, body) = client.get("/popup?phone=0722776772");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).expect("json")["CLIENTNAME"].clone()
    };
    let until = |want: &str| {
        for _ in 0..50 {
            if name() == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("CLIENTNAME never became {want}");
    };
    assert_eq!(name(), "דנה לוי");

    write("{cn} ({o})", "");
    common::signal(&child, "-HUP");
    until("Dana Levi (Voicenter)");

    // An unknown key: the running configuration stays.
    write("{uid}", "[response.extra]\nnope = 1");
    common::signal(&child, "-HUP");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(name(), "Dana Levi (Voicenter)");

    terminate(&child);
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("SIGHUP: configuration reloaded"), "{log}");
    assert!(
        log.contains("SIGHUP: configuration not reloaded; keeping the running one"),
        "{log}"
    );
    assert!(!log.contains("change only with a restart"), "{log}");
}

#[test]
fn version_names_the_features_built_in() {
    let out = run(&["--version"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let features = if cfg!(feature = "kerberos") {
        "kerberos"
    } else {
        "none"
    };
    assert_eq!(
        stdout(&out).trim(),
        format!(
            "popup-ldap {} (features: {features})",
            env!("CARGO_PKG_VERSION")
        )
    );
}
