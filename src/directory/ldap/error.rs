//! LDAP failures in words an admin can act on.

/// The words for a search whose base DN the server does not show this account.
pub(super) fn no_such_base(base_dn: &str) -> String {
    format!(
        "directory.base_dn {base_dn:?} does not exist on this server, or the bind account may \
         not read it"
    )
}

/// An ldap3 error with a hint at what to do when a certificate is at fault.
pub(super) fn describe_ldap_error(e: &ldap3::LdapError) -> String {
    use rustls::CertificateError as C;
    let hint = match certificate_fault(e) {
        Some(C::UnknownIssuer) => {
            " (the server's certificate is not signed by directory.ca_file or the system roots)"
        }
        Some(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            " (put the name the certificate holds in directory.urls)"
        }
        Some(C::Expired | C::ExpiredContext { .. }) => " (renew the server's certificate)",
        _ => "",
    };
    format!("{e}{hint}")
}

/// The certificate error somewhere in `e`'s chain of causes, if any. (An `io::Error` holds
/// the TLS error as its inner error, which its `source()` skips.)
fn certificate_fault<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::CertificateError> {
    let mut next = Some(e);
    while let Some(error) = next {
        let inner = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for candidate in [Some(error), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(fault)) = candidate.downcast_ref() {
                return Some(fault);
            }
        }
        next = inner.and_then(|i| i.source()).or_else(|| error.source());
    }
    None
}

/// The RFC 4511 name of an LDAP result code.
pub(super) fn result_name(rc: u32) -> &'static str {
    match rc {
        1 => "operations error",
        2 => "protocol error",
        3 => "time limit exceeded",
        8 => "stronger authentication required (use ldaps:// or StartTLS)",
        11 => "administrative limit exceeded",
        13 => "confidentiality required (use ldaps:// or StartTLS)",
        32 => "no such object",
        34 => "invalid DN syntax",
        48 => "inappropriate authentication",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwilling to perform",
        87 => "filter error",
        _ => "error",
    }
}
