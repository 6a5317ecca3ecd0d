//! `cargo bench --bench popup`: popup-ldap against a throw-away slapd holding 100,000 people
//! (`cargo bench --bench popup -- --million`: 1,000,000).
//!
//! Measures, in one run on this machine:
//! - the full sync of index mode (a start) against `ldapsearch` dumping the same entries with
//!   paging, in three alternating pairs (the median ratio);
//! - the resident memory of index mode after the sync;
//! - what an idle poll costs (CPU, bytes written) with `entryCSN` and with `modifyTimestamp`;
//! - a restart from the state file with the directory unreachable: time and memory;
//! - calls while full resyncs run back to back: rate, p99, longest call, peak memory; p99 and
//!   longest call again with slapd in the idle scheduling class, as if the directory had a
//!   host of its own (those two rows measure until a resync has finished during them, or for
//!   at most 2.4 minutes); and at a steady 2,000 calls a second (a large call centre's peak)
//!   until a resync has finished during them, its end included;
//! - the maximum request rate of index mode, live mode, and a bare warp handler answering a
//!   constant JSON body (the ceiling of the HTTP stack), under the same closed-loop load
//!   cycling through 1,000 callers in national form (ceiling and index: five alternating
//!   runs each, the median of the five pairs' ratios, and each server's CPU time a request
//!   in the median pair: what the load generator's share of the two cores leaves out); index
//!   mode with `[lookup] answer_cache = false` in the same rounds, every call looked up (the
//!   load repeats its callers, so with the cache on most are answered from the kept answers),
//!   and index mode under Voicenter's own pattern (a new caller each call, five requests a
//!   call: three extensions ringing, the answer and the hang-up);
//! - the same ratios under `wrk -t2 -c32` (Debian's `wrk`), as the performance issue measured
//!   them: the ceiling, index mode and index mode without kept answers alternating, seven
//!   rounds first of all and five more after the closed-loop rounds;
//! - index mode's latency at half its maximum rate (open loop, best of two).
//!
//! These machines are noisy: every figure is the best of two or three tries, and the targets
//! compare figures taken in the same run.
//!
//! Environment: `BENCH_PEOPLE` (100000, or 1000000 with `--million`), `BENCH_SECONDS` (5 per
//! run), `BENCH_CONNECTIONS` (16).

#[path = "../../tests/common/mod.rs"]
mod common;
mod dataset;
mod load;
mod upkeep;
mod wrk;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{binary, client_for, client_within, free_port, Slapd};
use load::{Outcome, Pace};

