//! Who may call: an address allow-list (the client taken from `X-Forwarded-For` only when the
//! peer is a trusted proxy) and a shared token compared in constant time.

use std::net::IpAddr;

use super::settings::AccessSettings;

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client address is not in `access.allow` (403).
    Address,
    /// The token is missing or wrong (401).
    Token,
}

/// The configured access rules.
#[derive(Debug, Clone, Default)]
pub struct Access(AccessSettings);

/// Token sources a request may use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The URL's query string (`token=`).
    pub query: &'a str,
    /// `X-Popup-Token`.
    pub header: Option<&'a str>,
    /// `Authorization` (`Bearer <token>`).
    pub authorization: Option<&'a str>,
}

impl Access {
    /// Rules from the validated configuration.
    pub fn new(config: AccessSettings) -> Self {
        Access(config)
    }

    /// The client: the peer, or, when the peer is a trusted proxy, the nearest address in
    /// `X-Forwarded-For` that is not one (read from the right, as proxies append).
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: IpAddr| self.0.trusted_proxies.iter().any(|n| n.contains(ip));
        let Some(header) = forwarded_for.filter(|_| trusted(peer)) else {
            return peer;
        };
        let mut client = peer;
        for hop in header.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted(ip) => client = ip,
                Ok(ip) => return ip,
                // A hop that is not an address: trust nothing further left.
                Err(_) => return client,
            }
        }
        client
    }

    /// Whether `client` may call at all.
    pub fn check_address(&self, client: IpAddr) -> Result<(), Refusal> {
        if self.0.allow.is_empty() || self.0.allow.iter().any(|n| n.contains(client)) {
            Ok(())
        } else {
            Err(Refusal::Address)
        }
    }

    /// Whether calls must present `access.token` (else [`Access::check_token`] passes all).
    pub fn requires_token(&self) -> bool {
        self.0.token.is_some()
    }

    /// Whether the request carries the token (when one is configured).
    pub fn check_token(&self, presented: Presented<'_>) -> Result<(), Refusal> {
        let Some(expected) = &self.0.token else {
            return Ok(());
        };
        let from_query = form_urlencoded::parse(presented.query.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
        let bearer = presented
            .authorization
            .and_then(|a| a.strip_prefix("Bearer ").map(str::trim));
        let candidates = [from_query.as_deref(), presented.header, bearer];
        let mut ok = false;
        for candidate in candidates.into_iter().flatten() {
            ok |= constant_time_eq(candidate.as_bytes(), expected.expose().as_bytes());
        }
        if ok {
            Ok(())
        } else {
            Err(Refusal::Token)
        }
    }
}

/// Compares without stopping at the first difference (`subtle`), so the time taken tells
/// nothing about how much of the token was right (only whether the lengths differ).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn access(allow: &[&str], proxies: &[&str], token: Option<&str>) -> Access {
        Access::new(AccessSettings {
            token: token.map(Secret::new),
            allow: allow.iter().map(|n| n.parse().expect("cidr")).collect(),
            trusted_proxies: proxies.iter().map(|n| n.parse().expect("cidr")).collect(),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let a = access(&[], &["10.0.0.0/8"], None);
        let xff = Some("203.0.113.5, 10.0.0.7");
        assert_eq!(a.client(ip("10.0.0.1"), xff), ip("203.0.113.5"));
        // A spoofed header from an untrusted peer changes nothing.
        assert_eq!(a.client(ip("198.51.100.1"), xff), ip("198.51.100.1"));
        // The client cannot push its own choice past the proxy's append.
        assert_eq!(
            a.client(ip("10.0.0.1"), Some("1.2.3.4, 203.0.113.5")),
            ip("203.0.113.5")
        );
        assert_eq!(a.client(ip("10.0.0.1"), Some("garbage")), ip("10.0.0.1"));
        assert_eq!(a.client(ip("10.0.0.1"), None), ip("10.0.0.1"));
    }

    #[test]
    fn allow_lists_refuse_other_addresses() {
        let a = access(&["192.0.2.0/24"], &[], None);
        assert_eq!(a.check_address(ip("192.0.2.9")), Ok(()));
        assert_eq!(a.check_address(ip("198.51.100.1")), Err(Refusal::Address));
        assert_eq!(
            access(&[], &[], None).check_address(ip("198.51.100.1")),
            Ok(())
        );
    }

    #[test]
    fn tokens_come_from_the_query_or_headers() {
        let a = access(&[], &[], Some("s3cret-s3cret-s3cret"));
        let with = |query, header, authorization| {
            a.check_token(Presented {
                query,
                header,
                authorization,
            })
        };
        assert_eq!(
            with("phone=1&token=s3cret-s3cret-s3cret", None, None),
            Ok(())
        );
        assert_eq!(with("", Some("s3cret-s3cret-s3cret"), None), Ok(()));
        assert_eq!(with("", None, Some("Bearer s3cret-s3cret-s3cret")), Ok(()));
        assert_eq!(with("token=wrong", None, None), Err(Refusal::Token));
        assert_eq!(with("", None, Some("Basic czNjcmV0")), Err(Refusal::Token));
        assert_eq!(with("phone=1", None, None), Err(Refusal::Token));
        assert_eq!(
            access(&[], &[], None).check_token(Presented::default()),
            Ok(())
        );
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
