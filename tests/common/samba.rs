//! A throw-away Samba AD DC: provisioned in a folder under the target directory, serving only
//! LDAP (LDAPS and StartTLS with a test CA) in a private network namespace of its own, reached
//! over a veth pair like a remote domain controller. It holds a low-privilege service account,
//! more than 1,000 users (some disabled, Hebrew and English names, numbers in every AD phone
//! attribute and in mixed formats) and some contacts.
//!
//! Samba's LDAP ports are fixed (389/636), hence the namespace. Samba is started by a thread
//! that lives as long as the test process and with `PR_SET_PDEATHSIG`, so it dies with the
//! tests however they end; its namespace and veth pair vanish with it.

use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::TestCa;

pub const REALM: &str = "EXAMPLE.TEST";
pub const BASE_DN: &str = "DC=example,DC=test";
pub const ADMIN: &str = "Administrator@EXAMPLE.TEST";
pub const ADMIN_PASSWORD: &str = "Passw0rd-Admin!";
/// The service account popup-ldap binds as: a plain domain user.
pub const SERVICE: &str = "svc-popup@EXAMPLE.TEST";
pub const SERVICE_PASSWORD: &str = "Passw0rd-Svc!";
/// The DNS name in the DC's certificate.
pub const DC_NAME: &str = "dc1.example.test";

/// Bulk users; every tenth is disabled.
pub const USERS: usize = 1200;
/// Contacts.
pub const CONTACTS: usize = 20;

const HINT: &str = "The Active Directory tests need Samba's AD DC: run tests/run.sh (it installs \
                    samba, samba-ad-dc and friends), or apt-get install samba samba-ad-dc \
                    samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind ldap-utils";
const START: Duration = Duration::from_secs(60);

/// A running domain controller.
pub struct SambaDc {
    dir: PathBuf,
    /// The CA that signed the DC's certificate.
    pub ca: TestCa,
    /// The DC's address (in its namespace, routed over the veth pair).
    pub address: Ipv4Addr,
    /// An address on the DC's link where no host answers: a domain controller that is down.
    pub down_address: Ipv4Addr,
    exited: Arc<Mutex<Option<ExitStatus>>>,
}

/// The DC shared by the tests of one test binary (provisioning takes ~15 s).
pub fn shared() -> &'static SambaDc {
    static DC: OnceLock<SambaDc> = OnceLock::new();
    DC.get_or_init(|| SambaDc::start(0))
}

/// Another DC with the same domain name, base DN and people, but its own identity (its own
/// dsServiceName and invocationId, its own USNs): what popup-ldap sees when it fails over to
/// another domain controller.
pub fn other() -> &'static SambaDc {
    static DC: OnceLock<SambaDc> = OnceLock::new();
    DC.get_or_init(|| SambaDc::start(1))
}

