//! The LDAP path against a real slapd: LDAPS, StartTLS, certificate verification, binding,
//! search references and reconnection.

mod common;

use common::Slapd;
use popup_ldap::call::CallDetails;
use popup_ldap::lookup::{Lookup, LookupError};
use popup_ldap::settings::Config;

/// A live-mode lookup service for `text`.
async fn lookup_with(slapd: &Slapd, text: &str) -> Lookup {
    let config = Config::parse(&common::live(text), slapd.dir.path()).expect("config");
    Lookup::open(config.lookup_setup()).await.expect("lookup")
}

fn call(phone: &str) -> CallDetails {
    CallDetails {
        phone: Some(phone.to_owned()),
        ..CallDetails::default()
    }
}

async fn name(lookup: &Lookup, phone: &str) -> Result<Option<String>, LookupError> {
    lookup
        .answer(&call(phone))
        .await
        .map(|a| a.popup.client_name.clone())
}

const DANA: &str = "דנה לוי";

/// The configuration over StartTLS on the plain port.
fn starttls(slapd: &Slapd) -> String {
    slapd
        .config_text("starttls = true")
        .replace(&slapd.ldaps_url(), &slapd.ldap_url())
}

/// `text` trusting a CA that did not sign slapd's certificate.
fn other_ca(text: &str) -> String {
    text.replace("/ca.pem", "/other-ca.pem")
}

async fn finds_dana(lookup: &Lookup) {
    let found = name(lookup, "0722776772").await.expect("answer");
    assert_eq!(found.as_deref(), Some(DANA));
}

async fn refused(lookup: &Lookup, needle: &str) {
    let err = name(lookup, "0722776772").await.expect_err("must fail");
    assert!(matches!(err, LookupError::Directory(_)), "{err}");
    assert!(err.to_string().contains(needle), "{needle}: {err}");
}

#[tokio::test]
async fn ldaps_with_the_test_ca() {
    let slapd = Slapd::start();
    let lookup = lookup_with(&slapd, &slapd.config_text("")).await;
    let answer = lookup.answer(&call("035551234")).await.expect("answer");
    assert_eq!(answer.popup.client_name.as_deref(), Some("אבי כהן"));
    assert_eq!(
        answer.trace.server().map(|s| s.as_str()),
        Some(slapd.ldaps_url().as_str())
    );
    let filter = answer.trace.searches[0].filter.clone().expect("filter");
    assert!(
        filter.contains("(telephonenumber=*3*5*5*5*1*2*3*4*)"),
        "{filter}"
    );
}

#[tokio::test]
async fn the_default_filter_finds_every_format() {
    let slapd = Slapd::start();
    let lookup = lookup_with(&slapd, &slapd.config_text("")).await;
    for &(caller, expected) in common::FORMATS {
        assert_eq!(
            name(&lookup, caller).await.expect("answer").as_deref(),
            Some(expected),
            "{caller}"
        );
    }
}

#[tokio::test]
async fn starttls_on_the_plain_port() {
    let slapd = Slapd::start();
    finds_dana(&lookup_with(&slapd, &starttls(&slapd)).await).await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let slapd = Slapd::start();
    let lookup = lookup_with(&slapd, &other_ca(&slapd.config_text(""))).await;
    refused(&lookup, "invalid peer certificate").await;
    // With what to do about it.
    refused(&lookup, "is not signed by directory.ca_file").await;
}

#[tokio::test]
async fn starttls_also_verifies_the_certificate() {
    let slapd = Slapd::start();
    let lookup = lookup_with(&slapd, &other_ca(&starttls(&slapd))).await;
    refused(&lookup, "invalid peer certificate").await;
}

#[tokio::test]
async fn only_the_danger_key_skips_verification() {
    let slapd = Slapd::start();
    let text = other_ca(&slapd.config_text("danger_accept_invalid_certs = true"));
    finds_dana(&lookup_with(&slapd, &text).await).await;
}

#[tokio::test]
async fn a_wrong_password_is_reported_as_invalid_credentials() {
    let slapd = Slapd::start();
    std::fs::write(slapd.path("wrong-password"), "nope").expect("write");
    let text = slapd
        .config_text("")
        .replace("bind-password", "wrong-password");
    refused(&lookup_with(&slapd, &text).await, "invalid credentials").await;
}

#[tokio::test]
async fn the_search_runs_as_the_service_account() {
    // The fixture's ACL shows entries to bound users only: anonymously the base is invisible.
    let slapd = Slapd::start();
    let text = slapd
        .config_text("")
        .lines()
        .filter(|l| !l.starts_with("bind_"))
        .collect::<Vec<_>>()
        .join("\n");
    refused(&lookup_with(&slapd, &text).await, "may not read it").await;
}

#[tokio::test]
async fn search_references_are_skipped() {
    // ou=elsewhere under the base is a referral object: slapd answers every subtree search
    // with a search reference besides the entries.
    let slapd = Slapd::start();
    let lookup = lookup_with(&slapd, &slapd.config_text("")).await;
    let answer = lookup.answer(&call("0722776772")).await.expect("answer");
    assert_eq!(answer.popup.total, 1);
    assert!(answer.trace.rejected.is_empty());
}

#[tokio::test]
async fn the_connection_is_reused_and_reestablished() {
    let mut slapd = Slapd::start();
    let lookup = lookup_with(&slapd, &slapd.config_text("")).await;
    for _ in 0..20 {
        finds_dana(&lookup).await;
    }
    slapd.restart();
    // The first search after the restart finds the old connection dead and reconnects.
    finds_dana(&lookup).await;
}

