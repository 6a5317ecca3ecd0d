//! Rate limiting with governor: per client network (an IPv4 address or an IPv6 /64 by
//! default) and over all clients, checked before any request parsing or directory work.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::settings::RateLimitSettings;
use crate::cidr::Cidr;

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The client's own limit.
    Client,
    /// The limit over all clients.
    Global,
}

/// The configured limits.
pub struct RateLimits {
    per_ip: DefaultKeyedRateLimiter<Cidr>,
    global: DefaultDirectRateLimiter,
    prefixes: (u8, u8),
}

impl RateLimits {
    /// Builds the limiters from the validated configuration.
    pub fn new(config: &RateLimitSettings) -> Self {
        RateLimits {
            per_ip: RateLimiter::keyed(quota(config.per_ip_per_second, config.per_ip_burst)),
            global: RateLimiter::direct(quota(config.global_per_second, config.global_burst)),
            prefixes: (config.ipv4_prefix, config.ipv6_prefix),
        }
    }

    /// The network whose members share `client`'s allowance.
    pub fn key(&self, client: IpAddr) -> Cidr {
        group(client, self.prefixes)
    }

    /// Takes one request from the allowance of `client`'s network and the global one.
    pub fn check(&self, client: IpAddr) -> Result<(), Limited> {
        self.per_ip
            .check_key(&self.key(client))
            .map_err(|_| Limited::Client)?;
        self.global.check().map_err(|_| Limited::Global)
    }

    /// Forgets clients whose allowance is full again, so the table does not grow forever.
    pub fn forget_idle_clients(&self) {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
    }
}

/// `client`'s network by `prefixes` (IPv4, IPv6): whom a client's limit and log summary
/// stand for.
pub fn group(client: IpAddr, (v4, v6): (u8, u8)) -> Cidr {
    match client {
        IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => Cidr::of(client, v6),
        _ => Cidr::of(client, v4),
    }
}

/// The grouping when rate limiting is off: IPv4 addresses, IPv6 /64s.
pub const DEFAULT_GROUPING: (u8, u8) = (32, 64);

fn quota(per_second: u32, burst: u32) -> Quota {
    // Validation guarantees both are at least 1.
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_burst_and_all_share_the_global_one() {
        let limits = RateLimits::new(&RateLimitSettings {
            per_ip_per_second: 1,
            per_ip_burst: 2,
            global_per_second: 1,
            global_burst: 3,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert_eq!(limits.check(a), Ok(()));
        assert_eq!(limits.check(a), Ok(()));
        assert_eq!(limits.check(a), Err(Limited::Client));
        assert_eq!(limits.check(b), Ok(()));
        assert_eq!(limits.check(b), Err(Limited::Global));
        limits.forget_idle_clients();
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let limits = RateLimits::new(&RateLimitSettings {
            per_ip_per_second: 1,
            per_ip_burst: 2,
            global_per_second: 1000,
            global_burst: 1000,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        });
        let rotating = (1..=3u16).map(|n| IpAddr::from([0x2001, 0xdb8, 0, 7, n, n, n, n]));
        let answers: Vec<_> = rotating.map(|ip| limits.check(ip)).collect();
        assert_eq!(answers, [Ok(()), Ok(()), Err(Limited::Client)]);
        let neighbour: IpAddr = [0x2001, 0xdb8, 0, 8, 0, 0, 0, 1].into();
        assert_eq!(limits.check(neighbour), Ok(()));
        let v4: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(limits.key(v4).to_string(), "192.0.2.1");
    }
}
