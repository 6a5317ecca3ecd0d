//! IP networks in CIDR notation (`192.0.2.0/24`, `2001:db8::/32`, or a bare address).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// An IPv4 or IPv6 network (`ipnet`'s, with IPv4-mapped addresses read as IPv4 and a bare
/// address shown without its prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

/// Text that is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not an address or `address/prefix`.
    #[error("{0:?} is not an address or a network such as 192.0.2.0/24 or 2001:db8::/32")]
    Syntax(String),
    /// An address with bits set past the prefix: probably a typo for the network or the host.
    #[error("{text:?} has host bits set: write the network {network} or the single address without /prefix")]
    HostBits {
        /// What was written.
        text: String,
        /// The network it lies in.
        network: Cidr,
    },
}

impl Cidr {
    /// The network of `prefix` bits that holds `ip` (IPv4-mapped addresses read as IPv4;
    /// a prefix longer than the address is the address).
    pub fn of(ip: IpAddr, prefix: u8) -> Cidr {
        let ip = unmapped(ip);
        let width = if ip.is_ipv4() { 32 } else { 128 };
        // Cannot fail: the prefix is at most the address's width.
        let net = IpNet::new(ip, prefix.min(width)).unwrap_or_else(|_| IpNet::from(ip));
        Cidr(net.trunc())
    }

    /// Whether `ip` is in the network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&unmapped(ip))
    }
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let fail = || CidrError::Syntax(text.to_owned());
        let written = match text.split_once('/') {
            Some(_) => text.parse::<IpNet>().map_err(|_| fail())?,
            None => IpNet::from(text.parse::<IpAddr>().map_err(|_| fail())?),
        };
        let network = Cidr::of(written.addr(), written.prefix_len());
        if network.0.addr() != unmapped(written.addr()) {
            return Err(CidrError::HostBits {
                text: text.to_owned(),
                network,
            });
        }
        Ok(network)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn networks_contain_their_addresses() {
        let n: Cidr = "192.0.2.0/24".parse().expect("cidr");
        assert!(n.contains(ip("192.0.2.200")));
        assert!(!n.contains(ip("192.0.3.1")));
        assert!(n.contains(ip("::ffff:192.0.2.7")));
        let one: Cidr = "203.0.113.9".parse().expect("cidr");
        assert!(one.contains(ip("203.0.113.9")) && !one.contains(ip("203.0.113.8")));
        let v6: Cidr = "2001:db8::/32".parse().expect("cidr");
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("192.0.2.1")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains(ip("8.8.8.8")));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host.example",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn host_bits_past_the_prefix_are_refused_naming_the_network() {
        let e = "192.0.2.77/24".parse::<Cidr>().expect_err("host bits");
        assert_eq!(
            e.to_string(),
            "\"192.0.2.77/24\" has host bits set: write the network 192.0.2.0/24 or the single \
             address without /prefix"
        );
        assert!("2001:db8::1/64".parse::<Cidr>().is_err());
        assert!("2001:db8::/64".parse::<Cidr>().is_ok());
    }

    #[test]
    fn networks_of_addresses_clear_host_bits() {
        let of = |a: &str, p| Cidr::of(ip(a), p).to_string();
        assert_eq!(of("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(of("192.0.2.77", 24), "192.0.2.0/24");
        assert_eq!(of("::ffff:192.0.2.77", 32), "192.0.2.77");
        assert_eq!(of("192.0.2.77", 0), "0.0.0.0/0");
        assert_eq!(of("2001:db8::7", 64), "2001:db8::/64");
        assert_eq!(of("::ffff:192.0.2.7", 64), "192.0.2.7");
    }
}
