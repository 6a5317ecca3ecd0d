//! Client addresses as log lines show them.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

/// An address written as `IpAddr`'s `Display` writes it, an IPv4 address without
/// `core::fmt`: its `Display` formats each octet through a `Formatter` (about 1,200
/// instructions, on every popup's log line).
#[derive(Clone, Copy, Debug)]
pub(super) struct Address(pub(super) IpAddr);

impl Address {
    /// Appends the address to `out`.
    pub(super) fn push_to(self, out: &mut String) {
        let IpAddr::V4(v4) = self.0 else {
            // IPv6 clients are rare enough to take `core::fmt`'s way.
            let _ = write!(out, "{}", self.0);
            return;
        };
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(itoa::Buffer::new().format(octet));
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // "255.255.255.255": 15 bytes at most.
        let mut text = String::with_capacity(15);
        self.push_to(&mut text);
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn writes_what_ipaddr_writes(octets in any::<[u8; 4]>(), segments in any::<[u16; 8]>()) {
            for ip in [IpAddr::from(octets), IpAddr::from(segments)] {
                prop_assert_eq!(Address(ip).to_string(), ip.to_string());
            }
        }
    }

    #[test]
    fn writes_the_extremes() {
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "::1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = text.parse().expect("address");
            assert_eq!(Address(ip).to_string(), text);
        }
    }
}
