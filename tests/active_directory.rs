//! Active Directory, as Samba's AD DC implements it, reached like a remote domain controller:
//! the shipped AD example configuration with only the host, credentials and base DN changed,
//! over LDAPS and StartTLS, as a low-privilege service account.

mod common;

use common::samba::{self, SambaDc};
use popup_ldap::call::CallDetails;
use popup_ldap::config::Config;
use popup_ldap::directory::Directory;
use popup_ldap::lookup::{Lookup, PopupAnswer};

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
    Lookup::from_config(&config).await.expect("lookup")
}

async fn answer(lookup: &Lookup, phone: &str) -> PopupAnswer {
    let call = CallDetails {
        phone: Some(phone.to_owned()),
        ..CallDetails::default()
    };
    lookup.answer(&call).await.expect("answer").popup
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
    // Disabled: user10 (every tenth) and the departed employee.
    assert_eq!(answer(lookup, &samba::user_number(10)).await.total, 0);
    assert_eq!(answer(lookup, "035559999").await.total, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_ad_example_indexes_enabled_users_and_contacts_over_ldaps() {
    let dc = samba::shared();
    let lookup = lookup(dc, &[]).await;
    let Directory::Synced(synced) = lookup.directory() else {
        panic!("the AD example runs in index mode")
    };
    // Paged past 1,000 entries: every enabled user with a number and every contact.
    let enabled = samba::USERS - samba::USERS / 10 + 3;
    assert_eq!(synced.current().entries(), enabled + samba::CONTACTS + 1);
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
    assert!(matches!(live.directory(), Directory::Live(_)));
    // The domain root answers searches with references to other partitions.
    let raw = dc.ldapsearch(&["-b", samba::BASE_DN, "(cn=user1)", "cn"]);
    assert!(
        raw.contains("\nref: ldap"),
        "no search reference to skip: {raw}"
    );
    answers_like_the_directory(&live).await;
}
