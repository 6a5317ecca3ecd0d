//! Active Directory, as Samba's AD DC implements it, reached like a remote domain controller:
//! the shipped AD example configuration with only the host, credentials and base DN changed,
//! over LDAPS and StartTLS, as a low-privilege service account.

mod common;

use std::time::{Duration, Instant};

use common::samba::{self, SambaDc};
use common::{free_port, Client, Relay, Server, Slapd};
use popup_ldap::call::CallDetails;
use popup_ldap::directory::Source;
use popup_ldap::lookup::{Lookup, PopupAnswer};
use popup_ldap::settings::Config;

/// The shipped AD example pointed at the test DC: only the host, the CA, the credentials and
/// the base DN change (and the token and HTTPS keys are left out: these tests call the lookup
/// directly). `extra` replaces further lines.
fn ad_example(dc: &SambaDc, extra: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/popup-ldap.example.toml"
    ))
    .expect("example");
    let urls = format!("urls = [\"{}\"]", dc.ldaps_url());
    let bind = format!("bind_dn = \"{}\"", samba::SERVICE);
    let base = format!("base_dn = \"{}\"", samba::BASE_DN);
    let password = format!(
        "bind_password_file = \"{}\"",
        dc.path("bind-password").display()
    );
    let ca = dc.path("ca.pem").display().to_string();
    let changes = [
        (
            "urls = [\"ldaps://dc1.example.com\", \"ldaps://dc2.example.com\"]",
            urls.as_str(),
        ),
        ("/etc/popup-ldap/ad-root-ca.pem", ca.as_str()),
        (
            "bind_dn = \"CN=svc-popup,OU=Service Accounts,DC=example,DC=com\"",
            bind.as_str(),
        ),
        (
            "bind_password_credential = \"bind-password\"",
            password.as_str(),
        ),
        ("base_dn = \"DC=example,DC=com\"", base.as_str()),
        ("token_credential = \"popup-token\"", ""),
        ("tls_cert_file = \"/etc/ssl/certs/popup-ldap.pem\"", ""),
        ("tls_key_file = \"/etc/ssl/private/popup-ldap.key\"", ""),
    ];
    for (from, to) in changes.iter().chain(extra) {
        assert!(text.contains(from), "the AD example no longer has {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// `text` without one of its `[section]`s.
fn without_section(text: &str, section: &str) -> String {
    let header = format!("[{section}]");
    let mut skipping = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with('[') {
            skipping = line.trim() == header;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

async fn lookup(dc: &SambaDc, extra: &[(&str, &str)]) -> Lookup {
    let mut text = ad_example(dc, extra);
    if text.contains("mode = \"live\"") {
        text = without_section(&text, "index");
    }
    let config = Config::parse(&text, &dc.path("")).expect("config");
    Lookup::open(config.lookup_setup()).await.expect("lookup")
}

async fn answer(lookup: &Lookup, phone: &str) -> PopupAnswer {
    let call = CallDetails {
        phone: Some(phone.to_owned()),
        ..CallDetails::default()
    };
    lookup.answer(&call).await.expect("answer").popup.clone()
}

/// Everyone the fixture holds answers with the right name; disabled accounts never do.
async fn answers_like_the_directory(lookup: &Lookup) {
    for (phone, name) in samba::NAMED {
        let found = answer(lookup, phone).await;
        assert_eq!(found.client_name.as_deref(), Some(*name), "{phone}");
        assert_eq!(found.total, 1, "{phone}");
    }
    let dana = answer(lookup, "+97235551234").await;
    assert_eq!(dana.company.as_deref(), Some("אקמה בע\"מ"));
    // Each phone attribute of the example, in the formats the fixture wrote.
    for (phone, i) in [
        ("0546000012", 12),    // mobile: +972 (0)54 6000012
        ("20013", 13),         // ipPhone: 20013
        ("026000014", 14),     // otherTelephone: 972-2-6000014
        ("086000015", 15),     // homePhone: 08.6000015 ext. 9
        ("035000016", 16),     // telephoneNumber: (03) 5000016
        ("+97235000017", 17),  // telephoneNumber: +972 3 5000017
        ("972-3-5000018", 18), // telephoneNumber: 03-5000018
    ] {
        let found = answer(lookup, phone).await;
        assert_eq!(found.client_name, Some(samba::user_name(i)), "{phone}");
    }
    assert_eq!(
        answer(lookup, "0547000003").await.client_name.as_deref(),
        Some("Contact 3")
    );
    // Digits that are no Israeli number and carry no country code: nobody, not New York.
    assert_eq!(answer(lookup, "2125550132").await.total, 0);
    // London's national digits dialled as if Israeli: not the Londoner.
    assert_eq!(answer(lookup, "02079460031").await.total, 0);
    // Disabled: user10 (every tenth) and the departed employee.
    assert_eq!(answer(lookup, &samba::user_number(10)).await.total, 0);
    assert_eq!(answer(lookup, "035559999").await.total, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_ad_example_indexes_enabled_users_and_contacts_over_ldaps() {
    let dc = samba::shared();
    let lookup = lookup(dc, &[]).await;
    let Some(Source::Synced(synced)) = lookup.directory().sources().next() else {
        panic!("the AD example runs in index mode")
    };
    // Paged past 1,000 entries: every enabled user with a number and every contact.
    let enabled = samba::USERS - samba::USERS / 10 + 6;
    assert_eq!(synced.counts().0, enabled + samba::CONTACTS + 1);
    answers_like_the_directory(&lookup).await;

    let url = answer(&lookup, "035551234")
        .await
        .url
        .expect("URL from objectGUID");
    let guid = url.rsplit("guid=").next().expect("guid");
    let groups: Vec<usize> = guid.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{url}");
    assert!(
        guid.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
        "{url}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn live_lookups_over_starttls_skip_search_references() {
    let dc = samba::shared();
    let urls = format!("urls = [\"{}\"]", dc.ldap_url());
    let live = lookup(
        dc,
        &[
            (&format!("urls = [\"{}\"]", dc.ldaps_url()), urls.as_str()),
            ("starttls = false", "starttls = true"),
            ("mode = \"index\"", "mode = \"live\""),
        ],
    )
    .await;
    assert!(matches!(
        live.directory().sources().next(),
        Some(Source::Live(_))
    ));
    // The domain root answers searches with references to other partitions.
    let raw = dc.ldapsearch(&["-b", samba::BASE_DN, "(cn=user1)", "cn"]);
    assert!(
        raw.contains("\nref: ldap"),
        "no search reference to skip: {raw}"
    );
    answers_like_the_directory(&live).await;
}

/// popup-ldap serving the AD example on a free port (plain HTTP), with metrics, its log in a
/// file.
struct Served {
    server: Server,
    metrics: Client,
    log: tempfile::NamedTempFile,
    /// Kept for the service to read again on SIGHUP.
    _config: tempfile::NamedTempFile,
}

impl Served {
    fn start(dc: &SambaDc, extra: &[(&str, &str)]) -> Self {
        let (port, metrics_port) = (free_port(), free_port());
        let listen = format!("listen = \"127.0.0.1:{port}\"");
        let mut changes = vec![("listen = \"0.0.0.0:8443\"", listen.as_str())];
        changes.extend_from_slice(extra);
        let mut text = ad_example(dc, &changes);
        if text.contains("mode = \"live\"") {
            text = without_section(&text, "index");
        }
        text.push_str(&format!(
            "\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
        ));
        let config = tempfile::NamedTempFile::new().expect("config");
        std::fs::write(config.path(), text).expect("write config");
        let log = tempfile::NamedTempFile::new().expect("log");
        let server = Server::start_logging(
            config.path(),
            format!("127.0.0.1:{port}").parse().expect("addr"),
            log.reopen().expect("log file"),
        );
        let metrics = Client(format!("127.0.0.1:{metrics_port}").parse().expect("addr"));
        Served {
            server,
            metrics,
            log,
            _config: config,
        }
    }

    /// CLIENTNAME and TOTAL for a caller, failing on anything but a 200.
    /// Waits until every number answers as `expected`, at most one poll (1 s), the sync
    /// itself and a margin for a loaded machine after `changed`.
    fn answers_within(&self, expected: &[(String, (Option<String>, u64))], changed: Instant) {
        loop {
            let now: Vec<_> = expected.iter().map(|(p, _)| self.popup(p)).collect();
            if now.iter().zip(expected).all(|(n, (_, e))| n == e) {
                return;
            }
            assert!(
                changed.elapsed() < Duration::from_secs(5),
                "AD changes not in the index after a poll: {now:?}"
            );
            // At most 16 calls a second: within the example's rate limit.
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn popup(&self, phone: &str) -> (Option<String>, u64) {
        let (status, body) = self.server.client.get(&format!("/popup?phone={phone}"));
        assert_eq!(status, 200, "{phone}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        (
            json["CLIENTNAME"].as_str().map(str::to_owned),
            json["TOTAL"].as_u64().expect("TOTAL"),
        )
    }

    /// One metric's value for a server label.
    fn metric(&self, name: &str, server: &str) -> f64 {
        let (_, body) = self.metrics.get("/metrics");
        let prefix = format!("{name}{{server=\"{server}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{prefix} not in\n{body}"))
            .parse()
            .expect("number")
    }

    /// Whether the metric has a value for a server label.
    fn has_metric(&self, name: &str, server: &str) -> bool {
        let (_, body) = self.metrics.get("/metrics");
        body.contains(&format!("{name}{{server=\"{server}\"}} "))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).expect("log")
    }

    /// The log once it has `needle` (the log is written in batches).
    fn log_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Calls at ten a second for `calls` calls, running `midway` after a third of them:
    /// every call must bring up the right name.
    fn steady_calls(&self, calls: usize, midway: impl FnOnce()) {
        let mut midway = Some(midway);
        for n in 0..calls {
            if n == calls / 3 {
                if let Some(midway) = midway.take() {
                    midway();
                }
            }
            let i = 1 + (n * 7) % 600 * 2;
            let started = Instant::now();
            assert_eq!(
                self.popup(&samba::user_number(i)),
                (Some(samba::user_name(i)), 1),
                "call {n}"
            );
            std::thread::sleep(Duration::from_millis(100).saturating_sub(started.elapsed()));
        }
    }
}

/// Unusable domain controllers: one that refuses connections, one that is down (no host at
/// its address), one that accepts connections and never answers, and one whose certificate
/// is signed by a CA the configuration does not trust. The relay and slapd keep the last two
/// up.
fn broken_dcs(dc: &SambaDc) -> ([String; 4], Relay, Slapd) {
    let hanging = Relay::hanging();
    let wrong_ca = Slapd::start();
    let urls = [
        format!("ldaps://127.0.0.1:{}", free_port()),
        format!("ldaps://{}", dc.down_address),
        hanging.ldaps_url(),
        wrong_ca.ldaps_url(),
    ];
    (urls, hanging, wrong_ca)
}

#[test]
fn a_broken_first_dc_costs_no_popup_in_either_mode() {
    let dc = samba::shared();
    let good = dc.ldaps_url();
    let (broken, _hanging, _wrong_ca) = broken_dcs(dc);
    for (n, url) in broken.into_iter().enumerate() {
        // The down and hanging DCs never answer: the next DC is tried alongside after the
        // stagger (250 ms), not after the connect timeout (1,500 ms).
        let silent = n == 1 || n == 2;
        for mode in ["mode = \"index\"", "mode = \"live\""] {
            let urls = format!("urls = [\"{url}\", \"{good}\"]");
            let from = format!("urls = [\"{good}\"]");
            let served = Served::start(dc, &[(&from, &urls), ("mode = \"index\"", mode)]);
            served.steady_calls(15, || {});
            assert_eq!(
                served.metric("popup_directory_server_active", &good),
                1.0,
                "{url} {mode}"
            );
            assert_eq!(
                served.metric("popup_directory_server_active", &url),
                0.0,
                "{url} {mode}"
            );
            assert_eq!(
                served.metric("popup_directory_connect_failures_total", &url),
                1.0,
                "{url} {mode}: tried once, then left alone"
            );
            let log = served.log_with(&format!("server={good}"));
            assert!(
                log.contains(&format!("server={good}")),
                "the request log names the DC that answered ({url} {mode}):\n{log}"
            );
            let overtaken = format!("server={url} answered={good}");
            // A down host is silent until the kernel's neighbour discovery gives up on it;
            // once that has failed (an earlier run in this test), connecting fails at once
            // with "No route to host" instead, which costs no wait either.
            let refused_at_once = n == 1 && log.contains("No route to host");
            assert_eq!(
                log.contains(&overtaken) || refused_at_once,
                silent,
                "{overtaken}:\n{log}"
            );
        }
    }
}

#[test]
fn a_dc_that_goes_down_or_hangs_during_calls_costs_no_popup() {
    let dc = samba::shared();
    let good = dc.ldaps_url();
    for (failure, mode) in [
        ("down", "mode = \"live\""),
        ("hangs", "mode = \"live\""),
        ("hangs", "mode = \"index\""),
    ] {
        let relay = Relay::to(format!("{}:636", dc.address).parse().expect("addr"));
        let urls = format!("urls = [\"{}\", \"{good}\"]", relay.ldaps_url());
        let from = format!("urls = [\"{good}\"]");
        let served = Served::start(dc, &[(&from, &urls), ("mode = \"index\"", mode)]);
        if mode.contains("live") {
            // The first DC serves until it fails.
            served.popup(&samba::user_number(1));
            assert_eq!(
                served.metric("popup_directory_server_active", &relay.ldaps_url()),
                1.0
            );
        }
        served.steady_calls(30, || {
            if failure == "down" {
                relay.cut()
            } else {
                relay.freeze()
            }
        });
        if mode.contains("live") {
            assert_eq!(
                served.metric("popup_directory_server_active", &good),
                1.0,
                "{failure}"
            );
        }
    }
}

#[test]
fn changes_in_ad_show_up_within_one_poll() {
    let dc = samba::shared();
    let served = Served::start(dc, &[("poll_interval_s = 60", "poll_interval_s = 1")]);
    let log = served.log_with("index bound to this domain controller's uSNChanged");
    assert!(
        log.contains("index bound to this domain controller's uSNChanged"),
        "{log}"
    );
    assert!(log.contains("invocation_id="), "{log}");

    let base = samba::BASE_DN;
    // A new user, a changed number, a disabled account.
    dc.modify(&format!(
        "dn: CN=newcomer,CN=Users,{base}\nchangetype: add\nobjectClass: user\n\
         sAMAccountName: newcomer\nuserAccountControl: 544\ndisplayName: Newcomer\n\
         telephoneNumber: 03-777-0001\n\n\
         dn: {}\nchangetype: modify\nreplace: telephoneNumber\ntelephoneNumber: 03-777-0003\n-\n\n\
         dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 546\n-\n",
        samba::user_dn(3),
        samba::user_dn(5),
    ));
    let changed = Instant::now();
    let expected = [
        ("037770001", (Some("Newcomer".to_owned()), 1)),
        ("037770003", (Some(samba::user_name(3)), 1)),
        (samba::user_number(3).as_str(), (None, 0)),
        (samba::user_number(5).as_str(), (None, 0)),
    ]
    .map(|(p, a)| (p.to_owned(), a));
    served.answers_within(&expected, changed);
    let log = served.log();
    assert!(!log.contains("reading everything again"), "{log}");
}

/// On the other DC: the shared one's tests count its people.
#[test]
fn deletions_in_ad_show_up_within_one_poll() {
    let dc = samba::other();
    let served = Served::start(dc, &[("poll_interval_s = 60", "poll_interval_s = 1")]);
    served.log_with("index bound to this domain controller's uSNChanged");
    let base = samba::BASE_DN;
    assert_eq!(
        served.popup(&samba::user_number(1102)),
        (Some(samba::user_name(1102)), 1)
    );
    // A user and a contact deleted (read from their tombstones, which the service account
    // may read), and a user deleted and made again under the same name with another number.
    dc.modify(&format!(
        "dn: {}\nchangetype: delete\n\n\
         dn: CN=Contact 19,CN=Users,{base}\nchangetype: delete\n\n\
         dn: {}\nchangetype: delete\n\n\
         dn: {}\nchangetype: add\nobjectClass: user\nsAMAccountName: again1104\n\
         userAccountControl: 544\ndisplayName: Back Again\ntelephoneNumber: 03-777-1104\n",
        samba::user_dn(1102),
        samba::user_dn(1104),
        samba::user_dn(1104),
    ));
    let changed = Instant::now();
    let expected = [
        (samba::user_number(1102), (None, 0)),
        ("0547000019".to_owned(), (None, 0)),
        (samba::user_number(1104), (None, 0)),
        ("037771104".to_owned(), (Some("Back Again".to_owned()), 1)),
    ];
    // Within a poll: never the presence check (5 min).
    served.answers_within(&expected, changed);
    let log = served.log();
    assert!(!log.contains("kind=\"full\""), "{log}");
}

#[test]
fn another_dc_answering_means_reading_everything_again() {
    let (dc, other) = (samba::shared(), samba::other());
    // Only the other DC has this person: a delta with the first DC's USNs could miss it.
    other.modify(&format!(
        "dn: CN=only-on-dc2,CN=Users,{}\nchangetype: add\nobjectClass: user\n\
         sAMAccountName: only-on-dc2\nuserAccountControl: 544\ndisplayName: Only On DC2\n\
         telephoneNumber: 03-777-0222\n",
        samba::BASE_DN
    ));
    let relay = Relay::to(format!("{}:636", dc.address).parse().expect("addr"));
    let urls = format!(
        "urls = [\"{}\", \"{}\"]",
        relay.ldaps_url(),
        other.ldaps_url()
    );
    // Both DCs' certificates come from their own test CAs: trust both.
    let both = dc.path("both-cas.pem");
    std::fs::write(&both, format!("{}{}", dc.ca.ca_pem, other.ca.ca_pem)).expect("write");
    let ca = dc.path("ca.pem").display().to_string();
    let served = Served::start(
        dc,
        &[
            (&format!("urls = [\"{}\"]", dc.ldaps_url()), &urls),
            (&ca, &both.display().to_string()),
            ("poll_interval_s = 60", "poll_interval_s = 1"),
        ],
    );
    assert_eq!(served.popup("037770222"), (None, 0));
    assert_eq!(served.metric("popup_index_source", &relay.ldaps_url()), 1.0);
    relay.cut();
    let switched = Instant::now();
    while served.popup("037770222") != (Some("Only On DC2".to_owned()), 1) {
        assert!(
            switched.elapsed() < Duration::from_secs(10),
            "no full resync from the other DC:\n{}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = served.log_with("reading everything again");
    assert!(log.contains("reading everything again"), "{log}");
    // Entries show up as the resync reads them; the source changes once it has finished.
    while !served.has_metric("popup_index_source", &other.ldaps_url()) {
        assert!(
            switched.elapsed() < Duration::from_secs(20),
            "{}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(served.metric("popup_index_source", &other.ldaps_url()), 1.0);
    served.steady_calls(5, || {});
}

#[test]
fn check_config_and_lookup_work_on_the_ad_example() {
    let dc = samba::shared();
    let config = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(config.path(), ad_example(dc, &[])).expect("write");
    let run = |args: &[&str]| {
        let out = common::binary()
            .arg("--config")
            .arg(config.path())
            .args(args)
            .output()
            .expect("run popup-ldap");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(samba::SERVICE_PASSWORD));
        text
    };
    let checked = run(&["check-config"]);
    assert!(
        checked.contains(&format!("connected to {}", dc.ldaps_url())),
        "{checked}"
    );
    assert!(checked.contains(samba::SERVICE), "{checked}");
    let looked_up = run(&["lookup", "03-555-1234"]);
    assert!(
        looked_up.contains("\"CLIENTNAME\":\"דנה כהן\""),
        "{looked_up}"
    );
}

/// The AD example's commented scopes, taken in: staff (users in two OUs) before contacts (a
/// third), each answered with its own templates, in index and live mode. On the other DC: the
/// shared one's tests count its people.
#[tokio::test(flavor = "multi_thread")]
async fn the_examples_scopes_answer_staff_before_contacts() {
    let dc = samba::other();
    let base = samba::BASE_DN;
    let add = |dn: &str, lines: &str| format!("dn: {dn},{base}\nchangetype: add\n{lines}\n\n");
    let user = "objectClass: user\nuserAccountControl: 544\n";
    dc.modify(
        &[
            add("OU=Staff", "objectClass: organizationalUnit"),
            add("OU=London,OU=Staff", "objectClass: organizationalUnit"),
            add("OU=Contacts", "objectClass: organizationalUnit"),
            add(
                "CN=Ruth Staff,OU=Staff",
                &format!("{user}sAMAccountName: ruth.staff\ndisplayName: Ruth Staff\ndepartment: Sales\ntelephoneNumber: 03-888-0001"),
            ),
            add(
                "CN=Ben London,OU=London,OU=Staff",
                &format!("{user}sAMAccountName: ben.london\ndisplayName: Ben London\ndepartment: Support\ntelephoneNumber: +44 20 7946 0999"),
            ),
            add(
                "CN=Gone Staff,OU=Staff",
                "objectClass: user\nuserAccountControl: 546\nsAMAccountName: gone.staff\ndisplayName: Gone Staff\ntelephoneNumber: 03-888-0003",
            ),
            add(
                "CN=Ruth Desk,OU=Contacts",
                "objectClass: contact\ndisplayName: Ruth Desk\ncompany: Partner Co\nmail: desk@partner.example\ntelephoneNumber: 03-888-0001",
            ),
            add(
                "CN=Zoe Contact,OU=Contacts",
                "objectClass: contact\ndisplayName: Zoe Contact\ncompany: Zoe Ltd\nmail: zoe@zoe.example\ntelephoneNumber: 03-888-0002",
            ),
        ]
        .concat(),
    );
    let text = with_the_examples_scopes(&ad_example(dc, &[]));
    let live = without_section(
        &text.replace("mode = \"index\"", "mode = \"live\""),
        "index",
    );
    for text in [text, live] {
        let config = Config::parse(&text, &dc.path("")).expect("config");
        assert_eq!(config.scopes.len(), 2);
        let lookup = Lookup::open(config.lookup_setup()).await.expect("lookup");
        // In both scopes: staff answers, TOTAL counts both.
        let ruth = answer(&lookup, "038880001").await;
        assert_eq!(ruth.client_name.as_deref(), Some("Ruth Staff"));
        assert_eq!(ruth.company.as_deref(), Some("Example Ltd · Sales"));
        assert!(
            ruth.url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://intranet.example.com/people?guid=")),
            "{ruth:?}"
        );
        assert_eq!(ruth.total, 2);
        // Staff in the second OU, under the first scope's subtree.
        let ben = answer(&lookup, "00442079460999").await;
        assert_eq!(ben.company.as_deref(), Some("Example Ltd · Support"));
        // A contact only: the contacts scope's templates.
        let zoe = answer(&lookup, "038880002").await;
        assert_eq!(zoe.company.as_deref(), Some("Zoe Ltd"));
        assert_eq!(
            zoe.url.as_deref(),
            Some("https://crm.example.com/contacts?mail=zoe%40zoe.example")
        );
        // Disabled staff, and users outside both scopes (CN=Users), answer nobody.
        assert_eq!(answer(&lookup, "038880003").await.total, 0);
        assert_eq!(answer(&lookup, &samba::user_number(1)).await.total, 0);
    }
}

/// The AD example with its commented `[[directory.scope]]` tables taken in (and the single
/// scope's base_dn, scope and filter taken out, as its comment says), on the test domain.
fn with_the_examples_scopes(text: &str) -> String {
    let mut out = String::new();
    let mut in_block = false;
    for line in text.lines() {
        if line == "# [[directory.scope]]" && !in_block {
            in_block = true;
        }
        let single = line.starts_with("base_dn = ")
            || line.starts_with("scope = \"subtree\"")
            || line.starts_with("filter = \"(|(objectClass=contact)");
        if single && !in_block {
            continue;
        }
        if in_block && !line.starts_with('#') {
            in_block = false;
        }
        let line = if in_block {
            line.trim_start_matches('#')
                .trim_start()
                .replace("DC=example,DC=com", samba::BASE_DN)
        } else {
            line.to_owned()
        };
        out.push_str(&line);
        out.push('\n');
    }
    assert!(
        out.contains("\n[[directory.scope]]\nname = \"contacts\""),
        "{out}"
    );
    out
}

/// The phone attributes of the AD example and whether Active Directory's schema puts them in
/// the Global Catalog's partial attribute set by default, as README's "A forest in one place"
/// says.
const IN_THE_GLOBAL_CATALOG: &[(&str, bool)] = &[
    ("telephoneNumber", true),
    ("ipPhone", true),
    ("homePhone", true),
    ("mobile", false),
    ("otherTelephone", false),
    ("otherMobile", false),
];

/// Through the Global Catalog port (LDAPS 3269), with the phone attributes in the partial
/// attribute set, in index and live mode. (Samba's GC serves its own domain in full, so it
/// cannot show a Windows GC leaving the other attributes out; the schema's flags are checked.)
#[tokio::test(flavor = "multi_thread")]
async fn the_global_catalog_answers_from_the_partial_attribute_set() {
    let dc = samba::shared();
    let schema = format!("CN=Schema,CN=Configuration,{}", samba::BASE_DN);
    for (attribute, in_set) in IN_THE_GLOBAL_CATALOG {
        let out = dc.ldapsearch(&[
            "-b",
            &schema,
            &format!("(lDAPDisplayName={attribute})"),
            "isMemberOfPartialAttributeSet",
        ]);
        assert_eq!(
            out.contains("isMemberOfPartialAttributeSet: TRUE"),
            *in_set,
            "{attribute}: {out}"
        );
    }
    let gc = format!("urls = [\"{}:3269\"]", dc.ldaps_url());
    let in_set: Vec<String> = IN_THE_GLOBAL_CATALOG
        .iter()
        .filter(|(_, in_set)| *in_set)
        .map(|(a, _)| format!("\"{a}\""))
        .collect();
    let attributes = format!("phone_attributes = [{}]", in_set.join(", "));
    let example_urls = format!("urls = [\"{}\"]", dc.ldaps_url());
    let index = ad_example(dc, &[]).replace(&example_urls, &gc).replace(
        "phone_attributes = [\"telephoneNumber\", \"mobile\", \"ipPhone\", \"otherTelephone\", \"otherMobile\", \"homePhone\"]",
        &attributes,
    );
    assert!(index.contains(&gc) && index.contains(&attributes));
    let live = without_section(
        &index.replace("mode = \"index\"", "mode = \"live\""),
        "index",
    );
    for text in [index, live] {
        let config = Config::parse(&text, &dc.path("")).expect("config");
        let lookup = Lookup::open(config.lookup_setup()).await.expect("lookup");
        for (phone, i) in [
            (samba::user_number(21), 21),
            ("20013".to_owned(), 13),     // ipPhone
            ("086000015".to_owned(), 15), // homePhone
        ] {
            let found = answer(&lookup, &phone).await;
            assert_eq!(found.client_name, Some(samba::user_name(i)), "{phone}");
        }
        assert_eq!(answer(&lookup, &samba::user_number(10)).await.total, 0);
    }
}

/// The AD example binding by Kerberos from the service account's keytab instead of its
/// password: `extra` changes further lines.
#[cfg(feature = "kerberos")]
fn kerberos_changes(dc: &SambaDc, keytab: &str) -> Vec<(String, String)> {
    kerberos_changes_with(dc, keytab, &dc.path("krb5.conf"))
}

/// [`kerberos_changes`] with the test realm's krb5.conf plus one `[libdefaults]` line, saved
/// as `name` in the DC's folder.
#[cfg(feature = "kerberos")]
fn kerberos_changes_adding(
    dc: &SambaDc,
    keytab: &str,
    name: &str,
    line: &str,
) -> Vec<(String, String)> {
    let conf = dc.path(name);
    let text = std::fs::read_to_string(dc.path("krb5.conf")).expect("krb5.conf");
    let text = text.replace("[libdefaults]\n", &format!("[libdefaults]\n\t{line}\n"));
    std::fs::write(&conf, text).expect("write");
    kerberos_changes_with(dc, keytab, &conf)
}

#[cfg(feature = "kerberos")]
fn kerberos_changes_with(
    dc: &SambaDc,
    keytab: &str,
    krb5_conf: &std::path::Path,
) -> Vec<(String, String)> {
    let password = format!(
        "bind_password_file = \"{}\"",
        dc.path("bind-password").display()
    );
    let kerberos = format!(
        "bind = \"gssapi\"\nkeytab_file = \"{}\"\nkrb5_conf = \"{}\"\n\
         kerberos_server_name = \"{}\"",
        dc.path(keytab).display(),
        krb5_conf.display(),
        samba::DC_NAME
    );
    vec![
        (format!("bind_dn = \"{}\"", samba::SERVICE), kerberos),
        (password, String::new()),
    ]
}

#[cfg(feature = "kerberos")]
fn as_pairs(changes: &[(String, String)]) -> Vec<(&str, &str)> {
    changes
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

/// Over LDAPS and over StartTLS, in index and in live mode, bound by Kerberos; a SIGHUP
/// reload binds again.
#[cfg(feature = "kerberos")]
#[test]
fn kerberos_binds_from_a_keytab_over_ldaps_and_starttls() {
    let dc = samba::shared();
    let changes = kerberos_changes(dc, "svc-popup.keytab");
    let ldap = format!("urls = [\"{}\"]", dc.ldap_url());
    let ldaps = format!("urls = [\"{}\"]", dc.ldaps_url());
    let starttls = [
        (ldaps.as_str(), ldap.as_str()),
        ("starttls = false", "starttls = true"),
    ];
    let live = [("mode = \"index\"", "mode = \"live\"")];
    let combinations: [&[(&str, &str)]; 4] =
        [&[], &starttls, &live, &[starttls[0], starttls[1], live[0]]];
    for more in combinations {
        let mut extra = as_pairs(&changes);
        extra.extend_from_slice(more);
        let served = Served::start(dc, &extra);
        let (phone, name) = samba::NAMED[0];
        assert_eq!(served.popup(phone), (Some(name.to_owned()), 1), "{more:?}");
        let log = served.log();
        assert!(!log.contains("bind as"), "a simple bind was made: {log}");
        if more.is_empty() {
            common::signal(&served.server.child, "-HUP");
            let log = served.log_with("SIGHUP: configuration reloaded");
            assert!(log.contains("SIGHUP: configuration reloaded"), "{log}");
            assert_eq!(served.popup(phone), (Some(name.to_owned()), 1));
        }
    }
}

/// `check-config` says whom the keytab authenticated and for how long; an out-of-date keytab
/// fails with what to do.
#[cfg(feature = "kerberos")]
#[test]
fn check_config_names_the_principal_and_a_stale_keytab_is_explained() {
    let dc = samba::shared();
    let config = |changes: &[(String, String)]| {
        let file = tempfile::NamedTempFile::new().expect("config");
        std::fs::write(file.path(), ad_example(dc, &as_pairs(changes))).expect("write");
        file
    };
    let good = config(&kerberos_changes(dc, "svc-popup.keytab"));
    let out = check_config(good.path(), &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("kerberos          svc-popup@EXAMPLE.TEST, ticket valid for"),
        "{text}"
    );
    let mut stale = kerberos_changes(dc, "stale.keytab");
    stale[0]
        .1
        .push_str("\nkerberos_principal = \"svc-stale@EXAMPLE.TEST\"");
    let stale = config(&stale);
    let out = check_config(stale.path(), &[]);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a stale keytab bound");
    assert!(text.contains("export it again"), "{text}");
}

/// With this host's clock 15 minutes ahead of the KDC's (libfaketime), the bind fails and
/// says why.
#[cfg(feature = "kerberos")]
#[test]
fn a_clock_skew_is_named() {
    let dc = samba::shared();
    // MIT Kerberos corrects a skew by itself (kdc_timesync): as on hosts that turn it off.
    let changes = kerberos_changes_adding(
        dc,
        "svc-popup.keytab",
        "krb5-strict.conf",
        "kdc_timesync = 0",
    );
    let file = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(file.path(), ad_example(dc, &as_pairs(&changes))).expect("write");
    let faketime = common::installed("faketime", "apt-get install faketime");
    let out = check_config(
        file.path(),
        &[faketime.to_str().expect("path"), "-f", "+15m"],
    );
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "bound with a skewed clock");
    assert!(
        text.contains("Clock skew too great") && text.contains("NTP"),
        "{text}"
    );
}

/// Tickets that run out while the service runs are renewed from the keytab: with a 5 minute
/// ticket lifetime (Samba's KDC refuses tickets shorter than its 5 minute clock skew), a
/// connection made after the first ticket expired binds, and no lookup fails meanwhile. The
/// suite's longest test: it waits the lifetime out.
#[cfg(feature = "kerberos")]
#[test]
fn an_expired_ticket_is_renewed_without_a_failed_lookup() {
    let dc = samba::shared();
    let relay = Relay::to(format!("{}:636", dc.address).parse().expect("addr"));
    let mut changes = kerberos_changes_adding(
        dc,
        "svc-popup.keytab",
        "krb5-short.conf",
        "ticket_lifetime = 5m",
    );
    let urls = format!("urls = [\"{}\", \"{}\"]", relay.ldaps_url(), dc.ldaps_url());
    changes.push((format!("urls = [\"{}\"]", dc.ldaps_url()), urls));
    changes.push(("mode = \"index\"".to_owned(), "mode = \"live\"".to_owned()));
    let served = Served::start(dc, &as_pairs(&changes));
    let (phone, name) = samba::NAMED[1];
    let answers = || {
        let (status, body) = served.server.client.get(&format!("/popup?phone={phone}"));
        assert_eq!(status, 200, "{body}\n{}", served.log());
        assert!(body.contains(name), "{body}");
    };
    answers();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5 * 60 + 10) {
        answers();
        std::thread::sleep(Duration::from_secs(2));
    }
    // The relay's DC goes down: the next lookup connects to the other URL and binds with a
    // ticket got after the first one expired.
    relay.cut();
    for _ in 0..5 {
        answers();
    }
    let log = served.log();
    assert!(
        log.matches("connected to directory").count() >= 2,
        "no second connection: {log}"
    );
}

/// Kerberos is a build feature; the suite runs with it (tests/run.sh).
#[cfg(not(feature = "kerberos"))]
#[test]
fn the_kerberos_tests_need_the_kerberos_feature() {
    panic!(
        "the Kerberos tests were not built: run the suite with --features kerberos (tests/run.sh \
         does; it needs libkrb5-dev and libclang-dev)"
    );
}

/// Runs `check-config` on `config`, under `wrapper` (a command and its arguments) if given.
#[cfg(feature = "kerberos")]
fn check_config(config: &std::path::Path, wrapper: &[&str]) -> std::process::Output {
    let binary = common::binary();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(binary.get_program());
            c
        }
        None => binary,
    };
    command
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .output()
        .expect("run check-config")
}
