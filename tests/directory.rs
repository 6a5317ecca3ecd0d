//! The LDAP path against a real slapd: LDAPS, StartTLS, certificate verification, binding,
//! search references and reconnection.

mod common;

use common::Slapd;
use popup_ldap::call::CallDetails;
use popup_ldap::config::Config;
use popup_ldap::lookup::{Lookup, LookupError};

fn lookup_with(slapd: &Slapd, text: &str) -> Lookup {
    let config = Config::parse(text, slapd.dir.path()).expect("config");
    Lookup::from_config(&config).expect("lookup")
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
        .map(|a| a.popup.client_name)
}

#[tokio::test]
async fn ldaps_with_the_test_ca() {
    let slapd = Slapd::start();
    let lookup = lookup_with(&slapd, &slapd.config_text(""));
    let answer = lookup.answer(&call("035551234")).await.expect("answer");
    assert_eq!(answer.popup.client_name.as_deref(), Some("אבי כהן"));
    assert_eq!(
        answer.trace.server.as_deref(),
        Some(slapd.ldaps_url().as_str())
    );
    let filter = answer.trace.filter.expect("filter");
    assert!(
        filter.contains("(telephonenumber=*3*5*5*5*1*2*3*4*)"),
        "{filter}"
    );
}

#[tokio::test]
async fn starttls_on_the_plain_port() {
    let slapd = Slapd::start();
    let text = slapd
        .config_text("starttls = true")
        .replace(&slapd.ldaps_url(), &slapd.ldap_url());
    let lookup = lookup_with(&slapd, &text);
    assert_eq!(
        name(&lookup, "0722776772")
            .await
            .expect("answer")
            .as_deref(),
        Some("דנה לוי")
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let slapd = Slapd::start();
    let text = slapd.config_text("").replace(
        &slapd.path("ca.pem").display().to_string(),
        &slapd.path("other-ca.pem").display().to_string(),
    );
    let lookup = lookup_with(&slapd, &text);
    let err = name(&lookup, "0722776772").await.expect_err("must refuse");
    let text = err.to_string();
    assert!(matches!(err, LookupError::Directory(_)), "{text}");
    assert!(text.contains("invalid peer certificate"), "{text}");
}

#[tokio::test]
async fn starttls_also_verifies_the_certificate() {
    let slapd = Slapd::start();
    let text = slapd
        .config_text("starttls = true")
        .replace(&slapd.ldaps_url(), &slapd.ldap_url())
        .replace(
            &slapd.path("ca.pem").display().to_string(),
            &slapd.path("other-ca.pem").display().to_string(),
        );
    let lookup = lookup_with(&slapd, &text);
    let err = name(&lookup, "0722776772").await.expect_err("must refuse");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn only_the_danger_key_skips_verification() {
    let slapd = Slapd::start();
    let text = slapd
        .config_text("danger_accept_invalid_certs = true")
        .replace(
            &slapd.path("ca.pem").display().to_string(),
            &slapd.path("other-ca.pem").display().to_string(),
        );
    let lookup = lookup_with(&slapd, &text);
    assert_eq!(
        name(&lookup, "0722776772")
            .await
            .expect("answer")
            .as_deref(),
        Some("דנה לוי")
    );
}

#[tokio::test]
async fn a_wrong_password_is_reported_as_invalid_credentials() {
    let slapd = Slapd::start();
    std::fs::write(slapd.path("wrong-password"), "nope").expect("write");
    let text = slapd
        .config_text("")
        .replace("bind-password", "wrong-password");
    let lookup = lookup_with(&slapd, &text);
    let err = name(&lookup, "0722776772").await.expect_err("must fail");
    assert!(err.to_string().contains("invalid credentials"), "{err}");
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
    let lookup = lookup_with(&slapd, &text);
    let err = name(&lookup, "0722776772")
        .await
        .expect_err("anonymous sees nothing");
    assert!(err.to_string().contains("may not read it"), "{err}");
}

#[tokio::test]
async fn search_references_are_skipped() {
    // ou=elsewhere under the base is a referral object: slapd answers every subtree search
    // with a search reference besides the entries.
    let slapd = Slapd::start();
    let lookup = lookup_with(&slapd, &slapd.config_text(""));
    let answer = lookup.answer(&call("0722776772")).await.expect("answer");
    assert_eq!(answer.popup.total, 1);
    assert!(answer.trace.rejected.is_empty());
}

#[tokio::test]
async fn the_connection_is_reused_and_reestablished() {
    let mut slapd = Slapd::start();
    let lookup = lookup_with(&slapd, &slapd.config_text(""));
    for _ in 0..20 {
        assert_eq!(
            name(&lookup, "0722776772")
                .await
                .expect("answer")
                .as_deref(),
            Some("דנה לוי")
        );
    }
    slapd.restart();
    // The first search after the restart finds the old connection dead and reconnects.
    assert_eq!(
        name(&lookup, "0722776772")
            .await
            .expect("answer")
            .as_deref(),
        Some("דנה לוי")
    );
}

#[tokio::test]
async fn the_next_url_serves_when_the_first_is_down() {
    let slapd = Slapd::start();
    let dead = format!("ldaps://127.0.0.1:{}", common::free_port());
    let text = slapd.config_text("").replace(
        &format!("urls = [\"{}\"]", slapd.ldaps_url()),
        &format!("urls = [\"{dead}\", \"{}\"]", slapd.ldaps_url()),
    );
    let lookup = lookup_with(&slapd, &text);
    let answer = lookup.answer(&call("0722776772")).await.expect("answer");
    assert_eq!(
        answer.trace.server.as_deref(),
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
    );
    let answer = lookup.answer(&call("972722776772")).await.expect("answer");
    assert_eq!(
        answer.trace.filter.as_deref(),
        Some("(&(objectClass=inetOrgPerson)(|(telephoneNumber=0722776772)(mobile=0722776772)))")
    );
    assert_eq!(answer.popup.client_name.as_deref(), Some("דנה לוי"));
}

#[tokio::test]
async fn a_missing_base_dn_says_so() {
    let slapd = Slapd::start();
    let text = slapd
        .config_text("")
        .replace("base_dn = \"ou=people,", "base_dn = \"ou=nobody,");
    let lookup = lookup_with(&slapd, &text);
    let err = name(&lookup, "0722776772").await.expect_err("must fail");
    assert!(err.to_string().contains("does not exist"), "{err}");
}
