//! Index mode against a real slapd: delta sync, full resync, outages under load, and restarts
//! from the saved index while the directory is down.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{binary, client_for, free_port, terminate, Relay, Slapd};
use popup_ldap::call::CallDetails;
use popup_ldap::directory::{Source, SyncKind, SyncedIndex};
use popup_ldap::lookup::{Lookup, PopupAnswer};
use popup_ldap::settings::Config;

const DANA: &str = "דנה לוי";

async fn lookup(slapd: &Slapd, extra: &str) -> Lookup {
    let config = Config::parse(&slapd.config_text(extra), slapd.dir.path()).expect("config");
    Lookup::open(config.lookup_setup()).await.expect("lookup")
}

/// The endpoint's state on `slapd`, following it as `serve` does.
async fn app(slapd: &Slapd, extra: &str) -> popup_ldap::http::App {
    let config = Config::parse(&slapd.config_text(extra), slapd.dir.path()).expect("config");
    popup_ldap::http::App::open(config.http_setup())
        .await
        .expect("app")
}

fn synced(lookup: &Lookup) -> &Arc<SyncedIndex> {
    match lookup.directory().sources().next() {
        Some(Source::Synced(s)) => s,
        _ => panic!("not in index mode"),
    }
}

async fn popup(lookup: &Lookup, phone: &str) -> PopupAnswer {
    let call = CallDetails {
        phone: Some(phone.to_owned()),
        ..CallDetails::default()
    };
    lookup.answer(&call).await.expect("answer").popup.clone()
}

async fn name(lookup: &Lookup, phone: &str) -> Option<String> {
    popup(lookup, phone).await.client_name
}

async fn total(lookup: &Lookup, phone: &str) -> usize {
    popup(lookup, phone).await.total
}

/// An LDIF change giving Avi another office number.
fn avi_moves_to(number: &str) -> String {
    format!(
        "dn: uid=avi,ou=people,dc=example,dc=com\nchangetype: modify\n\
         replace: telephoneNumber\ntelephoneNumber: {number}\n"
    )
}

const NEWBIE: &str = "dn: uid=newbie,ou=people,dc=example,dc=com
changetype: add
objectClass: inetOrgPerson
uid: newbie
cn: New Person
sn: Person
telephoneNumber: 050-999 9999
";

#[tokio::test]
async fn delta_sync_applies_additions_changes_and_removals() {
    let slapd = Slapd::start();
    let lookup = lookup(&slapd, "").await;
    let sync = synced(&lookup);
    assert_eq!(name(&lookup, "0509999999").await, None);
    assert_eq!(name(&lookup, "035551234").await.as_deref(), Some("אבי כהן"));

    slapd.modify(NEWBIE);
    slapd.modify(&avi_moves_to("03-555 9999"));
    // Lior's only number goes: his entry no longer qualifies and leaves the index.
    slapd.modify("dn: uid=lior,ou=people,dc=example,dc=com\nchangetype: modify\ndelete: mobile\n");
    let report = sync.delta_sync().await.expect("delta");
    // Read: the two changed eligible entries, and those stamped in the watermark's second.
    assert_eq!((report.kind, report.removed), (SyncKind::Delta, 1));
    assert!(report.read >= 2, "{report:?}");

    assert_eq!(
        name(&lookup, "0509999999").await.as_deref(),
        Some("New Person")
    );
    assert_eq!(name(&lookup, "035559999").await.as_deref(), Some("אבי כהן"));
    assert_eq!(name(&lookup, "035551234").await, None);
    assert_eq!(
        total(&lookup, "0523334444").await,
        1,
        "only Shira still holds 052-3334444"
    );
}

#[tokio::test]
async fn a_change_between_the_two_reads_of_a_poll_drops_nobody() {
    let slapd = Slapd::start();
    let lookup = lookup(&slapd, "").await;
    let sync = synced(&lookup);
    // Move the watermark past the load's second, so that a poll reads only real changes.
    let wait_a_second = || std::thread::sleep(std::time::Duration::from_millis(1100));
    wait_a_second();
    slapd.modify(NEWBIE);
    sync.delta_sync().await.expect("delta");
    wait_a_second();
    let changed_during_the_poll = async {
        slapd.modify(&avi_moves_to("03-555 7777"));
    };
    let report = sync
        .delta_sync_with(changed_during_the_poll)
        .await
        .expect("delta");
    assert_eq!(report.removed, 0, "{report:?}");
    assert_eq!(name(&lookup, "035557777").await.as_deref(), Some("אבי כהן"));
    assert_eq!(name(&lookup, "035551234").await, None);
    assert_eq!(
        name(&lookup, "0509999999").await.as_deref(),
        Some("New Person")
    );
}

