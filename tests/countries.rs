//! A multinational directory in a real slapd: staff in London, New York, Berlin and Paris
//! store their numbers in their office's national format and say their country in `c`;
//! callers arrive in every form Voicenter sends. Index mode, live mode and the LDIF source
//! must answer the same, and never with the wrong person.

mod common;

use std::sync::Arc;

use common::{Slapd, PEOPLE};
use popup_ldap::http::{routes, App};
use popup_ldap::settings::Config;
use serde_json::Value;

/// People abroad; `extensibleObject` lets an inetOrgPerson carry `c`.
const ABROAD: &str = "
dn: uid=london,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: extensibleObject
uid: london
cn: Oliver Bennett
sn: Bennett
c: GB
telephoneNumber: 020 7946 0031

dn: uid=nyc,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: extensibleObject
uid: nyc
cn: Maria Lopez
sn: Lopez
c: US
telephoneNumber: (212) 555-0132

dn: uid=berlin,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: extensibleObject
uid: berlin
cn: Jonas Weber
sn: Weber
c: de
mobile: 0151 2345 6789

dn: uid=paris,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: extensibleObject
uid: paris
cn: Claire Martin
sn: Martin
c: FR
telephoneNumber: 01 42 68 53 00
mobile: +33 6 12 34 56 78

dn: uid=nocountry,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: nocountry
cn: Sam Unplaced
sn: Unplaced
telephoneNumber: 020 7946 0999
";

/// (caller as sent, who answers; `None`: nobody).
const CALLS: &[(&str, Option<&str>)] = &[
    ("442079460031", Some("Oliver Bennett")),
    ("+44 20 7946 0031", Some("Oliver Bennett")),
    ("00442079460031", Some("Oliver Bennett")),
    ("12125550132", Some("Maria Lopez")),
    ("+12125550132", Some("Maria Lopez")),
    ("0012125550132", Some("Maria Lopez")),
    ("4915123456789", Some("Jonas Weber")),
    ("+49 151 23456789", Some("Jonas Weber")),
    ("33142685300", Some("Claire Martin")),
    ("0033612345678", Some("Claire Martin")),
    // Israeli callers in the usual forms still find Israelis.
    ("0722776772", Some("דנה לוי")),
    ("972722776772", Some("דנה לוי")),
    // No country code and not an Israeli number: nobody, not the New Yorker.
    ("2125550132", None),
    // London's digits dialled as if Israeli: not the Londoner.
    ("02079460031", None),
    // The entry without a country: its London number is no Israeli number either.
    ("02079460999", None),
    ("442079460999", None),
];

async fn answer(app: &Arc<App>, phone: &str) -> Value {
    let query: String = form_urlencoded::byte_serialize(phone.as_bytes()).collect();
    let res = warp::test::request()
        .method("GET")
        .path(&format!("/popup?phone={query}&statusCall=Ringing"))
        .remote_addr("192.0.2.10:40000".parse().expect("addr"))
        .reply(&routes(app.clone()))
        .await;
    assert_eq!(res.status(), 200, "{phone}: {:?}", res.body());
    serde_json::from_slice(res.body()).expect("JSON")
}

async fn assert_calls(app: &Arc<App>, mode: &str) {
    for (phone, who) in CALLS {
        let json = answer(app, phone).await;
        match who {
            Some(name) => {
                assert_eq!(json["CLIENTNAME"], *name, "{mode}: {phone} -> {json}");
                assert_eq!(json["TOTAL"], 1, "{mode}: {phone} -> {json}");
            }
            None => assert_eq!(json["TOTAL"], 0, "{mode}: {phone} -> {json}"),
        }
    }
}

fn slapd() -> Slapd {
    Slapd::start_with(&format!("{PEOPLE}\n{ABROAD}"))
}

#[tokio::test]
async fn index_mode_reads_each_entry_in_its_country() {
    let slapd = slapd();
    let app = Arc::new(App::open(slapd.config("").http_setup()).await.expect("app"));
    assert_calls(&app, "index").await;
}

#[tokio::test]
async fn live_mode_finds_and_verifies_in_each_entry_country() {
    let slapd = slapd();
    let config = Config::parse(&slapd.live_config_text(""), slapd.dir.path()).expect("live config");
    let app = Arc::new(App::open(config.http_setup()).await.expect("app"));
    assert_calls(&app, "live").await;
}

#[tokio::test]
async fn the_ldif_source_reads_each_entry_in_its_country() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ldif = format!("{PEOPLE}\n{ABROAD}");
    std::fs::write(dir.path().join("d.ldif"), ldif).expect("write");
    let config = Config::parse(
        "[directory]\nsource = \"ldif\"\nldif = \"d.ldif\"\n\
         phone_attributes = [\"telephoneNumber\", \"mobile\", \"homePhone\"]\n\
         [rate_limit]\nenabled = false",
        dir.path(),
    )
    .expect("config");
    let app = Arc::new(App::open(config.http_setup()).await.expect("app"));
    assert_calls(&app, "ldif").await;
}

#[tokio::test]
async fn without_country_attributes_abroad_numbers_are_not_israeli_either() {
    let slapd = slapd();
    let config = slapd.config("[phone]\ncountry_attributes = []");
    let app = Arc::new(App::open(config.http_setup()).await.expect("app"));
    // Read as Israeli, London's national digits fit no Israeli number: nobody, never a
    // wrong person; international callers find nobody either.
    for phone in ["02079460031", "442079460031", "2125550132"] {
        assert_eq!(answer(&app, phone).await["TOTAL"], 0, "{phone}");
    }
    assert_eq!(answer(&app, "0722776772").await["TOTAL"], 1);
}