const BASELINE_FLAG: &str = "--baseline-server";
const MILLION_FLAG: &str = "--million";
const CALLERS: usize = 1000;
/// Calls in the Voicenter-pattern load (a new caller each).
const CALLS: usize = 50_000;
/// Alternating runs of the ceiling and index mode whose ratios are compared.
const PAIRS: usize = 5;
/// wrk pairs run first, on servers that have served nothing yet (the issue's measure).
const WRK_PAIRS: usize = 7;
/// Alternating `ldapsearch` dumps and starts of index mode whose ratios are compared.
const SYNC_PAIRS: usize = 3;
/// The most runs a row measured across a full resync takes (6 s each with the warm-up: 2.4
/// minutes).
const RESYNC_RUNS: usize = 24;
/// A large call centre's peak, in requests a second (400 calls a second, five requests each):
/// the rate at which a resync is followed to its end.
const PEAK_RATE: f64 = 2000.0;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The ceiling: warp answering a constant popup, nothing else.
fn baseline_server(port: u16) {
    use warp::Filter;
    let body = r#"{"STATUS":"OK","CLIENTNAME":"Dana Levi","COMPANY":"Voicenter","TOTAL":1}"#;
    let route = warp::any().map(move || {
        warp::reply::with_header(body, "content-type", "application/json; charset=utf-8")
    });
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(warp::serve(route).run(([127, 0, 0, 1], port)));
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts popup-ldap; returns it once it listens, with the sync time it logged (index mode).
fn popup_ldap(slapd: &Slapd, name: &str, extra: &str) -> (Server, Option<u64>) {
    let (server, synced, _) =
        popup_ldap_with(slapd, name, &slapd.config_text(&extra_with_defaults(extra)));
    (server, synced)
}

fn extra_with_defaults(extra: &str) -> String {
    format!("{extra}\n[rate_limit]\nenabled = false\n[log]\nlevel = \"info\"")
}

/// Starts popup-ldap on `directory` (a configuration without `[server]`); returns it once it
/// listens, with the sync time it logged and the time it took to listen.
fn popup_ldap_with(slapd: &Slapd, name: &str, directory: &str) -> (Server, Option<u64>, Duration) {
    let port = free_port();
    let config = slapd.config_file(
        &format!("{name}.toml"),
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{directory}"),
    );
    // Logs go to a file, as to a journal: one line per request at the default level.
    let log_path = slapd.path(&format!("{name}.log"));
    let log = std::fs::File::create(&log_path).expect("log file");
    let started = Instant::now();
    let mut child = binary()
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn popup-ldap");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    // A first sync of a million entries takes tens of seconds.
    client_within(&mut child, addr, Duration::from_secs(300));
    let listening = started.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    let synced = std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.contains("index built"))
        .and_then(|l| l.split("ms=").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<u64>().ok());
    (Server { child, addr }, synced, listening)
}

/// `ldapsearch` dumping what a full sync reads (same filter, attributes, page size): the
/// directory's own floor, in milliseconds.
fn ldapsearch_ms(slapd: &Slapd) -> f64 {
    let started = Instant::now();
    let out = Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", slapd.path("ca.pem"))
        .args([
            "-LLL",
            "-x",
            "-H",
            &slapd.ldaps_url(),
            "-D",
            common::BIND_DN,
            "-y",
        ])
        .arg(slapd.path("bind-password-raw"))
        .args([
            "-b",
            "ou=people,dc=example,dc=com",
            "-E",
            "pr=500/noprompt",
            "(&(objectClass=inetOrgPerson)(|(telephonenumber=*)(mobile=*)(homephone=*)))",
            "cn",
            "company",
            "displayname",
            "homephone",
            "mobile",
            "o",
            "telephonenumber",
            "modifyTimestamp",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("ldapsearch (apt-get install ldap-utils)");
    assert!(out.success(), "ldapsearch failed");
    started.elapsed().as_secs_f64() * 1000.0
}

/// Full resyncs `log` says have finished.
fn full_resyncs(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("index synced") && l.contains("kind=\"full\""))
        .count()
}

/// Full resyncs the log at `path` says have finished after its first `from` bytes, and the
/// offset read up to (only the new part of a log of millions of lines is read each time).
fn full_resyncs_since(path: &std::path::Path, from: u64) -> (usize, u64) {
    use std::io::{Read, Seek, SeekFrom};
    let mut bytes = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file
            .seek(SeekFrom::Start(from))
            .and_then(|_| file.read_to_end(&mut bytes));
    }
    (
        full_resyncs(&String::from_utf8_lossy(&bytes)),
        from + bytes.len() as u64,
    )
}

/// What index mode costs beyond answering calls (see [`upkeep`]).
struct Upkeep {
    /// CPU ms and bytes written per idle poll: `entryCSN`, then `modifyTimestamp`.
    idle_csn: (f64, f64),
    idle_timestamp: (f64, f64),
    /// The same with a presence check after every poll (`entryCSN`, nothing deleted).
    presence: (f64, f64),
    /// Time to listen and RSS after a restart from the state file, directory unreachable.
    restart: (Duration, f64),
    /// Full resyncs back to back: how many ran, calls at the maximum rate and at half the
    /// index's maximum, RSS before and peak RSS.
    resyncs: usize,
    resync_closed: Outcome,
    resync_half: Outcome,
    /// Calls at half rate during resyncs with slapd in the idle scheduling class, as if the
    /// directory ran on a host of its own (as it does in production): what popup-ldap's own
    /// work costs calls.
    resync_half_remote: Outcome,
    /// The server's own time per call during `resync_half` (its log's `us=`): p99 and max, ms.
    resync_handling: (f64, f64),
    /// Calls at [`PEAK_RATE`] until a full resync has finished during them, and how many did.
    resync_peak: (Outcome, usize),
    resync_memory: (f64, f64),
}

