//! Two instances behind Debian's HAProxy on loopback, as README's "High availability" sets
//! them up, answering from the test slapd: one killed and started again under steady calls,
//! and no popup fails; the restarted one answers from its state file before its sync ends.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http, Server, Slapd};

/// HAProxy in the foreground with README's health check and retries, killed on drop.
struct Haproxy(Child);

impl Haproxy {
    fn start(slapd: &Slapd, front: u16, backends: [u16; 2]) -> Self {
        let config = format!(
            "global\n    maxconn 256\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n\
             \x20   timeout server 3s\n    retries 3\n    option redispatch 1\n\
             \x20   retry-on conn-failure empty-response response-timeout 503\n\
             frontend popup\n    bind 127.0.0.1:{front}\n    default_backend popup_ldap\n\
             backend popup_ldap\n    option httpchk GET /readyz\n    http-check expect status 200\n\
             \x20   default-server check inter 200ms fall 2 rise 1\n\
             \x20   server a 127.0.0.1:{}\n    server b 127.0.0.1:{}\n",
            backends[0], backends[1]
        );
        let path = slapd.config_file("haproxy.cfg", &config);
        let haproxy = common::installed("haproxy", "apt-get install haproxy");
        let mut child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy");
        common::wait_for_port_within(front, &mut child, "haproxy", Duration::from_secs(10));
        Haproxy(child)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One instance on `port`, with a state file of its own, logging to `name.log`.
fn instance(slapd: &Slapd, name: &str, port: u16) -> Server {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{}\n[index]\nstate_file = \"{name}.state\"\n\
         poll_interval_s = 1\n",
        slapd.config_text("")
    );
    let config = slapd.config_file(&format!("{name}.toml"), &text);
    let log = std::fs::File::create(slapd.path(&format!("{name}.log"))).expect("log");
    Server::start_logging(&config, ([127, 0, 0, 1], port).into(), log)
}

#[test]
fn a_replica_killed_and_restarted_under_calls_fails_no_popup() {
    let slapd = Slapd::start();
    let (front, a, b) = (free_port(), free_port(), free_port());
    let mut first = instance(&slapd, "a", a);
    let _second = instance(&slapd, "b", b);
    let _haproxy = Haproxy::start(&slapd, front, [a, b]);
    // Both save their index before the first one goes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(slapd.path("a.state").exists() && slapd.path("b.state").exists()) {
        assert!(Instant::now() < deadline, "the instances saved no state");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut restarted = None;
    for i in 0..80 {
        if i == 20 {
            // Killed as a crash would: no goodbye to HAProxy.
            let _ = first.child.kill();
            let _ = first.child.wait();
        }
        if i == 40 {
            let handle = std::thread::spawn({
                let config = slapd.path("a.toml");
                let log = std::fs::File::create(slapd.path("a-again.log")).expect("log");
                move || Server::start_logging(&config, ([127, 0, 0, 1], a).into(), log)
            });
            restarted = Some(handle);
        }
        let (status, body) = http(
            ([127, 0, 0, 1], front).into(),
            "GET /popup?phone=0722776772 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 200, "call {i}: {body}");
        assert!(body.contains("\"TOTAL\":1"), "call {i}: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = restarted
        .expect("restarted")
        .join()
        .expect("the first instance again");
    let (status, _) = http(
        ([127, 0, 0, 1], a).into(),
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "the restarted instance is not ready");
    // It answered from its state file first, then synced.
    let log = std::fs::read_to_string(slapd.path("a-again.log")).expect("log");
    let saved = log
        .find("answering from the saved index while the first sync runs")
        .unwrap_or_else(|| panic!("not from its state file: {log}"));
    let synced = log
        .find("index synced kind=\"full\"")
        .unwrap_or_else(|| panic!("no sync after the start: {log}"));
    assert!(saved < synced, "{log}");
    drop(again);
}