#[tokio::test]
async fn the_next_url_serves_when_the_first_is_down() {
    let slapd = Slapd::start();
    let dead = format!("ldaps://127.0.0.1:{}", common::free_port());
    let text = slapd.config_text("").replace(
        &format!("urls = [\"{}\"]", slapd.ldaps_url()),
        &format!("urls = [\"{dead}\", \"{}\"]", slapd.ldaps_url()),
    );
    let lookup = lookup_with(&slapd, &text).await;
    let answer = lookup.answer(&call("0722776772")).await.expect("answer");
    assert_eq!(
        answer.trace.server().map(|s| s.as_str()),
        Some(slapd.ldaps_url().as_str())
    );
}

#[tokio::test]
async fn a_custom_match_filter_is_used_and_verified() {
    let slapd = Slapd::start();
    // An equality filter on the national form: OpenLDAP's telephoneNumberMatch ignores spaces
    // and hyphens, so 072-277-6772 matches.
    let lookup = lookup_with(
        &slapd,
        &slapd.config_text("match_filter = \"(|(telephoneNumber={national})(mobile={national}))\""),
    )
    .await;
    let answer = lookup.answer(&call("972722776772")).await.expect("answer");
    assert_eq!(
        answer.trace.searches[0].filter.as_deref(),
        Some("(&(objectClass=inetOrgPerson)(|(telephoneNumber=0722776772)(mobile=0722776772)))")
    );
    assert_eq!(answer.popup.client_name.as_deref(), Some(DANA));
}

#[tokio::test]
async fn a_missing_base_dn_says_so() {
    let slapd = Slapd::start();
    let text = slapd
        .config_text("")
        .replace("base_dn = \"ou=people,", "base_dn = \"ou=nobody,");
    refused(&lookup_with(&slapd, &text).await, "does not exist").await;
}

/// The configuration finding slapd in DNS (`directory.domain`, StartTLS on the SRV port),
/// asking `dns`; `site` as given.
fn from_dns(slapd: &Slapd, dns: &common::dns::DnsServer, site: &str) -> String {
    let urls = format!("urls = [\"{}\"]", slapd.ldaps_url());
    let discovery = format!(
        "domain = \"example.test\"\n{site}\ndns_server = \"{}\"\nstarttls = true",
        dns.addr
    );
    slapd.config_text("").replace(&urls, &discovery)
}

fn port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// Domain controllers from DNS SRV records: priority first, the site's own first, the SRV
/// target as the URL's host (TLS checks that name), and asked again once the TTL has run out.
#[tokio::test(flavor = "multi_thread")]
async fn domain_controllers_are_found_in_dns() {
    let mut slapd = Slapd::start();
    let dns = common::dns::DnsServer::start();
    let dead = common::free_port();
    let live = port(&slapd.ldap_url());
    dns.set(
        "_ldap._tcp.dc._msdcs.example.test.",
        &[(0, 100, dead, "localhost."), (10, 100, live, "localhost.")],
    );
    dns.set(
        "_ldap._tcp.haifa._sites.dc._msdcs.example.test.",
        &[(0, 100, live, "localhost.")],
    );
    let dead_url = format!("ldap://localhost:{dead}");
    let live_url = format!("ldap://localhost:{live}");
    let stats = |lookup: &Lookup| {
        lookup
            .directory()
            .servers()
            .into_iter()
            .map(|s| (s.url, s.connects, s.failures))
            .collect::<Vec<_>>()
    };

    // Priority 0 (down) is tried before priority 10.
    let lookup = lookup_with(&slapd, &from_dns(&slapd, &dns, "")).await;
    finds_dana(&lookup).await;
    assert_eq!(
        stats(&lookup),
        [(dead_url.clone(), 0, 1), (live_url.clone(), 1, 0)]
    );

    // The site's DC first: the one that is down is never needed.
    let lookup = lookup_with(&slapd, &from_dns(&slapd, &dns, "site = \"haifa\"")).await;
    finds_dana(&lookup).await;
    assert_eq!(
        stats(&lookup),
        [(live_url.clone(), 1, 0), (dead_url.clone(), 0, 0)]
    );
    assert!(dns
        .queries()
        .contains(&"_ldap._tcp.haifa._sites.dc._msdcs.example.test.".to_owned()));

    // Once the TTL (at least 5 s) has run out, a new connection asks DNS again and follows
    // the records.
    dns.set(
        "_ldap._tcp.haifa._sites.dc._msdcs.example.test.",
        &[(0, 100, live, "127.0.0.1.")],
    );
    dns.set(
        "_ldap._tcp.dc._msdcs.example.test.",
        &[(0, 100, dead, "localhost.")],
    );
    std::thread::sleep(std::time::Duration::from_millis(
        1000 * u64::from(common::dns::TTL) + 6_000,
    ));
    slapd.restart();
    finds_dana(&lookup).await;
    assert_eq!(
        stats(&lookup),
        [(format!("ldap://127.0.0.1:{live}"), 1, 0), (dead_url, 0, 0)]
    );
}

/// Without an answer from DNS (and no server known), lookups fail and say why.
#[tokio::test(flavor = "multi_thread")]
async fn no_domain_controller_in_dns_is_an_error() {
    let slapd = Slapd::start();
    let dns = common::dns::DnsServer::start();
    let lookup = lookup_with(&slapd, &from_dns(&slapd, &dns, "")).await;
    refused(&lookup, "no domain controller in DNS").await;
}
