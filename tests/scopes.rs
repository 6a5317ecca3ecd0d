//! Several directory scopes (`[[directory.scope]]`) against a real slapd over TLS: ranking,
//! per-scope templates, phone attributes, regions and search scopes, in index and live mode,
//! through the routes, `check-config` and `lookup`.

mod common;

use std::sync::Arc;

use common::{binary, live, Slapd, BASE_DN, PEOPLE};
use popup_ldap::http::{routes, App};
use popup_ldap::settings::Config;
use serde_json::Value;

/// Contacts beside the people: one holding (in international form, as the contacts scope reads
/// national numbers as British) a number that two people also hold, a British
/// number written nationally, one only in a `mobile` (which the contacts scope does not read),
/// and one a level too deep for the contacts scope's `one`.
const CONTACTS: &str = "
dn: ou=contacts,dc=example,dc=com
objectClass: organizationalUnit
ou: contacts

dn: uid=c-lior,ou=contacts,dc=example,dc=com
objectClass: inetOrgPerson
uid: c-lior
cn: Lior Supplier Desk
sn: Desk
o: Supplies Ltd
telephoneNumber: +972-52-3334444

dn: uid=c-uk,ou=contacts,dc=example,dc=com
objectClass: inetOrgPerson
uid: c-uk
cn: London Office
sn: Office
o: Acme UK
telephoneNumber: 020 7946 0031

dn: uid=c-mobile,ou=contacts,dc=example,dc=com
objectClass: inetOrgPerson
uid: c-mobile
cn: Mobile Only
sn: Only
o: Nowhere
mobile: 03-7777777

dn: ou=archive,ou=contacts,dc=example,dc=com
objectClass: organizationalUnit
ou: archive

dn: uid=c-old,ou=archive,ou=contacts,dc=example,dc=com
objectClass: inetOrgPerson
uid: c-old
cn: Archived Contact
sn: Contact
o: Old Co
telephoneNumber: 020 7946 0032
";

fn start() -> Slapd {
    Slapd::start_with(&format!("{PEOPLE}\n{CONTACTS}"))
}

/// Staff first, then contacts (one level, `telephoneNumber` only, numbers read in GB), then
/// a scope that overlaps staff (Globex's people again).
fn scopes_text(slapd: &Slapd) -> String {
    // The test configuration's connection and bind, without its one scope's base and filter.
    let connection: String = slapd
        .config_text("")
        .lines()
        .filter(|l| !l.starts_with("base_dn") && !l.starts_with("filter"))
        .map(|l| format!("{l}\n"))
        .collect();
    format!(
        r#"{connection}
[[directory.scope]]
name = "staff"
base_dn = "ou=people,{BASE_DN}"
filter = "(objectClass=inetOrgPerson)"
[directory.scope.response]
company = "Staff · {{o}}"
url = "https://intranet.example/{{uid}}"

[[directory.scope]]
name = "contacts"
base_dn = "ou=contacts,{BASE_DN}"
scope = "one"
filter = "(objectClass=inetOrgPerson)"
phone_attributes = ["telephoneNumber"]
default_region = "GB"
[directory.scope.response]
company = "Contact · {{o}}"
url = "https://crm.example/{{uid}}"

[[directory.scope]]
name = "globex"
base_dn = "{BASE_DN}"
filter = "(o=Globex)"

[response]
multiple_client_name = "{{total}} · {{displayName|cn}}"
"#,
    )
}

async fn apps(slapd: &Slapd) -> [Arc<App>; 2] {
    let text = scopes_text(slapd);
    let mut apps = Vec::new();
    for text in [text.clone(), live(&text)] {
        let config = Config::parse(&text, slapd.dir.path()).expect("config");
        apps.push(Arc::new(App::open(config.http_setup()).await.expect("app")));
    }
    [apps[0].clone(), apps[1].clone()]
}

