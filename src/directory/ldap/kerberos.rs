//! `bind = "gssapi"`: Kerberos binds from a client keytab, the way sssd lives in a domain.
//!
//! MIT Kerberos does the ticket work: with `KRB5_CLIENT_KTNAME` naming the keytab it gets a
//! ticket-granting ticket from it when the first bind needs one and again whenever the one
//! held has expired, into a credential cache private to the process (`MEMORY:`), so no
//! `kinit` cron is needed. The binds go over TLS only, with the `tls-server-end-point` channel
//! binding ldap3 computes from the DC's certificate, so DCs that enforce channel binding
//! accept them.

use std::time::Duration;

use crate::directory::KerberosSettings;

/// The process's credential cache: in memory, seen by nothing else.
const CREDENTIAL_CACHE: &str = "MEMORY:popup-ldap";

/// Points MIT Kerberos at the keytab, a private credential cache and `krb5_conf`. Called once,
/// before any thread starts: these are process-wide environment variables, which a running
/// process must not change (a reload that changes them is refused).
pub fn prepare(settings: &KerberosSettings) {
    // Safety of set_var: no other thread exists yet (see above).
    std::env::set_var("KRB5_CLIENT_KTNAME", &settings.keytab);
    std::env::set_var("KRB5CCNAME", CREDENTIAL_CACHE);
    if let Some(conf) = &settings.krb5_conf {
        std::env::set_var("KRB5_CONFIG", conf);
    }
}

/// The host name for the DC's `ldap/<name>` principal: `kerberos_server_name`, else the
/// URL's host.
pub(super) fn server_name<'a>(settings: &'a KerberosSettings, url: &'a str) -> &'a str {
    if let Some(name) = &settings.server_name {
        return name;
    }
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// Who the service is and how long its ticket lasts: the principal and the remaining
/// lifetime of the credentials held now (after a bind: the ticket-granting ticket).
pub struct Identity {
    /// The principal, `svc-popup@EXAMPLE.COM`.
    pub principal: String,
    /// How long the credentials last from now.
    pub lifetime: Duration,
}

/// Plain words for the usual Kerberos failures, after the library's own message.
#[cfg(feature = "kerberos")]
fn explain(message: &str) -> String {
    const HINTS: [(&str, &str); 7] = [
        (
            "Clock skew too great",
            "this host's clock and the KDC's differ by more than 5 minutes: sync time (NTP)",
        ),
        (
            "not found in Kerberos database",
            "the KDC knows no such principal: check kerberos_principal, or the DC's ldap/<name> \
             service principal (kerberos_server_name, the host in urls)",
        ),
        (
            "Key version number",
            "the keytab is out of date (the account's password changed since it was made): \
             export it again",
        ),
        (
            "Preauthentication failed",
            "the keytab's key is not the account's current one (its password changed since the \
             keytab was made): export it again",
        ),
        (
            "integrity check failed",
            "the keytab's key is not the account's: export it again",
        ),
        (
            "Cannot contact any KDC",
            "no KDC answered: check krb5_conf (the realm's kdc) and the firewall (port 88)",
        ),
        (
            "No key table entry found",
            "the keytab holds no key for that principal: check kerberos_principal and the keytab \
             (klist -k)",
        ),
    ];
    match HINTS.iter().find(|(needle, _)| message.contains(needle)) {
        Some((_, hint)) => format!("{message} ({hint})"),
        None => message.to_owned(),
    }
}

#[cfg(feature = "kerberos")]
mod gssapi {
    use std::time::Duration;

    use cross_krb5::Cred;
    use ldap3::{Ldap, LdapResult};
    use libgssapi::credential::{Cred as GssCred, CredUsage};
    use libgssapi::name::Name;
    use libgssapi::oid::{OidSet, GSS_MECH_KRB5, GSS_NT_KRB5_PRINCIPAL};

    use super::{explain, Identity};
    use crate::directory::KerberosSettings;

    /// The service's credentials: for `kerberos_principal`, or the keytab's first.
    fn credentials(settings: &KerberosSettings) -> Result<GssCred, String> {
        let mut mechs = OidSet::new().map_err(|e| e.to_string())?;
        mechs.add(&GSS_MECH_KRB5).map_err(|e| e.to_string())?;
        let name = match &settings.principal {
            Some(p) => Some(
                Name::new(p.as_bytes(), Some(&GSS_NT_KRB5_PRINCIPAL))
                    .map_err(|e| explain(&e.to_string()))?,
            ),
            None => None,
        };
        GssCred::acquire(name.as_ref(), None, CredUsage::Initiate, Some(&mechs))
            .map_err(|e| explain(&e.to_string()))
    }

    /// A GSSAPI bind for the DC `server_name` (its `ldap/<name>` principal).
    pub(in crate::directory::ldap) async fn bind(
        ldap: &mut Ldap,
        settings: &KerberosSettings,
        server_name: &str,
    ) -> Result<LdapResult, String> {
        let cred = Cred::from(credentials(settings)?);
        ldap.sasl_gssapi_cred_bind(cred, server_name)
            .await
            .map_err(|e| explain(&e.to_string()))
    }

    /// The principal and the lifetime left of its credentials.
    pub fn identity(settings: &KerberosSettings) -> Result<Identity, String> {
        let cred = credentials(settings)?;
        let principal = cred.name().map_err(|e| e.to_string())?.to_string();
        let lifetime = cred.lifetime().unwrap_or(Duration::ZERO);
        Ok(Identity {
            principal,
            lifetime,
        })
    }
}

#[cfg(feature = "kerberos")]
pub(super) use gssapi::bind;
#[cfg(feature = "kerberos")]
pub use gssapi::identity;

/// Without the `kerberos` feature the settings refuse `bind = "gssapi"`; these are never
/// reached.
#[cfg(not(feature = "kerberos"))]
pub(super) async fn bind(
    _ldap: &mut ldap3::Ldap,
    _settings: &KerberosSettings,
    _server_name: &str,
) -> Result<ldap3::LdapResult, String> {
    Err(NOT_BUILT.to_owned())
}

/// See [`bind`].
#[cfg(not(feature = "kerberos"))]
pub fn identity(_settings: &KerberosSettings) -> Result<Identity, String> {
    Err(NOT_BUILT.to_owned())
}

#[cfg(not(feature = "kerberos"))]
const NOT_BUILT: &str = "this popup-ldap was built without Kerberos support";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_urls_host_unless_set() {
        let mut k = KerberosSettings {
            keytab: "k".into(),
            principal: None,
            krb5_conf: None,
            server_name: None,
        };
        assert_eq!(
            server_name(&k, "ldaps://dc1.example.com:636"),
            "dc1.example.com"
        );
        assert_eq!(server_name(&k, "ldap://dc2.example.com"), "dc2.example.com");
        k.server_name = Some("dc9.example.com".into());
        assert_eq!(server_name(&k, "ldaps://10.0.0.5"), "dc9.example.com");
    }

    #[cfg(feature = "kerberos")]
    #[test]
    fn usual_failures_get_plain_words() {
        let e = explain("GSSAPI operation error: Clock skew too great");
        assert!(e.contains("NTP"), "{e}");
        let e = explain("Key version number for principal in key table is incorrect");
        assert!(e.contains("export it again"), "{e}");
        assert_eq!(explain("something else"), "something else");
    }
}