fn measure_upkeep(
    slapd: &Slapd,
    run: &dyn Fn(SocketAddr, Pace) -> Outcome,
    half_rate: f64,
) -> Upkeep {
    // Each phase has a state file of its own: a server restoring another phase's saved
    // index would answer at once and run its full sync inside the measured window.
    let index = |name: &str, attr: &str, extra: &str| {
        format!(
            "[index]\nchange_attribute = \"{attr}\"\npoll_interval_s = 1\nstate_file = \"{}\"\n{extra}",
            slapd.path(&format!("{name}.state")).display()
        )
    };
    let idle = |name: &str, attr: &str, extra: &str| {
        let (server, _) = popup_ldap(slapd, name, &index(name, attr, extra));
        std::thread::sleep(Duration::from_secs(2));
        upkeep::idle_polls(server.child.id(), Duration::from_secs(10))
    };
    let idle_csn = idle("idle-csn", "entryCSN", "");
    let idle_timestamp = idle("idle-timestamp", "modifyTimestamp", "");
    let presence = idle("presence", "entryCSN", "presence_check_interval_s = 1");
    // The restart restores what the first idle server saved.
    let unreachable = slapd
        .config_text(&extra_with_defaults(&index("idle-csn", "entryCSN", "")))
        .replace(&slapd.ldaps_url(), "ldaps://127.0.0.1:9");
    let (restarted, _, took) = popup_ldap_with(slapd, "restart", &unreachable);
    let restart = (took, upkeep::rss_mib(restarted.child.id()));
    drop(restarted);
    let (resync, _) = popup_ldap(
        slapd,
        "resync",
        &index("resync", "entryCSN", "full_resync_interval_s = 1"),
    );
    let before = upkeep::rss_mib(resync.child.id());
    let resync_closed = run(resync.addr, Pace::Closed);
    let resync_log = slapd.path("resync.log");
    let logged = || std::fs::metadata(&resync_log).map_or(0, |m| m.len());
    // Under load a full resync of a million entries outlasts a run: runs follow each other
    // until one has finished during them, so that its end is measured too.
    let across_a_resync = |pace| {
        let mut checked = logged();
        let mut outcome = run(resync.addr, pace);
        let mut finished = 0;
        for _ in 1..RESYNC_RUNS {
            let (ended, read_to) = full_resyncs_since(&resync_log, checked);
            finished += ended;
            checked = read_to;
            if finished > 0 {
                break;
            }
            outcome = outcome.and(run(resync.addr, pace));
        }
        (
            outcome,
            finished + full_resyncs_since(&resync_log, checked).0,
        )
    };
    let from = logged();
    let (resync_half, _) = across_a_resync(Pace::Fixed(half_rate));
    // The log is written in batches at most 50 ms apart.
    std::thread::sleep(Duration::from_millis(200));
    let resync_handling = upkeep::handling_ms(&resync_log, from, logged());
    let slapd_pid = slapd.pid().expect("slapd runs");
    upkeep::idle_class(slapd_pid, true);
    let (resync_half_remote, _) = across_a_resync(Pace::Fixed(half_rate));
    upkeep::idle_class(slapd_pid, false);
    let resync_peak = across_a_resync(Pace::Fixed(PEAK_RATE));
    let peak = upkeep::hwm_mib(resync.child.id());
    let log = std::fs::read_to_string(&resync_log).unwrap_or_default();
    // Everything but the calls: the syncs, and any error.
    for line in log.lines().filter(|l| !l.contains("handlers: popup ")) {
        eprintln!("resync server: {line}");
    }
    let resyncs = full_resyncs(&log);
    Upkeep {
        idle_csn,
        idle_timestamp,
        presence,
        restart,
        resyncs,
        resync_closed,
        resync_half,
        resync_half_remote,
        resync_handling,
        resync_peak,
        resync_memory: (before, peak),
    }
}