async fn popup(app: &Arc<App>, phone: &str) -> Value {
    let res = warp::test::request()
        .path(&format!("/popup?phone={phone}"))
        .remote_addr("192.0.2.10:40000".parse().expect("addr"))
        .reply(&routes(app.clone()))
        .await;
    assert_eq!(res.status(), 200, "{phone}");
    serde_json::from_slice(res.body()).expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_scope_with_a_match_answers_and_total_counts_each_entry_once() {
    let slapd = start();
    for app in apps(&slapd).await {
        // Two people (staff, and again in the overlapping globex scope) and one contact.
        let answer = popup(&app, "0523334444").await;
        assert_eq!(answer["TOTAL"], 3, "{answer}");
        assert_eq!(answer["CLIENTNAME"], "3 · ליאור חדד", "{answer}");
        assert_eq!(answer["COMPANY"], "Staff · Globex", "{answer}");
        assert_eq!(answer["URL"], "https://intranet.example/lior", "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_scope_answers_with_its_own_templates_attributes_region_and_depth() {
    let slapd = start();
    for app in apps(&slapd).await {
        // Only in contacts, written nationally in GB (the contacts scope's region).
        for caller in ["00442079460031", "%2B442079460031"] {
            let answer = popup(&app, caller).await;
            assert_eq!(answer["TOTAL"], 1, "{answer}");
            assert_eq!(answer["CLIENTNAME"], "London Office", "{answer}");
            assert_eq!(answer["COMPANY"], "Contact · Acme UK", "{answer}");
            assert_eq!(answer["URL"], "https://crm.example/c-uk", "{answer}");
        }
        // The caller's national digits are read in [phone]'s region (IL): another number.
        assert_eq!(popup(&app, "02079460031").await["TOTAL"], 0);
        // The contacts scope reads telephoneNumber only, and one level down only.
        assert_eq!(popup(&app, "037777777").await["TOTAL"], 0);
        assert_eq!(popup(&app, "00442079460032").await["TOTAL"], 0);
        // A staff member alone keeps the staff templates and the default CLIENTNAME.
        let answer = popup(&app, "1234").await;
        assert_eq!(answer["TOTAL"], 1, "{answer}");
        assert_eq!(answer["COMPANY"], "Staff · Voicenter", "{answer}");
    }
}

#[test]
fn check_config_and_lookup_report_each_scope() {
    let slapd = start();
    let config = slapd.config_file("scopes.toml", &scopes_text(&slapd));
    let out = binary()
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for scope in ["scope staff", "scope contacts", "scope globex"] {
        assert!(text.contains(scope), "{scope}: {text}");
    }
    // Contacts: two with a telephoneNumber one level down (c-mobile has none it reads,
    // c-old is deeper).
    let contacts = text
        .split("scope contacts")
        .nth(1)
        .and_then(|t| t.split("scope globex").next())
        .expect("the contacts section");
    assert!(
        contacts.contains("index             2 entries with 2 distinct numbers"),
        "{contacts}"
    );
    let out = binary()
        .arg("--config")
        .arg(&config)
        .args(["lookup", "0523334444"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("best first: the first scope with a match"),
        "{text}"
    );
    assert!(
        text.contains("uid=lior,ou=people,dc=example,dc=com (scope staff)"),
        "{text}"
    );
    assert!(
        text.contains("uid=c-lior,ou=contacts,dc=example,dc=com (scope contacts)"),
        "{text}"
    );
    assert!(!text.contains("(scope globex)"), "counted once: {text}");
}

/// The binary serving scopes in index mode: each scope syncs on its own, says so in its own
/// log lines, and keeps its own state file.
#[test]
fn each_scope_syncs_and_saves_on_its_own() {
    let slapd = start();
    let port = common::free_port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{}\n[index]\nstate_file = \"index.state\"\n",
        scopes_text(&slapd)
    );
    let config = slapd.config_file("serve.toml", &text);
    let log = slapd.path("serve.log");
    let server = common::Server::start_logging(
        &config,
        ([127, 0, 0, 1], port).into(),
        std::fs::File::create(&log).expect("log"),
    );
    let (status, body) = server.client.get("/popup?phone=00442079460031");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"COMPANY\":\"Contact · Acme UK\""), "{body}");
    // The log is written in batches: wait for every scope's line and state file.
    let names = ["staff", "contacts", "globex"];
    let synced = |text: &str, name: &str| {
        text.lines().any(|l| {
            l.contains(&format!("scope{{name={name}}}"))
                && l.contains("index built from the directory")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log).expect("log");
        let done = names
            .iter()
            .all(|n| synced(&text, n) && slapd.path(&format!("index.{n}.state")).exists());
        if done || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    for name in names {
        assert!(synced(&text, name), "{name}: {text}");
        assert!(
            slapd.path(&format!("index.{name}.state")).exists(),
            "{name}'s state file: {text}"
        );
    }
    assert!(!slapd.path("index.state").exists());
}