impl SambaDc {
    fn start(instance: u32) -> Self {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let pid = std::process::id();
        remove_stale(root);
        let dir = root.join(format!("samba-{pid}-{instance}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (host, address, down_address) = link_addresses(pid * 2 + instance);
        let ca = TestCa::for_hosts("samba", &[DC_NAME], &[&address.to_string(), "127.0.0.1"]);
        std::fs::write(dir.join("ca.pem"), &ca.ca_pem).unwrap();
        std::fs::write(dir.join("dc.pem"), &ca.cert_pem).unwrap();
        write_private(&dir.join("dc.key"), &ca.key_pem);
        write_private(&dir.join("bind-password"), SERVICE_PASSWORD);
        let conf = provision(&dir, address);
        run(
            Command::new(super::installed("samba-tool", HINT))
                .args(["user", "create", "svc-popup", SERVICE_PASSWORD, "-s"])
                .arg(&conf),
            "samba-tool user create",
        );
        let_service_read_deleted_objects(&conf);
        export_keytabs(&dir, &conf);
        std::fs::write(dir.join("krb5.conf"), krb5_conf(address)).unwrap();

        let veth_host = format!("pad{:x}h{instance}", pid);
        let veth_dc = format!("pad{:x}n{instance}", pid);
        let mut samba = Command::new(super::installed("unshare", HINT));
        samba
            .args(["--net", "sh", "-c", NAMESPACE_SCRIPT, "samba-ns"])
            .arg(&veth_dc)
            .arg(address.to_string())
            .arg(super::installed("samba", HINT))
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("samba.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("samba.err")).unwrap());
        let (samba_pid, exited) = spawn_kept(samba);
        wait_for_own_namespace(samba_pid);
        ip(&[
            "link",
            "add",
            &veth_host,
            "type",
            "veth",
            "peer",
            "name",
            &veth_dc,
            "netns",
            &samba_pid.to_string(),
        ]);
        ip(&["addr", "add", &format!("{host}/29"), "dev", &veth_host]);
        ip(&["link", "set", &veth_host, "up"]);
        let dc = SambaDc {
            dir,
            ca,
            address,
            down_address,
            exited,
        };
        dc.wait_for_ldaps();
        dc.apply("ldapadd", &people());
        dc
    }

    fn wait_for_ldaps(&self) {
        let deadline = Instant::now() + START;
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&(self.address, 636).into(), Duration::from_millis(200))
                .is_ok()
            {
                return;
            }
            if let Some(status) = *self.exited.lock().unwrap() {
                panic!(
                    "samba exited with {status} before listening on 636: {}{}",
                    std::fs::read_to_string(self.path("samba.err")).unwrap_or_default(),
                    std::fs::read_to_string(self.path("samba.out")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "samba did not listen on {}:636 within {START:?}",
            self.address
        );
    }

    /// A file in the DC's folder (`ca.pem`, `bind-password`...).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}", self.address)
    }

    pub fn ldap_url(&self) -> String {
        format!("ldap://{}", self.address)
    }

    /// Applies LDIF changes (`changetype` records) as Administrator over LDAPS.
    pub fn modify(&self, ldif: &str) {
        self.apply("ldapmodify", ldif);
    }

    /// What `ldapsearch` prints for the service account over LDAPS (LDIF).
    pub fn ldapsearch(&self, args: &[&str]) -> String {
        run(
            self.ldap_tool("ldapsearch", SERVICE, SERVICE_PASSWORD)
                .args(args),
            "ldapsearch",
        )
    }

    fn apply(&self, program: &str, ldif: &str) {
        let file = tempfile::NamedTempFile::new_in(&self.dir).unwrap();
        std::fs::write(file.path(), ldif).unwrap();
        run(
            self.ldap_tool(program, ADMIN, ADMIN_PASSWORD)
                .arg("-f")
                .arg(file.path()),
            program,
        );
    }

    /// An OpenLDAP client tool bound as `dn` over LDAPS, trusting the DC's CA.
    fn ldap_tool(&self, program: &str, dn: &str, password: &str) -> Command {
        let mut command = Command::new(super::installed(program, HINT));
        command.env("LDAPTLS_CACERT", self.path("ca.pem")).args([
            "-x",
            "-H",
            &self.ldaps_url(),
            "-D",
            dn,
            "-w",
            password,
        ]);
        command
    }
}

/// Runs inside the new network namespace: waits for the DC's end of the veth pair, gives it
/// the DC's address, and becomes samba (in the foreground, without a process group of its
/// own, so that stopping it touches nothing else).
const NAMESPACE_SCRIPT: &str = r#"set -e
ip link set lo up
i=0
while ! ip link show "$1" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -lt 400 ] || { echo "the veth $1 never arrived" >&2; ip link >&2; exit 1; }
    sleep 0.05
done
ip addr add "$2/29" dev "$1"
ip link set "$1" up
exec "$3" --foreground --no-process-group -M single -s "$4"
"#;

/// Waits until `pid` has left this process's network namespace (unshare(1) does that just
/// after it starts), so that the veth peer lands in the DC's namespace, not in ours.
fn wait_for_own_namespace(pid: u32) {
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net"));
        if theirs.as_ref().is_ok_and(|t| *t != ours) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "unshare (pid {pid}) did not enter a network namespace of its own: {theirs:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A /29 per DC: the host's end, the DC, and an address where nobody answers.
fn link_addresses(n: u32) -> (Ipv4Addr, Ipv4Addr, Ipv4Addr) {
    let n = n % (1 << 19);
    let base = u32::from(Ipv4Addr::new(10, 64, 0, 0)) + n * 8;
    (
        Ipv4Addr::from(base + 1),
        Ipv4Addr::from(base + 2),
        Ipv4Addr::from(base + 3),
    )
}

/// The service account's keytab (`svc-popup.keytab`), and one that is out of date
/// (`stale.keytab`: exported for `svc-stale`, whose password changed after).
fn export_keytabs(dir: &Path, conf: &Path) {
    let tool = |args: &[&str]| {
        let mut command = Command::new(super::installed("samba-tool", HINT));
        command.args(args).arg("-s").arg(conf);
        command
    };
    let export = |principal: &str, file: &str| {
        let keytab = dir.join(file);
        let principal = format!("--principal={principal}@{REALM}");
        let keytab = keytab.to_str().unwrap();
        run(
            &mut tool(&["domain", "exportkeytab", keytab, &principal]),
            "samba-tool domain exportkeytab",
        );
    };
    // A Windows DC registers ldap/<its name> itself; Samba's provisioning registers HOST/ only.
    let spn = format!("ldap/{DC_NAME}");
    run(
        &mut tool(&["spn", "add", &spn, "DC1$"]),
        "samba-tool spn add",
    );
    export("svc-popup", "svc-popup.keytab");
    run(
        &mut tool(&["user", "create", "svc-stale", "Passw0rd-Stale1!"]),
        "samba-tool user create svc-stale",
    );
    export("svc-stale", "stale.keytab");
    run(
        &mut tool(&[
            "user",
            "setpassword",
            "svc-stale",
            "--newpassword=Passw0rd-Stale2!",
        ]),
        "samba-tool user setpassword svc-stale",
    );
}

/// A krb5.conf for the test realm: its KDC is the DC, found by address, never by DNS.
fn krb5_conf(address: Ipv4Addr) -> String {
    format!(
        "[libdefaults]\n\tdefault_realm = {REALM}\n\tdns_lookup_kdc = false\n\
         \tdns_lookup_realm = false\n\trdns = false\n\tdns_canonicalize_hostname = false\n\
         \tudp_preference_limit = 1\n\n[realms]\n\t{REALM} = {{\n\t\tkdc = {address}:88\n\t}}\n\n\
         [domain_realm]\n\t.example.test = {REALM}\n\texample.test = {REALM}\n"
    )
}

/// Provisions the domain and rewrites its smb.conf for an LDAP-only DC in `dir`.
fn provision(dir: &Path, address: Ipv4Addr) -> PathBuf {
    let target = dir.join("dc");
    run(
        Command::new(super::installed("samba-tool", HINT))
            .args(["domain", "provision"])
            .arg(format!("--targetdir={}", target.display()))
            .args([
                &format!("--realm={REALM}"),
                "--domain=EXAMPLE",
                "--server-role=dc",
                // The DC's name, ldap/dc1.example.test its LDAP service principal.
                "--host-name=dc1",
                "--dns-backend=NONE",
                "--use-rfc2307",
                &format!("--adminpass={ADMIN_PASSWORD}"),
                &format!("--host-ip={address}"),
                &format!("--option=interfaces={address}"),
                "--option=bind interfaces only=yes",
            ]),
        "samba-tool domain provision",
    );
    for sub in ["run", "log"] {
        std::fs::create_dir_all(target.join(sub)).unwrap();
    }
    let conf = target.join("etc/smb.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let own = [
        format!("log file = {}/log/log.%m", target.display()),
        format!("pid directory = {}/run", target.display()),
        "server services = ldap kdc".to_owned(),
        // As Windows DCs do (MS-ADTS: no SASL security layer on a TLS connection): a GSSAPI
        // bind over LDAPS or StartTLS without sign or seal. Samba's default asks for them.
        "ldap server require strong auth = allow_sasl_over_tls".to_owned(),
        "tls enabled = yes".to_owned(),
        format!("tls keyfile = {}", dir.join("dc.key").display()),
        format!("tls certfile = {}", dir.join("dc.pem").display()),
        format!("tls cafile = {}", dir.join("ca.pem").display()),
    ];
    let mut out = String::new();
    for line in text.lines() {
        let key = line.trim_start();
        if key.starts_with("log file") || key.starts_with("server services") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.trim() == "[global]" {
            for setting in &own {
                out.push_str(&format!("\t{setting}\n"));
            }
        }
    }
    std::fs::write(&conf, out).unwrap();
    conf
}

/// Spawns `command` from a thread that lives as long as the process, with SIGKILL as its
/// parent-death signal; returns its pid and where its exit status will appear.
fn spawn_kept(mut command: Command) -> (u32, Arc<Mutex<Option<ExitStatus>>>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let exited = Arc::new(Mutex::new(None));
    let status = exited.clone();
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("samba-keeper".into())
        .spawn(move || {
            let mut child = command.spawn().unwrap();
            pid_tx.send(child.id()).unwrap();
            let code = child.wait().unwrap();
            *status.lock().unwrap() = Some(code);
            // The parent-death signal follows this thread: keep it for the process's life.
            loop {
                std::thread::park();
            }
        })
        .unwrap();
    (pid_rx.recv().unwrap(), exited)
}

/// Removes the folders of DCs whose test process has gone.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("samba-")
            .and_then(|n| n.split('-').next())
        {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn ip(args: &[&str]) {
    run(Command::new(super::installed("ip", HINT)).args(args), "ip");
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Runs a command to success and returns what it printed.
/// What README asks of an AD admin for deletions to show up within a poll: the service
/// account may list the Deleted Objects container and read its tombstones. (`samba-tool dsacl`
/// cannot: it reads the container without the Show Deleted control.)
fn let_service_read_deleted_objects(conf: &Path) {
    run(
        Command::new(super::installed("python3", HINT))
            .args(["-c", GRANT_DELETED_OBJECTS])
            .arg(conf),
        "granting the service account read access to Deleted Objects",
    );
}

const GRANT_DELETED_OBJECTS: &str = r#"
import sys, ldb
from samba.auth import system_session
from samba.dcerpc import security
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

lp = LoadParm()
lp.load(sys.argv[1])
db = SamDB(lp=lp, session_info=system_session())
domain = db.get_domain_sid()
svc = db.search(base=db.domain_dn(), expression="(sAMAccountName=svc-popup)", attrs=["objectSid"])
sid = ndr_unpack(security.dom_sid, svc[0]["objectSid"][0])
dn = "CN=Deleted Objects," + str(db.domain_dn())
found = db.search(base=dn, scope=ldb.SCOPE_BASE, attrs=["nTSecurityDescriptor"], controls=["show_deleted:1"])
sddl = ndr_unpack(security.descriptor, found[0]["nTSecurityDescriptor"][0]).as_sddl(security.dom_sid(domain))
at = sddl.index("(", sddl.index("D:"))
sddl = sddl[:at] + "(A;;LCRP;;;%s)" % sid + sddl[at:]
m = ldb.Message(ldb.Dn(db, dn))
m["nTSecurityDescriptor"] = ldb.MessageElement(
    ndr_pack(security.descriptor.from_sddl(sddl, security.dom_sid(domain))),
    ldb.FLAG_MOD_REPLACE, "nTSecurityDescriptor")
db.modify(m, controls=["show_deleted:1"])
"#;

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// People with names and numbers a test looks for, by hand.
pub const NAMED: &[(&str, &str)] = &[
    // (number a caller would send, the displayName it must bring up)
    ("035551234", "דנה כהן"),
    ("0522776772", "Yossi Levi"),
    ("1042", "Reception Desk"),
    ("0779912345", "Acme Supplies"),
    // Abroad, sent with the country code and no + (as Voicenter's JSON does) or with +.
    ("442079460031", "Oliver Bennett"),
    ("12125550132", "Maria Lopez"),
    ("+1 212 555 0132", "Maria Lopez"),
    ("33612345678", "Claire Martin"),
];

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The DN of bulk user `i`.
pub fn user_dn(i: usize) -> String {
    format!("CN=user{i},CN=Users,{BASE_DN}")
}

/// The national number in bulk user `i`'s telephoneNumber.
pub fn user_number(i: usize) -> String {
    format!("03{}", 5_000_000 + i)
}

/// The name bulk user `i` answers to (Hebrew for even `i`).
pub fn user_name(i: usize) -> String {
    const HEBREW: [&str; 4] = ["נועה", "אבי", "מיכל", "יוסי"];
    if i % 2 == 0 {
        format!("{} משתמש {i}", HEBREW[i / 2 % 4])
    } else {
        format!("User {i}")
    }
}

/// userAccountControl: 512 is a normal account, 514 the same disabled; 32 (no password
/// required) lets these accounts exist without one.
fn people() -> String {
    let mut out = String::new();
    let mut user = |cn: &str, uac: u32, attrs: &[(&str, &str)]| {
        out.push_str(&format!(
            "dn: CN={cn},CN=Users,{BASE_DN}\nobjectClass: user\nsAMAccountName: {cn}\n\
             userAccountControl: {uac}\n"
        ));
        for (name, value) in attrs {
            out.push_str(&format!("{name}:: {}\n", b64(value)));
        }
        out.push('\n');
    };
    user(
        "dana",
        544,
        &[
            ("displayName", "דנה כהן"),
            ("givenName", "דנה"),
            ("sn", "כהן"),
            ("company", "אקמה בע\"מ"),
            ("department", "תמיכה"),
            ("title", "ראש צוות"),
            ("telephoneNumber", "+972 (0)3 555-1234"),
        ],
    );
    user(
        "yossi",
        544,
        &[
            ("displayName", "Yossi Levi"),
            ("givenName", "Yossi"),
            ("sn", "Levi"),
            ("company", "Acme"),
            ("department", "Sales"),
            ("title", "Account Manager"),
            ("mobile", "052-277-6772"),
            ("otherTelephone", "+1 (212) 555-0100"),
        ],
    );
    user(
        "reception",
        544,
        &[("displayName", "Reception Desk"), ("ipPhone", "1042")],
    );
    // Staff abroad: numbers in their office's national format, the country in c and/or
    // countryCode as AD keeps it.
    user(
        "london",
        544,
        &[
            ("displayName", "Oliver Bennett"),
            ("c", "GB"),
            ("co", "United Kingdom"),
            ("countryCode", "826"),
            ("telephoneNumber", "020 7946 0031"),
        ],
    );
    user(
        "nyc",
        544,
        &[
            ("displayName", "Maria Lopez"),
            ("countryCode", "840"),
            ("telephoneNumber", "(212) 555-0132"),
        ],
    );
    user(
        "paris",
        544,
        &[
            ("displayName", "Claire Martin"),
            ("c", "FR"),
            ("countryCode", "250"),
            ("mobile", "06 12 34 56 78"),
        ],
    );
    user(
        "gone",
        546,
        &[
            ("displayName", "Departed Employee"),
            ("telephoneNumber", "03-555-9999"),
        ],
    );
    for i in 0..USERS {
        let uac = if i % 10 == 0 { 546 } else { 544 };
        let name = user_name(i);
        let (given, family) = name.split_once(' ').unwrap_or((&name, ""));
        let phone = match i % 3 {
            0 => format!("03-{}", 5_000_000 + i),
            1 => format!("+972 3 {}", 5_000_000 + i),
            _ => format!("(03) {}", 5_000_000 + i),
        };
        let extra = match i % 4 {
            0 => ("mobile", format!("+972 (0)54 {}", 6_000_000 + i)),
            1 => ("ipPhone", format!("{}", 20_000 + i)),
            2 => ("otherTelephone", format!("972-2-{}", 6_000_000 + i)),
            _ => ("homePhone", format!("08.{} ext. 9", 6_000_000 + i)),
        };
        user(
            &format!("user{i}"),
            uac,
            &[
                ("displayName", name.as_str()),
                ("givenName", given),
                ("sn", family),
                ("company", "Acme"),
                ("department", "Support"),
                ("title", "Agent"),
                ("telephoneNumber", phone.as_str()),
                (extra.0, extra.1.as_str()),
            ],
        );
    }
    out.push_str(&format!(
        "dn: CN=Acme Supplies,CN=Users,{BASE_DN}\nobjectClass: contact\n\
         displayName: Acme Supplies\ncompany: Acme Supplies Ltd\ntelephoneNumber: 077-991-2345\n\n"
    ));
    for i in 0..CONTACTS {
        out.push_str(&format!(
            "dn: CN=Contact {i},CN=Users,{BASE_DN}\nobjectClass: contact\n\
             displayName: Contact {i}\ncompany: Customer Ltd\nmobile: 054-{}\n\n",
            7_000_000 + i
        ));
    }
    out
}
