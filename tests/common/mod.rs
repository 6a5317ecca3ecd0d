//! Test harness: a test CA, a throw-away slapd over TLS on loopback ports, configurations that
//! point at it, and the popup-ldap binary. Nothing here skips: a missing slapd is a failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use popup_ldap::settings::Config;
pub mod dns;
pub mod samba;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};

/// The fixture every slapd starts with.
pub const PEOPLE: &str = include_str!("../fixtures/people.ldif");
/// The service account of the fixture.
pub const BIND_DN: &str = "cn=popup,ou=services,dc=example,dc=com";
/// Its password.
pub const BIND_PASSWORD: &str = "popup-secret";
pub const BASE_DN: &str = "dc=example,dc=com";

const SLAPD_START: Duration = Duration::from_secs(15);

/// A CA and a certificate for 127.0.0.1 / localhost signed by it.
pub struct TestCa {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A CA and a certificate for localhost and 127.0.0.1.
    pub fn new(name: &str) -> Self {
        Self::for_hosts(name, &["localhost"], &["127.0.0.1"])
    }

    /// A CA and a certificate for these DNS names and IP addresses.
    pub fn for_hosts(name: &str, dns: &[&str], ips: &[&str]) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
        for ip in ips {
            server
                .subject_alt_names
                .push(SanType::IpAddress(ip.parse().unwrap()));
        }
        server
            .distinguished_name
            .push(DnType::CommonName, dns.first().copied().unwrap_or(name));
        let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A free loopback port, never handed out twice in this process.
///
/// Ports are taken below the kernel's ephemeral range, not from a bind to port 0: an ephemeral
/// port is free only until some parallel test's outgoing connection takes it, and then the
/// server started on it fails with "Address already in use" (it did, in CI). Below the range
/// nothing takes a port unasked; each process starts at an offset of its id, so the rare test
/// binaries that run side by side start far apart, and every port is checked by a bind.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const SPAN: u32 = 10_000;
    let first = ephemeral_floor().saturating_sub(SPAN).max(1024);
    let offset = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(
            n < SPAN,
            "no free loopback port in {first}..{}",
            first + SPAN
        );
        let port = u16::try_from(first + (offset + n) % SPAN).unwrap();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_floor() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    wait_for_port_within(port, child, what, SLAPD_START)
}

pub fn wait_for_port_within(port: u16, child: &mut Child, what: &str, within: Duration) {
    if let Err(why) = listening(port, child, within) {
        panic!("{what} {why}");
    }
}

/// Waits until something listens on `port`; why not, when `child` exits or time runs out.
fn listening(port: u16, child: &mut Child, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!(
                "exited with {status} before listening on port {port}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("did not listen on port {port} within {within:?}"))
}

pub fn tool(name: &str) -> PathBuf {
    installed(
        name,
        "The integration tests need a real OpenLDAP server: run tests/run.sh (it installs \
         slapd and ldap-utils), or apt-get install slapd ldap-utils",
    )
}

/// The path of an installed program; a missing one fails the test with `hint`.
pub fn installed(name: &str, hint: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed. {hint}");
}

/// How slapd's directories are named in cargo's scratch directory.
const SCRATCH_PREFIX: &str = "slapd-";
/// A slapd directory this old was left by a run killed before its end.
const SCRATCH_STALE: Duration = Duration::from_secs(24 * 3600);

/// A directory for a slapd's database, configuration and logs (the bench's servers' logs too),
/// in cargo's scratch directory for tests and benches (`target/tmp`), not /tmp: a run killed
/// before its end leaves it behind (a million-entry bench, gigabytes), and `cargo clean` or
/// the next run a day later clears it.
fn scratch_dir() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let stale = entry
            .file_name()
            .to_string_lossy()
            .starts_with(SCRATCH_PREFIX)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age > SCRATCH_STALE);
        if stale {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempdir_in(root)
        .unwrap()
}

