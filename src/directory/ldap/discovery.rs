//! Domain controllers found in DNS (`directory.domain`), the way Windows and sssd find them:
//! the SRV records `_ldap._tcp.<site>._sites.dc._msdcs.<domain>` (with `directory.site`)
//! and `_ldap._tcp.dc._msdcs.<domain>`, ordered by priority and weight (RFC 2782), asked
//! again when their TTL runs out.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::TokioAsyncResolver;

use crate::directory::DiscoverySettings;

/// How long a list is kept when the records say less, so that a TTL of 0 does not mean a DNS
/// query before every connection (connections are few: one is shared and kept).
pub(super) const MIN_TTL: Duration = Duration::from_secs(5);

/// Domain controllers as found: their URLs in the order to try them, and until when.
pub(super) struct Found {
    pub(super) urls: Vec<String>,
    pub(super) valid_until: Instant,
}

/// One SRV record: the DC's host name and LDAP port, its priority and weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) target: String,
    pub(super) port: u16,
    pub(super) priority: u16,
    pub(super) weight: u16,
}

/// Asks DNS for the domain's DCs (the site's first); the URLs are `ldaps://<dc>:636`, or with
/// `starttls`, `ldap://<dc>:<port>`. The SRV target is the URL's host, so TLS and Kerberos
/// check the DC's own name.
pub(super) async fn discover(
    settings: &DiscoverySettings,
    starttls: bool,
    timeout: Duration,
) -> Result<Found, String> {
    let resolver = resolver(settings.dns_server, timeout)?;
    let mut names = Vec::new();
    if let Some(site) = &settings.site {
        names.push(format!(
            "_ldap._tcp.{site}._sites.dc._msdcs.{}.",
            settings.domain
        ));
    }
    names.push(format!("_ldap._tcp.dc._msdcs.{}.", settings.domain));
    let mut urls: Vec<String> = Vec::new();
    let mut valid_until = Instant::now() + Duration::from_secs(24 * 3600);
    let mut errors = Vec::new();
    for name in &names {
        match resolver.srv_lookup(name.as_str()).await {
            Ok(found) => {
                valid_until = valid_until.min(found.as_lookup().valid_until());
                let records: Vec<Record> = found
                    .iter()
                    .map(|srv| Record {
                        target: srv.target().to_utf8().trim_end_matches('.').to_owned(),
                        port: srv.port(),
                        priority: srv.priority(),
                        weight: srv.weight(),
                    })
                    .collect();
                for url in ordered(records, random_seed())
                    .iter()
                    .map(|r| url(r, starttls))
                {
                    if !urls.contains(&url) {
                        urls.push(url);
                    }
                }
            }
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if urls.is_empty() {
        return Err(format!(
            "no domain controller in DNS: {}",
            errors.join("; ")
        ));
    }
    Ok(Found {
        urls,
        valid_until: valid_until.max(Instant::now() + MIN_TTL),
    })
}

/// The system's resolver (`/etc/resolv.conf`), or `dns_server` alone (tests).
fn resolver(
    dns_server: Option<SocketAddr>,
    timeout: Duration,
) -> Result<TokioAsyncResolver, String> {
    let (config, mut options) = match dns_server {
        Some(server) => {
            let mut config = ResolverConfig::new();
            config.add_name_server(NameServerConfig::new(server, Protocol::Udp));
            (config, ResolverOpts::default())
        }
        None => hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?,
    };
    options.timeout = timeout;
    options.attempts = 2;
    Ok(TokioAsyncResolver::tokio(config, options))
}

/// The URL for one record.
fn url(record: &Record, starttls: bool) -> String {
    if starttls {
        format!("ldap://{}:{}", record.target, record.port)
    } else {
        format!("ldaps://{}:636", record.target)
    }
}

/// RFC 2782's order: lower priority first; within one priority, drawn at random with chances
/// in proportion to weight (weight 0 last). `seed` drives the draw.
pub(super) fn ordered(mut records: Vec<Record>, mut seed: u64) -> Vec<Record> {
    records.sort_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)));
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let group_end = records
            .iter()
            .take_while(|r| r.priority == priority)
            .count();
        let mut group: Vec<Record> = records.drain(..group_end).collect();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|r| u64::from(r.weight)).sum();
            // A xorshift step: enough to spread the load, no cryptography needed, so no
            // random-number crate for it.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let pick = if total == 0 {
                0
            } else {
                let mut point = seed % total;
                group
                    .iter()
                    .position(|r| {
                        let w = u64::from(r.weight);
                        if point < w {
                            true
                        } else {
                            point -= w;
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            out.push(group.remove(pick));
        }
    }
    out
}

/// A different seed each time: the standard library's per-process random hash keys.
fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    hasher.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(target: &str, priority: u16, weight: u16) -> Record {
        Record {
            target: target.to_owned(),
            port: 389,
            priority,
            weight,
        }
    }

    #[test]
    fn priority_orders_and_weight_shares() {
        let records = vec![
            record("backup", 10, 100),
            record("zero", 0, 0),
            record("heavy", 0, 90),
            record("light", 0, 10),
        ];
        let mut first_heavy = 0;
        for seed in 1..=1000u64 {
            let order: Vec<_> = ordered(records.clone(), seed * 7919)
                .into_iter()
                .map(|r| r.target)
                .collect();
            assert_eq!(order.last().map(String::as_str), Some("backup"));
            assert_eq!(order[2], "zero", "weight 0 comes last in its priority");
            first_heavy += usize::from(order[0] == "heavy");
        }
        assert!((800..=980).contains(&first_heavy), "{first_heavy} of 1000");
    }

    #[test]
    fn urls_use_the_dcs_name() {
        let r = record("dc1.example.com", 0, 100);
        assert_eq!(url(&r, false), "ldaps://dc1.example.com:636");
        assert_eq!(url(&r, true), "ldap://dc1.example.com:389");
    }
}
