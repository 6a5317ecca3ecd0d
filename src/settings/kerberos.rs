//! `directory.bind = "gssapi"`: Kerberos from a keytab instead of a password.

use std::path::{Path, PathBuf};

use super::raw::{RawBind, RawDirectory};
use super::{invalid, ConfigError};
use crate::directory::KerberosSettings;

/// The Kerberos settings for `bind = "gssapi"`, `None` for a simple bind; the keys of the
/// other kind are refused, and so are URLs it cannot work with.
pub(super) fn kerberos(
    raw: &RawDirectory,
    base: &Path,
    urls: &[String],
    starttls: bool,
) -> Result<Option<KerberosSettings>, ConfigError> {
    let kerberos_keys = [
        ("keytab_file", raw.keytab_file.is_some()),
        ("keytab_credential", raw.keytab_credential.is_some()),
        ("kerberos_principal", raw.kerberos_principal.is_some()),
        ("krb5_conf", raw.krb5_conf.is_some()),
        ("kerberos_server_name", raw.kerberos_server_name.is_some()),
    ];
    if raw.bind.unwrap_or(RawBind::Simple) == RawBind::Simple {
        return match kerberos_keys.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(invalid(
                &format!("directory.{key}"),
                "applies to bind = \"gssapi\" only",
            )),
            None => Ok(None),
        };
    }
    if !cfg!(feature = "kerberos") {
        return Err(invalid(
            "directory.bind",
            "this popup-ldap was built without Kerberos support (cargo build --features \
             kerberos, which needs libkrb5-dev and libclang-dev); `popup-ldap --version` lists \
             the features built in",
        ));
    }
    let password_keys = [
        ("bind_dn", raw.bind_dn.is_some()),
        ("bind_password_file", raw.bind_password_file.is_some()),
        ("bind_password_env", raw.bind_password_env.is_some()),
        (
            "bind_password_credential",
            raw.bind_password_credential.is_some(),
        ),
    ];
    if let Some((key, _)) = password_keys.iter().find(|(_, set)| *set) {
        return Err(invalid(
            &format!("directory.{key}"),
            "applies to bind = \"simple\"; a Kerberos bind takes its identity from the keytab",
        ));
    }
    let server_name = raw.kerberos_server_name.clone();
    for url in urls {
        check_url(url, starttls, server_name.is_some())?;
    }
    Ok(Some(KerberosSettings {
        keytab: keytab(raw, base)?,
        principal: raw.kerberos_principal.clone(),
        krb5_conf: raw.krb5_conf.as_ref().map(|f| base.join(f)),
        server_name,
    }))
}

/// A Kerberos bind goes over TLS only (no SASL security layer), and needs the DC's host name
/// for its `ldap/<name>` principal.
fn check_url(url: &str, starttls: bool, named: bool) -> Result<(), ConfigError> {
    let parsed =
        url::Url::parse(url).map_err(|e| invalid("directory.urls", format!("{url:?}: {e}")))?;
    if !(parsed.scheme() == "ldaps" || starttls) {
        return Err(invalid(
            "directory.bind",
            format!(
                "{url:?}: a Kerberos bind is made over TLS only: use ldaps:// or starttls = true"
            ),
        ));
    }
    // ldap(s) URLs are not "special" to the url crate: their host is text, IP or not.
    let host = parsed.host_str().unwrap_or("");
    let by_address = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    if by_address && !named {
        return Err(invalid(
            "directory.kerberos_server_name",
            format!(
                "{url:?} names an IP address, but the DC's Kerberos principal is ldap/<its host \
                 name>: set kerberos_server_name = \"dc1.example.com\", or use the name in urls"
            ),
        ));
    }
    Ok(())
}

/// `keytab_file` or `keytab_credential`: exactly one, and readable.
fn keytab(raw: &RawDirectory, base: &Path) -> Result<PathBuf, ConfigError> {
    let (key, path) = match (&raw.keytab_file, &raw.keytab_credential) {
        (Some(file), None) => ("directory.keytab_file", base.join(file)),
        (None, Some(name)) => {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                invalid(
                    "directory.keytab_credential",
                    "CREDENTIALS_DIRECTORY is not set: this key works under systemd with \
                     LoadCredential=; use keytab_file elsewhere",
                )
            })?;
            ("directory.keytab_credential", Path::new(&dir).join(name))
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "directory.keytab_file",
                "set only one of keytab_file and keytab_credential",
            ))
        }
        (None, None) => {
            return Err(invalid(
                "directory.keytab_file",
                "bind = \"gssapi\" needs the service account's keytab: keytab_file or \
                 keytab_credential",
            ))
        }
    };
    std::fs::File::open(&path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    Ok(path)
}