/// A running slapd with the fixture loaded, serving ldap:// (for StartTLS) and ldaps://.
pub struct Slapd {
    pub dir: tempfile::TempDir,
    pub ldap_port: u16,
    pub ldaps_port: u16,
    pub ca: TestCa,
    child: Option<Child>,
}

impl Slapd {
    /// Starts slapd loaded with `ldif` (the fixture when `None`).
    pub fn start() -> Self {
        Self::start_with(PEOPLE)
    }

    pub fn start_with(ldif: &str) -> Self {
        Self::start_with_limits(ldif, "size=unlimited time=unlimited")
    }

    /// Starts slapd with `limits` for the service account (slapd.conf(5) syntax), e.g. an
    /// Active-Directory-like cap on unpaged searches and page sizes.
    pub fn start_with_limits(ldif: &str, limits: &str) -> Self {
        let dir = scratch_dir();
        let ca = TestCa::new("slapd");
        let d = dir.path();
        std::fs::write(d.join("ca.pem"), &ca.ca_pem).unwrap();
        std::fs::write(d.join("server.pem"), &ca.cert_pem).unwrap();
        std::fs::write(d.join("server.key"), &ca.key_pem).unwrap();
        std::fs::write(d.join("other-ca.pem"), TestCa::new("other").ca_pem).unwrap();
        std::fs::write(d.join("bind-password"), format!("{BIND_PASSWORD}\n")).unwrap();
        std::fs::create_dir(d.join("db")).unwrap();
        std::fs::write(d.join("slapd.conf"), slapd_conf(d, limits)).unwrap();
        std::fs::write(d.join("data.ldif"), ldif).unwrap();
        let out = Command::new(tool("slapadd"))
            .args(["-q", "-f"])
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("data.ldif"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut slapd = Slapd {
            dir,
            ldap_port: 0,
            ldaps_port: 0,
            ca,
            child: None,
        };
        slapd.run();
        slapd
    }

    fn run(&mut self) {
        if self.ldap_port == 0 {
            self.ldap_port = free_port();
            self.ldaps_port = free_port();
        }
        let urls = format!(
            "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
            self.ldap_port, self.ldaps_port
        );
        // `-d none`: in the foreground, with only what slapd always logs (such as why a bind
        // failed), kept in `slapd.log` for the panic below.
        let log = self.path("slapd.log");
        let mut child = Command::new(tool("slapd"))
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .args(["-h", &urls, "-d", "none"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let started = listening(self.ldaps_port, &mut child, SLAPD_START)
            .and_then(|()| listening(self.ldap_port, &mut child, SLAPD_START));
        if let Err(why) = started {
            let _ = child.kill();
            let _ = child.wait();
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("slapd {why}; it said:\n{said}");
        }
        self.child = Some(child);
    }

    /// The running slapd's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills slapd (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts slapd again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A configuration for this slapd over LDAPS with the service account; `extra` is TOML
    /// appended after the `[directory]` keys (it may open further sections).
    pub fn config_text(&self, extra: &str) -> String {
        format!(
            r#"[directory]
source = "ldap"
urls = ["{url}"]
ca_file = "{ca}"
bind_dn = "{BIND_DN}"
bind_password_file = "{pw}"
base_dn = "ou=people,{BASE_DN}"
filter = "(objectClass=inetOrgPerson)"
phone_attributes = ["telephoneNumber", "mobile", "homePhone"]
{extra}
"#,
            url = self.ldaps_url(),
            ca = self.path("ca.pem").display(),
            pw = self.path("bind-password").display(),
        )
    }

    /// [`Slapd::config_text`] in live mode.
    pub fn live_config_text(&self, extra: &str) -> String {
        live(&self.config_text(extra))
    }

    pub fn config(&self, extra: &str) -> Config {
        Config::parse(&self.config_text(extra), self.dir.path()).unwrap()
    }

    /// Runs the binary on this slapd (`extra` as in [`Slapd::config_text`]) on a free port.
    pub fn serve(&self, extra: &str) -> Server {
        let port = free_port();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{}",
            self.config_text(extra)
        );
        let config = self.config_file("popup.toml", &text);
        Server::start(&config, ([127, 0, 0, 1], port).into())
    }

    /// Writes a configuration file and returns its path.
    pub fn config_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Applies an LDIF change to the stopped server's database (slapmodify).
    pub fn modify_offline(&self, ldif: &str) {
        assert!(self.child.is_none(), "slapmodify needs slapd stopped");
        let changes = self.path("offline.ldif");
        std::fs::write(&changes, ldif).unwrap();
        let out = Command::new(tool("slapmodify"))
            .arg("-f")
            .arg(self.path("slapd.conf"))
            .arg("-l")
            .arg(&changes)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slapmodify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Applies an LDIF change with ldapmodify as the rootdn.
    pub fn modify(&self, ldif: &str) {
        let mut child = Command::new(tool("ldapmodify"))
            .args([
                "-x",
                "-H",
                &self.ldap_url(),
                "-D",
                &format!("cn=admin,{BASE_DN}"),
                "-w",
                "admin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ldapmodify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A configuration text switched to live lookups.
pub fn live(text: &str) -> String {
    text.replacen("[directory]\n", "[directory]\nmode = \"live\"\n", 1)
}

/// Callers of the fixture in the forms Voicenter sends, and whose name they must bring up:
/// the stored values use the messy formats real directories hold.
pub const FORMATS: &[(&str, &str)] = &[
    ("035551234", "אבי כהן"), // +972 (0)3 555 1234
    ("+97235551234", "אבי כהן"),
    ("00972-3-5551234", "אבי כהן"),
    ("035551235", "נועה מזרחי"),   // (03) 555 1235
    ("0521112233", "נועה מזרחי"),  // 972521112233
    ("026543210", "Yossi Peretz"), // 02 6543210 ext 12
    ("097654322", "מיכל ביטון"),   // 09-7654321 / 09-7654322
    ("097654321", "מיכל ביטון"),
    ("+1 212 555 0100", "John Smith"), // +1 (212) 555-0100
    ("0534445566", "עומר פרידמן"),     // en-dashes
    ("089876543", "תמר שפירא"),        // no-break spaces
    ("0547777777", "No Name"),         // no displayName: cn
];

fn slapd_conf(d: &Path, limits: &str) -> String {
    let d = d.display();
    format!(
        r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key
sizelimit 500
database mdb
maxsize 8589934592
suffix "{BASE_DN}"
rootdn "cn=admin,{BASE_DN}"
rootpw admin
directory {d}/db
index objectClass eq
index telephoneNumber,mobile,homePhone eq,sub
# The change attributes polled, as README recommends: without, every poll scans every entry
# (at 1,000,000, seconds under load).
index entryCSN,modifyTimestamp eq
limits dn.exact="{BIND_DN}" {limits}
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
"#
    )
}

/// The popup-ldap binary built for these tests.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_popup-ldap"))
}

/// An HTTP client for a server on loopback.
#[derive(Clone, Copy)]
pub struct Client(pub SocketAddr);

impl Client {
    /// A raw HTTP/1.1 exchange; returns status and body.
    pub fn request(&self, raw: &str) -> (u16, String) {
        http(self.0, raw)
    }

    pub fn get(&self, target: &str) -> (u16, String) {
        self.request(&format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ))
    }
}

/// Waits until a spawned popup-ldap listens on `addr`, and returns a client for it.
pub fn client_for(child: &mut Child, addr: SocketAddr) -> Client {
    wait_for_port(addr.port(), child, "popup-ldap");
    Client(addr)
}

/// [`client_for`], waiting up to `within` (a first sync of a large directory).
pub fn client_within(child: &mut Child, addr: SocketAddr, within: Duration) -> Client {
    wait_for_port_within(addr.port(), child, "popup-ldap", within);
    Client(addr)
}

/// Sends SIGTERM, as systemd does to stop the service.
pub fn terminate(child: &Child) {
    signal(child, "-TERM");
}

/// Sends a signal (`-HUP`, `-TERM`) with kill(1).
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A running `popup-ldap serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub client: Client,
}

impl Server {
    /// Starts the binary with `config` and waits until it listens on `addr`.
    pub fn start(config: &Path, addr: SocketAddr) -> Self {
        Self::start_logging(config, addr, Stdio::null())
    }

    /// [`Server::start`] with the log (stderr) going to `log`.
    pub fn start_logging(config: &Path, addr: SocketAddr, log: impl Into<Stdio>) -> Self {
        let mut child = binary()
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let client = client_for(&mut child, addr);
        Server { child, client }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one raw HTTP/1.1 request and reads the whole answer.
pub fn http(addr: SocketAddr, raw: &str) -> (u16, String) {
    let (status, text) = http_raw(addr, raw);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // Chunked answers: keep it simple, the server sends Content-Length for JSON.
    (status, body.to_owned())
}

/// [`http`], with the answer's head and body as they came.
pub fn http_raw(addr: SocketAddr, raw: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {text:?}"));
    (status, text)
}

/// A TCP relay in front of a real server, to make that server fail on cue: [`Relay::cut`]
/// is a server going down (connections reset, then refused), [`Relay::freeze`] one that
/// hangs (connections kept open, nothing passes either way), [`Relay::slow`] one whose every
/// answer comes late.
pub struct Relay {
    pub port: u16,
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
    open: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

const RELAY_FORWARDS: u8 = 0;
const RELAY_HANGS: u8 = 1;
const RELAY_REFUSES: u8 = 2;

impl Relay {
    /// A relay to `upstream`.
    pub fn to(upstream: SocketAddr) -> Self {
        Self::start(upstream, RELAY_FORWARDS, Duration::ZERO)
    }

    /// A relay to `upstream` that holds each piece of the server's answers for `late`.
    pub fn slow(upstream: SocketAddr, late: Duration) -> Self {
        Self::start(upstream, RELAY_FORWARDS, late)
    }

    /// A server that accepts connections and never says a word.
    pub fn hanging() -> Self {
        Self::start("127.0.0.1:9".parse().unwrap(), RELAY_HANGS, Duration::ZERO)
    }

    fn start(upstream: SocketAddr, state: u8, late: Duration) -> Self {
        use std::sync::atomic::{AtomicU8, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(AtomicU8::new(state));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (st, op) = (state.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                match st.load(Ordering::SeqCst) {
                    RELAY_REFUSES => return,
                    RELAY_HANGS => op.lock().unwrap().push(client),
                    _ => {
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        for s in [&client, &server] {
                            op.lock().unwrap().push(s.try_clone().unwrap());
                        }
                        pipe(
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            st.clone(),
                            Duration::ZERO,
                        );
                        pipe(server, client, st.clone(), late);
                    }
                }
            }
        });
        Relay { port, state, open }
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.port)
    }

    /// From now on nothing passes, and new connections are held without an answer.
    pub fn freeze(&self) {
        self.state
            .store(RELAY_HANGS, std::sync::atomic::Ordering::SeqCst);
    }

    /// Resets every connection and closes the port.
    pub fn cut(&self) {
        self.state
            .store(RELAY_REFUSES, std::sync::atomic::Ordering::SeqCst);
        // Wake the accepting thread so that it drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` while the relay forwards, each piece `late`; discards while it hangs.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
    late: Duration,
) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            std::thread::sleep(late);
            if state.load(std::sync::atomic::Ordering::SeqCst) == RELAY_FORWARDS
                && to.write_all(&buf[..n]).is_err()
            {
                return;
            }
        }
    });
}