/// A sync's pages wait `index.page_timeout_s`, not the lookups' `timeout_ms`: a directory
/// slower than a call may wait (a sync starved of CPU by a call peak, a server scanning for a
/// poll) is still followed, and one slower than the page limit fails saying what to look at.
#[tokio::test]
async fn sync_pages_wait_their_own_limit_not_the_lookups() {
    let slapd = Slapd::start();
    let upstream: SocketAddr = format!("127.0.0.1:{}", slapd.ldaps_port)
        .parse()
        .expect("addr");
    let through = |relay: &Relay, extra: &str| {
        let text = slapd
            .config_text(&format!(
                "timeout_ms = 100\nconnect_timeout_ms = 30000\n{extra}"
            ))
            .replace(&slapd.ldaps_url(), &relay.ldaps_url());
        Config::parse(&text, slapd.dir.path()).expect("config")
    };
    let slow = Relay::slow(upstream, Duration::from_millis(400));
    let Ok(lookup) = Lookup::open(through(&slow, "").lookup_setup()).await else {
        panic!("a sync whose pages came later than timeout_ms failed")
    };
    assert_eq!(name(&lookup, "035551234").await.as_deref(), Some("אבי כהן"));

    let slower = Relay::slow(upstream, Duration::from_millis(1500));
    let config = through(&slower, "[index]\npage_timeout_s = 1");
    let started = Instant::now();
    let Err(e) = Lookup::open(config.lookup_setup()).await else {
        panic!("a page later than index.page_timeout_s was waited for")
    };
    let said = e.to_string();
    assert!(said.contains("within 1 s, index.page_timeout_s"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(30), "{said}");
}

#[tokio::test]
async fn a_kept_answer_is_not_given_once_the_entry_changes() {
    let slapd = Slapd::start();
    let lookup = lookup(&slapd, "").await;
    let call = CallDetails {
        phone: Some("035551234".to_owned()),
        ..CallDetails::default()
    };
    let first = lookup.answer(&call).await.expect("answer");
    assert_eq!(first.popup.client_name.as_deref(), Some("אבי כהן"));
    let again = lookup.answer(&call).await.expect("answer");
    assert!(
        Arc::ptr_eq(&first, &again),
        "the second ask was looked up again"
    );

    slapd.modify(
        "dn: uid=avi,ou=people,dc=example,dc=com\nchangetype: modify\n\
         replace: displayName\ndisplayName: Avi Levi\n",
    );
    synced(&lookup).delta_sync().await.expect("delta");
    assert_eq!(
        name(&lookup, "035551234").await.as_deref(),
        Some("Avi Levi")
    );
}

#[tokio::test]
async fn a_poll_with_no_changes_writes_nothing_and_keeps_the_index() {
    let slapd = Slapd::start();
    let state = slapd.path("index.state");
    let lookup = lookup(
        &slapd,
        &format!("[index]\nstate_file = \"{}\"", state.display()),
    )
    .await;
    let sync = synced(&lookup);
    let saved = std::fs::metadata(&state)
        .expect("state file")
        .modified()
        .expect("mtime");
    let before = sync.version();
    // Every entry was loaded in the watermark's second: this poll reads them all again.
    let report = sync.delta_sync().await.expect("delta");
    assert_eq!((report.read, report.removed), (0, 0), "{report:?}");
    assert!(report.searched > 0, "{report:?}");
    assert_eq!(before, sync.version(), "the index was changed");
    let after = std::fs::metadata(&state)
        .expect("state file")
        .modified()
        .expect("mtime");
    assert_eq!(saved, after, "the state file was written again");

    // A real change is applied, and only that one.
    slapd.modify(&avi_moves_to("03-555 6666"));
    let report = sync.delta_sync().await.expect("delta");
    assert_eq!((report.read, report.removed), (1, 0), "{report:?}");
    assert_eq!(name(&lookup, "035556666").await.as_deref(), Some("אבי כהן"));
    // Saved by appending the change to the journal, not by writing the index again.
    assert_eq!(
        std::fs::metadata(&state)
            .expect("state file")
            .modified()
            .expect("mtime"),
        saved,
        "the snapshot was written again"
    );
    let journal = std::fs::metadata(slapd.path("index.state.journal")).expect("journal");
    assert!(
        journal.len() < 2048,
        "{} bytes for one change",
        journal.len()
    );
}

#[tokio::test]
async fn with_entry_csn_an_idle_poll_reads_nothing_and_every_change_once() {
    let slapd = Slapd::start();
    let lookup = lookup(&slapd, "[index]\nchange_attribute = \"entryCSN\"").await;
    let sync = synced(&lookup);
    let before = sync.version();
    let report = sync.delta_sync().await.expect("delta");
    assert_eq!(
        (report.searched, report.read, report.removed),
        (0, 0, 0),
        "{report:?}"
    );
    assert_eq!(before, sync.version(), "the index was changed");
    // Changes within one second are told apart, each read once.
    slapd.modify(NEWBIE);
    let report = sync.delta_sync().await.expect("delta");
    assert_eq!((report.read, report.removed), (1, 0), "{report:?}");
    slapd.modify(&avi_moves_to("03-555 8888"));
    let report = sync.delta_sync().await.expect("delta");
    assert_eq!((report.read, report.removed), (1, 0), "{report:?}");
    assert_eq!(name(&lookup, "035558888").await.as_deref(), Some("אבי כהן"));
    assert_eq!(name(&lookup, "035551234").await, None);
    assert_eq!(
        name(&lookup, "0509999999").await.as_deref(),
        Some("New Person")
    );
    // Made ineligible (no number left): removed.
    slapd.modify(
        "dn: uid=newbie,ou=people,dc=example,dc=com\nchangetype: modify\n\
         delete: telephoneNumber\n",
    );
    let report = sync.delta_sync().await.expect("delta");
    assert_eq!(report.read + report.removed, 1, "{report:?}");
    assert_eq!(name(&lookup, "0509999999").await, None);
}

#[tokio::test]
async fn with_modify_timestamp_an_idle_poll_reads_nothing_once_its_second_has_passed() {
    let slapd = Slapd::start();
    let lookup = lookup(&slapd, "").await;
    let sync = synced(&lookup);
    // The newest second is read again while it may still be going on.
    let report = sync.delta_sync().await.expect("delta");
    assert!(report.searched > 0, "{report:?}");
    assert_eq!((report.read, report.removed), (0, 0), "{report:?}");
    // Read again long after it (past the clock skew margin): later stamps only.
    sync.pretend_read_later(Duration::from_secs(3600));
    let report = sync.delta_sync().await.expect("delta");
    assert_eq!(
        (report.searched, report.read, report.removed),
        (0, 0, 0),
        "{report:?}"
    );
    // A change in a later second is read; its own second is read again until it has passed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    slapd.modify(NEWBIE);
    let report = sync.delta_sync().await.expect("delta");
    assert_eq!((report.read, report.removed), (1, 0), "{report:?}");
    assert_eq!(
        name(&lookup, "0509999999").await.as_deref(),
        Some("New Person")
    );
    let report = sync.delta_sync().await.expect("delta");
    assert_eq!((report.searched, report.read), (2, 0), "{report:?}");
}

#[tokio::test]
async fn a_full_resync_of_an_unchanged_directory_changes_nothing() {
    let slapd = Slapd::start();
    let lookup = lookup(&slapd, "").await;
    let sync = synced(&lookup);
    let (before, counts) = (sync.version(), sync.counts());
    let report = sync.full_sync().await.expect("full");
    assert_eq!((report.read, report.removed), (0, 0), "{report:?}");
    assert!(report.searched >= counts.0, "{report:?}");
    assert_eq!((before, counts), (sync.version(), sync.counts()));
}

#[tokio::test]
async fn a_change_during_a_full_read_is_seen_by_the_next_poll() {
    let slapd = Slapd::start();
    let lookup = lookup(
        &slapd,
        "[index]\nchange_attribute = \"entryCSN\"\npage_size = 5",
    )
    .await;
    let sync = synced(&lookup);
    assert_eq!(name(&lookup, "0722776772").await.as_deref(), Some(DANA));
    // After the first page (Dana's among it): Dana loses her number, then a person read in a
    // later page changes, so the newest stamp read is younger than Dana's change.
    let during_the_read = || {
        slapd.modify(
            "dn: uid=dana,ou=people,dc=example,dc=com\nchangetype: modify\n\
             delete: telephoneNumber\n",
        );
        slapd.modify(NEWBIE);
    };
    sync.full_sync_with(during_the_read).await.expect("full");
    sync.delta_sync().await.expect("delta");
    assert_eq!(name(&lookup, "0722776772").await, None);
    assert_eq!(
        name(&lookup, "0509999999").await.as_deref(),
        Some("New Person")
    );
}

#[tokio::test]
async fn deletions_are_seen_at_the_full_resync() {
    let slapd = Slapd::start();
    let lookup = lookup(&slapd, "").await;
    let sync = synced(&lookup);
    slapd.modify("dn: uid=dana,ou=people,dc=example,dc=com\nchangetype: delete\n");
    sync.delta_sync().await.expect("delta");
    // A deletion leaves no trace a change attribute could show.
    assert_eq!(name(&lookup, "0722776772").await.as_deref(), Some(DANA));
    let report = sync.full_sync().await.expect("full");
    assert_eq!(report.kind, SyncKind::Full);
    assert_eq!(name(&lookup, "0722776772").await, None);
}

#[tokio::test]
async fn the_presence_check_removes_deleted_renamed_and_moved_out_entries() {
    let slapd = Slapd::start();
    let lookup = lookup(&slapd, "").await;
    let sync = synced(&lookup);
    slapd.modify(
        "dn: uid=dana,ou=people,dc=example,dc=com\nchangetype: delete\n\n\
         dn: uid=john,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=johnny\n\
         deleteoldrdn: 1\n\n\
         dn: uid=avi,ou=people,dc=example,dc=com\nchangetype: modrdn\nnewrdn: uid=avi\n\
         deleteoldrdn: 0\nnewsuperior: dc=example,dc=com\n",
    );
    sync.delta_sync().await.expect("delta");
    // A poll cannot tell: Dana and Avi still answer, and John answers under both his names.
    assert_eq!(name(&lookup, "0722776772").await.as_deref(), Some(DANA));
    assert_eq!(total(&lookup, "035551234").await, 1);
    assert_eq!(total(&lookup, "+12125550100").await, 2);

    let report = sync.presence_check().await.expect("presence check");
    assert_eq!(
        (report.kind, report.read, report.removed),
        (SyncKind::Presence, 0, 3)
    );
    assert_eq!(name(&lookup, "0722776772").await, None);
    assert_eq!(total(&lookup, "035551234").await, 0);
    assert_eq!(total(&lookup, "+12125550100").await, 1);
    // Nothing else changed: a second check removes nothing.
    let again = sync.presence_check().await.expect("presence check");
    assert_eq!(again.removed, 0);
    assert_eq!(again.entries, report.entries);
}

#[tokio::test]
async fn a_deletion_shows_up_within_one_presence_check_interval() {
    let slapd = Slapd::start();
    let app = app(
        &slapd,
        "[index]\npoll_interval_s = 1\npresence_check_interval_s = 2",
    )
    .await;
    slapd.modify("dn: uid=dana,ou=people,dc=example,dc=com\nchangetype: delete\n");
    let deleted = Instant::now();
    while name(&app.running().lookup, "0722776772").await.is_some() {
        // The check's interval, the poll it follows, and a margin for a loaded machine.
        assert!(
            deleted.elapsed() < Duration::from_secs(6),
            "the deletion did not show up within a presence check interval (2 s)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_change_shows_up_within_one_poll_interval() {
    let slapd = Slapd::start();
    let app = app(&slapd, "[index]\npoll_interval_s = 1").await;
    slapd.modify(NEWBIE);
    let changed = Instant::now();
    while name(&app.running().lookup, "0509999999").await.is_none() {
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "the addition did not show up within a poll interval (1 s) and a margin"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn paging_reads_past_a_server_side_size_limit() {
    // Like Active Directory's MaxPageSize: an unpaged search stops at 5 entries and no page
    // may hold more than 5. The sync must still read all 15 entries with numbers a caller can
    // have (a 16th holds only 20 digits of no country, which nobody is looked up by).
    let slapd = Slapd::start_with_limits(
        common::PEOPLE,
        "size.soft=5 size.hard=5 size.pr=5 size.prtotal=unlimited time=unlimited",
    );
    let lookup = lookup(&slapd, "[index]\npage_size = 5").await;
    assert_eq!(synced(&lookup).counts().0, 15);
    assert_eq!(
        name(&lookup, "0547777777").await.as_deref(),
        Some("No Name")
    );
    // A page size above what the server allows is refused by slapd, and said so.
    let config = Config::parse(
        &slapd.config_text("[index]\npage_size = 50"),
        slapd.dir.path(),
    )
    .expect("config");
    let err = Lookup::open(config.lookup_setup())
        .await
        .err()
        .expect("must fail");
    assert!(
        err.to_string().contains("administrative limit exceeded"),
        "{err}"
    );
}

#[tokio::test]
async fn a_first_sync_that_fails_names_the_cause() {
    let slapd = Slapd::start();
    let text = slapd.config_text("").replace("/ca.pem", "/other-ca.pem");
    let config = Config::parse(&text, slapd.dir.path()).expect("config");
    let err = Lookup::open(config.lookup_setup())
        .await
        .err()
        .expect("must fail");
    let message = err.to_string();
    assert!(message.contains("first sync failed"), "{message}");
    assert!(message.contains("invalid peer certificate"), "{message}");
    assert!(message.contains("no index.state_file"), "{message}");
}

/// The nice value of each thread of `pid`, by thread name.
fn thread_priorities(pid: u32) -> Vec<(String, i64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
    tasks
        .flatten()
        .filter_map(|task| {
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // After the name in brackets: state is field 3; nice is field 19.
            let nice = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(16)?
                .parse()
                .ok()?;
            Some((name.trim().to_owned(), nice))
        })
        .collect()
}

#[test]
fn syncs_and_the_log_writer_run_at_a_lower_cpu_priority_than_calls() {
    let slapd = Slapd::start();
    let server = slapd.serve("[index]\npoll_interval_s = 1");
    assert!(server
        .client
        .get("/popup?phone=0722776772")
        .1
        .contains(DANA));
    let threads = thread_priorities(server.child.id());
    let syncs: Vec<_> = threads
        .iter()
        .filter(|(name, _)| name.starts_with("popup-ldap-sync"))
        .collect();
    assert!(!syncs.is_empty(), "no sync thread: {threads:?}");
    assert!(syncs.iter().all(|(_, nice)| *nice == 10), "{threads:?}");
    assert!(
        threads
            .iter()
            .any(|(name, nice)| name == "popup-ldap-log" && *nice == 10),
        "{threads:?}"
    );
    let workers: Vec<_> = threads
        .iter()
        .filter(|(name, _)| name.starts_with("tokio-rt"))
        .collect();
    assert!(!workers.is_empty(), "{threads:?}");
    assert!(workers.iter().all(|(_, nice)| *nice == 0), "{threads:?}");
}

#[test]
fn reloads_in_index_mode_keep_following_and_end_the_old_sync_threads() {
    let slapd = Slapd::start();
    let port = free_port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{}",
        slapd.config_text("[index]\npoll_interval_s = 1")
    );
    let config = slapd.config_file("popup.toml", &text);
    let log = slapd.path("popup.log");
    let server = common::Server::start_logging(
        &config,
        ([127, 0, 0, 1], port).into(),
        std::fs::File::create(&log).expect("log"),
    );
    let pid = server.child.id();
    let sync_threads = || {
        thread_priorities(pid)
            .iter()
            .filter(|(name, _)| name.starts_with("popup-ldap-sync"))
            .count()
    };
    for _ in 0..3 {
        common::signal(&server.child, "-HUP");
        std::thread::sleep(Duration::from_millis(700));
    }
    slapd.modify(NEWBIE);
    let started = Instant::now();
    while !server
        .client
        .get("/popup?phone=0509999999")
        .1
        .contains("New Person")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no poll after the reloads"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reloaded = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        reloaded.matches("SIGHUP: configuration reloaded").count(),
        3,
        "{reloaded}"
    );
    // Each replaced index's thread ends at its next poll; one runs on (two while it syncs).
    while sync_threads() > 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sync threads left behind: {:?}",
            thread_priorities(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends requests for an indexed number from 4 threads for `lasting`; returns the answers
/// that were not a 200 with the expected match.
fn load(addr: SocketAddr, lasting: Duration) -> Vec<String> {
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut bad = Vec::new();
                while started.elapsed() < lasting {
                    let (status, body) = common::http(
                        addr,
                        "GET /popup?phone=0722776772&statusCall=Ringing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    );
                    if status != 200 || !body.contains(DANA) {
                        bad.push(format!("{status} {body}"));
                    }
                }
                bad
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("load thread"))
        .collect()
}

#[test]
fn an_outage_under_load_fails_no_popup_and_recovery_resyncs() {
    let mut slapd = Slapd::start();
    let port = free_port();
    let config = slapd.config_file(
        "popup.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{}",
            slapd.config_text(
                "[index]\npoll_interval_s = 1\n[rate_limit]\nenabled = false\n[log]\nlevel = \"warn\""
            )
        ),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    // Stopped when dropped, a failed assertion included.
    let server = common::Server::start(&config, addr);
    let client = &server.client;

    // The load outlasts at least one failed poll (every second) after slapd stops (at 0.3 s).
    let load_thread = std::thread::spawn(move || load(addr, Duration::from_millis(2500)));
    std::thread::sleep(Duration::from_millis(300));
    slapd.stop();
    // Changed while the directory was down, straight in its database.
    slapd.modify_offline(
        "dn: uid=avi,ou=people,dc=example,dc=com\nchangetype: modify\n\
         replace: telephoneNumber\ntelephoneNumber: 03-555 9999\n",
    );
    let bad = load_thread.join().expect("load");
    assert!(
        bad.is_empty(),
        "{} failed popups, first: {}",
        bad.len(),
        bad[0]
    );

    slapd.restart();
    let restarted = Instant::now();
    loop {
        let (status, body) = client.get("/popup?phone=035559999");
        assert_eq!(status, 200, "{body}");
        if body.contains("אבי כהן") {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "the change made during the outage never showed up: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_restart_during_an_outage_answers_from_the_saved_index() {
    let mut slapd = Slapd::start();
    let port = free_port();
    let state = slapd.path("state/index.state");
    std::fs::create_dir(slapd.path("state")).expect("mkdir");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{}",
        slapd.config_text(&format!(
            "[index]\nstate_file = \"{}\"\npoll_interval_s = 1",
            state.display()
        ))
    );
    let config = slapd.config_file("popup.toml", &text);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let serve = || {
        binary()
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };

    // A change picked up by a poll is saved in the journal.
    let mut first = serve();
    let client = client_for(&mut first, addr);
    slapd.modify(NEWBIE);
    let started = Instant::now();
    while !client
        .get("/popup?phone=0509999999")
        .1
        .contains("New Person")
    {
        assert!(started.elapsed() < Duration::from_secs(10), "no poll");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The entry answers as soon as it is applied; it is saved right after.
    let journal = slapd.path("state/index.state.journal");
    while !journal.exists() {
        assert!(started.elapsed() < Duration::from_secs(10), "no journal");
        std::thread::sleep(Duration::from_millis(50));
    }
    terminate(&first);
    assert!(first.wait().expect("wait").success());
    #[cfg(unix)]
    for file in [&state, &journal] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)
            .expect("state file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the saved index holds personal data");
    }

    slapd.stop();
    let mut second = serve();
    let client = client_for(&mut second, addr);
    for &(caller, expected) in common::FORMATS {
        let (status, body) = client.get(&format!(
            "/popup?phone={}",
            caller.replace('+', "%2B").replace(' ', "%20")
        ));
        assert_eq!(status, 200, "{caller}: {body}");
        assert!(body.contains(expected), "{caller}: {body}");
    }
    let (_, body) = client.get("/popup?phone=0509999999");
    assert!(
        body.contains("New Person"),
        "the journal was not read: {body}"
    );
    terminate(&second);
    let out = second.wait_with_output().expect("output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("answering from the saved index"), "{log}");

    // A damaged, cut or foreign state file, or one too large, is refused, never a panic.
    let saved = std::fs::read(&state).expect("saved index");
    let mut damaged = saved.clone();
    damaged[saved.len() / 2] ^= 0x55;
    let refused = |bytes: &[u8], why: &str| {
        std::fs::write(&state, bytes).expect("write");
        let out = serve().wait_with_output().expect("output");
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{why}: {log}");
        assert!(log.contains(why), "{why}: {log}");
        assert!(!log.contains("panicked"), "{log}");
    };
    refused(&damaged, "checksum");
    refused(&saved[..saved.len() - 7], "cut short");
    refused(
        br#"{"version":1,"entries":[]}"#,
        "not a popup-ldap state file",
    );
    refused(b"", "no header");
    let huge = std::fs::File::create(&state).expect("create");
    huge.set_len(3 << 30).expect("a sparse 3 GiB file");
    let started = std::time::Instant::now();
    let out = serve().wait_with_output().expect("output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{log}");
    assert!(log.contains("more than the 2048000000 allowed"), "{log}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // Without the saved index, a directory that is down is a clear startup error.
    std::fs::remove_file(&state).expect("remove");
    let out = serve().wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(69));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("the first sync failed"), "{log}");
    assert!(log.contains("cannot read"), "{log}");
}
