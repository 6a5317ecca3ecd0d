//! LDAP failures in words an admin can act on.

/// The words for a search whose base DN the server does not show this account.
pub(super) fn no_such_base(base_dn: &str) -> String {
    format!(
        "directory.base_dn {base_dn:?} does not exist on this server, or the bind account may \
         not read it"
    )
}

/// An ldap3 error with a hint at its usual cause when a certificate is at fault.
pub(super) fn describe_ldap_error(e: &ldap3::LdapError) -> String {
    let text = e.to_string();
    let hint = if text.contains("UnknownIssuer") {
        " (the server's certificate is not signed by directory.ca_file or the system roots)"
    } else if text.contains("not valid for name") {
        " (put the name the certificate holds in directory.urls)"
    } else if text.contains("certificate expired") {
        " (renew the server's certificate)"
    } else {
        ""
    };
    format!("{text}{hint}")
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
