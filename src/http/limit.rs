//! Rate limiting with governor: per client address and over all clients, checked before any
//! request parsing or directory work.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitConfig;

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
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    global: DefaultDirectRateLimiter,
}

impl RateLimits {
    /// Builds the limiters from the validated configuration.
    pub fn new(config: &RateLimitConfig) -> Self {
        RateLimits {
            per_ip: RateLimiter::keyed(quota(config.per_ip_per_second, config.per_ip_burst)),
            global: RateLimiter::direct(quota(config.global_per_second, config.global_burst)),
        }
    }

    /// Takes one request from `client`'s allowance and the global one.
    pub fn check(&self, client: IpAddr) -> Result<(), Limited> {
        self.per_ip
            .check_key(&client)
            .map_err(|_| Limited::Client)?;
        self.global.check().map_err(|_| Limited::Global)
    }

    /// Forgets clients whose allowance is full again, so the table does not grow forever.
    pub fn forget_idle_clients(&self) {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
    }
}

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
        let limits = RateLimits::new(&RateLimitConfig {
            per_ip_per_second: 1,
            per_ip_burst: 2,
            global_per_second: 1,
            global_burst: 3,
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
}