/// Sorted ratios as "median% (lowest-highest%)".
fn spread(sorted: &[f64]) -> String {
    format!(
        "{:.0}% ({:.0}-{:.0}%)",
        sorted[sorted.len() / 2] * 100.0,
        sorted[0] * 100.0,
        sorted[sorted.len() - 1] * 100.0
    )
}

fn row(name: &str, o: &Outcome) -> String {
    format!(
        "| {name} | {:.0} | {:.3} | {:.3} | {:.3} | {} |",
        o.rate(),
        o.ms(0.5),
        o.ms(0.99),
        o.ms(0.999),
        o.errors
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == BASELINE_FLAG) {
        let port = args.get(i + 1).and_then(|p| p.parse().ok()).expect("port");
        return baseline_server(port);
    }
    let million = args.iter().any(|a| a == MILLION_FLAG);
    let people = env_usize("BENCH_PEOPLE", if million { 1_000_000 } else { 100_000 });
    let seconds = Duration::from_secs(env_usize("BENCH_SECONDS", 5) as u64);
    let connections = env_usize("BENCH_CONNECTIONS", 16);
    let warmup = Duration::from_secs(1);

    let started = Instant::now();
    let slapd = Slapd::start_with(&dataset::ldif(people));
    let raw_password = slapd.path("bind-password-raw");
    std::fs::write(&raw_password, common::BIND_PASSWORD).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&raw_password, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    eprintln!(
        "slapd with {people} people ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The full sync happens at start. Starts alternate with ldapsearch, and the pair with the
    // median ratio is reported: a busy spell on these machines slows one side of one pair,
    // where the best of three of each side compared runs minutes apart (0.95-1.36x).
    let mut syncs = Vec::new();
    let mut started_index = None;
    for _ in 0..SYNC_PAIRS {
        let dump_ms = ldapsearch_ms(&slapd);
        let (server, ms) = popup_ldap(&slapd, "index", "");
        syncs.push((ms.expect("index mode logs its first sync") as f64, dump_ms));
        started_index = Some(server);
    }
    syncs.sort_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
    let (sync_ms, dump_ms) = syncs[syncs.len() / 2];
    let index = started_index.expect("a start");
    let rss = upkeep::rss_mib(index.child.id());
    eprintln!("index mode pid {}", index.child.id());
    let (uncached, _) = popup_ldap(&slapd, "uncached", "[lookup]\nanswer_cache = false");
    let (live, _) = popup_ldap(&slapd, "live", "mode = \"live\"");
    let baseline_port = free_port();
    let mut baseline_child = Command::new(std::env::current_exe().expect("exe"))
        .args([BASELINE_FLAG, &baseline_port.to_string()])
        .spawn()
        .expect("baseline");
    let baseline_addr: SocketAddr = format!("127.0.0.1:{baseline_port}").parse().expect("addr");
    client_for(&mut baseline_child, baseline_addr);
    let baseline = Server {
        child: baseline_child,
        addr: baseline_addr,
    };

    let callers: Vec<String> = dataset::callers(people, CALLERS)
        .into_iter()
        .map(|n| format!("/popup?phone={n}&statusCall=Ringing"))
        .collect();
    // The issue's own measure first, on servers that have served nothing yet: after the
    // rounds below, each server has written gigabytes of log lines the kernel is still writing
    // back, and presence checks start 5 minutes in (its pairs there read 0.74-0.83 in four
    // runs against 0.84-0.94 first; benches/RESULTS.md).
    let script = wrk::script(slapd.path("callers.lua"), &callers);
    let wrk_pairs = |pairs| {
        let servers = [index.addr, uncached.addr];
        wrk::alternating(pairs, seconds, &script, baseline.addr, servers)
    };
    let (wrk_first, wrk_first_uncached) = wrk_pairs(WRK_PAIRS);
    let run = |addr, pace| load::run(addr, &callers, connections, pace, warmup, seconds);
    let calls = dataset::calls(people, CALLS);
    let voicenter = |addr| load::run(addr, &calls, connections, Pace::Closed, warmup, seconds);
    // Ceiling and index alternate: the ratio of each pair of neighbouring runs is kept, and
    // the median of them reported (the ceiling alone moves by a third within minutes on these
    // machines); the tables show each server's best run.
    let best = |a: Outcome, b: Outcome| if a.rate() >= b.rate() { a } else { b };
    let closed_run = |server: &Server| {
        let before = upkeep::Usage::of(server.child.id());
        let outcome = run(server.addr, Pace::Closed);
        // The server's CPU over the warm-up too, at the measured rate.
        let requests = outcome.rate() * (warmup + seconds).as_secs_f64();
        let (ms, _) = upkeep::Usage::of(server.child.id()).per(&before, requests);
        (outcome, ms * 1000.0)
    };
    let ((mut base, base_cpu), (mut idx, idx_cpu)) = (closed_run(&baseline), closed_run(&index));
    let mut ratios = vec![idx.rate() / base.rate()];
    let mut cpu = vec![(base_cpu, idx_cpu)];
    // Index mode looking every call up (no kept answers), and under Voicenter's pattern,
    // after the same ceiling run.
    let mut uncached_ratios = vec![closed_run(&uncached).0.rate() / base.rate()];
    let mut voicenter_ratios = vec![voicenter(index.addr).rate() / base.rate()];
    let mut voicenter_uncached = vec![voicenter(uncached.addr).rate() / base.rate()];
    for _ in 1..PAIRS {
        let (b, b_cpu) = closed_run(&baseline);
        let (i, i_cpu) = closed_run(&index);
        ratios.push(i.rate() / b.rate());
        cpu.push((b_cpu, i_cpu));
        uncached_ratios.push(closed_run(&uncached).0.rate() / b.rate());
        voicenter_ratios.push(voicenter(index.addr).rate() / b.rate());
        voicenter_uncached.push(voicenter(uncached.addr).rate() / b.rate());
        base = best(base, b);
        idx = best(idx, i);
    }
    // The issue's measure again, after those rounds.
    let (wrk_ratios, wrk_uncached) = wrk_pairs(PAIRS);
    for r in [
        &mut ratios,
        &mut uncached_ratios,
        &mut voicenter_ratios,
        &mut voicenter_uncached,
    ] {
        r.sort_by(f64::total_cmp);
    }
    cpu.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
    let half_rate = Pace::Fixed(idx.rate() / 2.0);
    let lower_p99 = |a: Outcome, b: Outcome| if a.ms(0.99) <= b.ms(0.99) { a } else { b };
    let half = lower_p99(run(index.addr, half_rate), run(index.addr, half_rate));
    let peak_rate = run(index.addr, Pace::Fixed(PEAK_RATE));
    let rss_after = upkeep::rss_mib(index.child.id());
    let liv = run(live.addr, Pace::Closed);
    upkeep::wait_idle(slapd.pid().expect("slapd runs"), Duration::from_secs(300));
    drop((live, index, uncached, baseline));
    let upkeep = measure_upkeep(&slapd, &run, idx.rate() / 2.0);

    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l
                .strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
            .unwrap_or_default()
    );
    let ratio = ratios[ratios.len() / 2];
    let (base_us, idx_us) = cpu[cpu.len() / 2];
    let over_live = idx.rate() / liv.rate();
    let sync_ratio = sync_ms / dump_ms;
    let check = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "\n## popup-ldap benchmark: {people} people, {connections} connections, {}s per run",
        seconds.as_secs()
    );
    println!("Machine: {machine}. Load: {CALLERS} callers in national form, cycled.\n");
    println!("| server | req/s | p50 ms | p99 ms | p99.9 ms | errors |");
    println!("|---|---|---|---|---|---|");
    println!("{}", row("bare warp (ceiling)", &base));
    println!("{}", row("popup-ldap index", &idx));
    println!("{}", row("popup-ldap live", &liv));
    println!(
        "{}",
        row(
            &format!(
                "index at {:.0} req/s (half max, open loop)",
                idx.rate() / 2.0
            ),
            &half
        )
    );
    println!();
    println!("| measure | value | target | |");
    println!("|---|---|---|---|");
    println!(
        "| index / bare warp req/s, median of {PAIRS} alternating pairs | {} | >= 85% | {} |",
        spread(&ratios),
        check(ratio >= 0.85)
    );
    println!(
        "| the same with `[lookup] answer_cache = false` (every call looked up), after the same ceiling runs | {} | (figure) | - |",
        spread(&uncached_ratios),
    );
    for (cache, ratios) in [("on", &voicenter_ratios), ("off", &voicenter_uncached)] {
        println!(
            "| index under Voicenter's pattern ({CALLS} calls from as many callers, 5 requests each: 3 extensions ringing, answer, hang-up), answer cache {cache} / the same ceiling runs | {} | (figure) | - |",
            spread(ratios),
        );
    }
    println!(
        "| index / bare warp req/s under `wrk -t2 -c32` (the issue's measure), median of {WRK_PAIRS} alternating pairs, run first | {} | >= 85% | {} |",
        spread(&wrk_first),
        check(wrk_first[WRK_PAIRS / 2] >= 0.85)
    );
    println!(
        "| the same with `answer_cache = false`, after the same ceiling runs | {} | (figure) | - |",
        spread(&wrk_first_uncached),
    );
    println!(
        "| the same two under `wrk`, {PAIRS} pairs after the rounds above (4-5 minutes in) | {}; {} | (figure) | - |",
        spread(&wrk_ratios),
        spread(&wrk_uncached),
    );
    println!(
        "| index p99 at half max rate | {:.3} ms | <= 2 ms | {} |",
        half.ms(0.99),
        check(half.ms(0.99) <= 2.0)
    );
    println!(
        "| server CPU a request (user + system, all threads), the pair with the median ratio | ceiling {base_us:.1} µs, index {idx_us:.1} µs ({:.2}x) | (figure) | - |",
        idx_us / base_us
    );
    println!(
        "| index / live req/s | {over_live:.0}x | >= 20x | {} |",
        check(over_live >= 20.0)
    );
    let sync_range = format!(
        "{:.2}-{:.2}x",
        syncs[0].0 / syncs[0].1,
        syncs[syncs.len() - 1].0 / syncs[syncs.len() - 1].1
    );
    println!("| full sync / ldapsearch dump, the median of {SYNC_PAIRS} alternating pairs | {sync_ms:.0} / {dump_ms:.0} ms = {sync_ratio:.2}x ({sync_range}) | <= 1.2x | {} |", check(sync_ratio <= 1.2));
    let rss_target = if people >= 1_000_000 { 320.0 } else { 50.0 };
    println!("| index RSS after sync (after load) | {rss:.1} MiB ({rss_after:.1} MiB) | <= {rss_target:.0} MiB | {} |", check(rss <= rss_target));
    let poll_cpu_target = if people >= 1_000_000 { 60.0 } else { 20.0 };
    for (name, (cpu, bytes)) in [
        ("entryCSN", upkeep.idle_csn),
        ("modifyTimestamp", upkeep.idle_timestamp),
    ] {
        println!(
            "| idle poll ({name}, every second) | {cpu:.2} ms CPU, {bytes:.0} bytes written | <= {poll_cpu_target:.0} ms, <= 1 MB | {} |",
            check(cpu <= poll_cpu_target && bytes <= 1e6)
        );
    }
    let (cpu, bytes) = upkeep.presence;
    println!(
        "| presence check after every poll (names of all entries; nothing deleted) | {cpu:.1} ms CPU, {bytes:.0} bytes written a second | (figure) | - |"
    );
    let (took, restart_rss) = upkeep.restart;
    let restart_target = if people >= 1_000_000 { 8.0 } else { 1.0 };
    println!(
        "| restart from the state file, directory down | {:.2} s, {restart_rss:.1} MiB ({:.2}x the synced RSS) | <= {restart_target:.0} s, <= 1.1x | {} |",
        took.as_secs_f64(),
        restart_rss / rss,
        check(took.as_secs_f64() <= restart_target && restart_rss <= 1.1 * rss)
    );
    let (before, peak) = upkeep.resync_memory;
    let during = &upkeep.resync_half;
    println!(
        "| calls during full resyncs run back to back ({} finished in all) | {:.0} req/s ({:.0}% of index), p99 {:.3} ms at half rate ({:.2}x outside), longest {:.1} ms | p99 <= 2x, longest <= 20 ms | {} |",
        upkeep.resyncs,
        upkeep.resync_closed.rate(),
        upkeep.resync_closed.rate() / idx.rate() * 100.0,
        during.ms(0.99),
        during.ms(0.99) / half.ms(0.99),
        during.ms(1.0),
        check(during.ms(0.99) <= 2.0 * half.ms(0.99) && during.ms(1.0) <= 20.0)
    );
    let (handling_p99, handling_max) = upkeep.resync_handling;
    println!(
        "| the same calls, popup-ldap's own time (its log's `us=`, from reading the request to the answer) | p99 {:.0} µs (whole µs: 0 is under 1), longest {handling_max:.1} ms | (figure) | - |",
        handling_p99 * 1000.0
    );
    let remote = &upkeep.resync_half_remote;
    println!(
        "| the same with slapd in the idle scheduling class (the directory on a host of its own) | p99 {:.3} ms at half rate ({:.2}x outside), longest {:.1} ms | p99 <= 2x, longest <= 20 ms | {} |",
        remote.ms(0.99),
        remote.ms(0.99) / half.ms(0.99),
        remote.ms(1.0),
        check(remote.ms(0.99) <= 2.0 * half.ms(0.99) && remote.ms(1.0) <= 20.0)
    );
    println!(
        "| calls during full resyncs counted from their sending, not from when they were due (the load generator's own lateness left out): slapd at nice 0; slapd in the idle class; no resync (the half-rate run above) | p99 {:.3} ms, longest {:.1} ms; p99 {:.3} ms, longest {:.1} ms; p99 {:.3} ms, longest {:.1} ms | (figure) | - |",
        during.served_ms(0.99),
        during.served_ms(1.0),
        remote.served_ms(0.99),
        remote.served_ms(1.0),
        half.served_ms(0.99),
        half.served_ms(1.0),
    );
    let (at_peak, finished) = &upkeep.resync_peak;
    println!(
        "| calls at {PEAK_RATE:.0} req/s across full resyncs to their end ({finished} finished during them) | p99 {:.3} ms ({:.2}x outside, {:.3} ms), longest {:.1} ms | p99 <= 2x, longest <= 20 ms, a resync ended | {} |",
        at_peak.ms(0.99),
        at_peak.ms(0.99) / peak_rate.ms(0.99),
        peak_rate.ms(0.99),
        at_peak.ms(1.0),
        check(
            *finished > 0
                && at_peak.ms(0.99) <= 2.0 * peak_rate.ms(0.99)
                && at_peak.ms(1.0) <= 20.0
        )
    );
    println!(
        "| peak memory during full resyncs | {peak:.1} MiB ({:.2}x the {before:.1} MiB before) | <= 1.3x | {} |",
        peak / before,
        check(peak <= 1.3 * before)
    );
}
