//! `check-config`: the configuration, the certificate, one connection, bind and sample
//! search, and a hygiene report of every eligible entry, read once; nothing is saved.

use std::path::{Path, PathBuf};

use crate::console::say;
use crate::directory::ldap::{LdapDirectory, Probe};
use crate::directory::{
    Directory, DirectoryError, Entry, KerberosSettings, LdapSettings, PhoneIndex, SourceSettings,
};
use crate::explain::phone_values;
use crate::http::tls::{Certificate, TlsError};
use crate::lookup::ScopeSettings;
use crate::settings::Config;

/// Values shown per attribute of a sample entry.
const SAMPLE_VALUES: usize = 3;

/// What a check found wrong.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The directory cannot be used.
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    /// The HTTPS certificate or key cannot be used.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// The repair LDIF could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Checks `config` (read from `path`, or the demo), saying what worked on stdout.
pub async fn check_config(path: &Option<PathBuf>, config: &Config) -> Result<(), CheckError> {
    let name = path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in demo configuration".to_owned());
    say!("configuration {name}: valid");
    if let Some((cert, key)) = &config.server.tls {
        let certificate = Certificate::load(cert, key)?;
        certificate.server_config()?;
        say!("  https             certificate and key load and match");
    }
    say!(
        "  endpoint          http://{}{}",
        config.server.listen,
        config.server.path
    );
    for scope in &config.scopes {
        check_scope(config, scope).await?;
    }
    say!("OK");
    Ok(())
}

/// `hygiene`: each scope's hygiene report and, with `repair_ldif`, the repair LDIF of every
/// scope written there (nothing is written to the directory).
pub async fn hygiene(config: &Config, repair_ldif: Option<&Path>) -> Result<(), CheckError> {
    let mut ldif = String::new();
    let (mut entries_changed, mut values) = (0, 0);
    for scope in &config.scopes {
        if let Some(name) = &scope.directory.name {
            say!("scope {name}");
        }
        let entries = match &scope.directory.source {
            SourceSettings::Ldif(data) => {
                crate::directory::ldif::load(data).map_err(DirectoryError::from)?
            }
            SourceSettings::Ldap(ldap) => {
                LdapDirectory::new(ldap, config.lookup_setup().wanted_attributes())?
                    .read_all()
                    .await?
            }
        };
        let attrs = &scope.directory.phone_attributes;
        say!("{}", crate::hygiene::examine(&entries, attrs, &scope.phone));
        let repair = crate::hygiene::repair_ldif(&entries, attrs, &scope.phone);
        ldif.push_str(&repair.ldif);
        entries_changed += repair.entries;
        values += repair.values;
    }
    if let Some(path) = repair_ldif {
        std::fs::write(path, &ldif).map_err(|source| CheckError::Write {
            path: path.to_owned(),
            source,
        })?;
        say!(
            "repair LDIF: {values} values of {entries_changed} entries rewritten into E.164 in {} \
             (review it, then: ldapmodify -H ldaps://... -D ... -W -f {})",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// One scope: its source, what it holds, and the hygiene report of its entries.
async fn check_scope(config: &Config, scope: &ScopeSettings) -> Result<(), CheckError> {
    if let Some(name) = &scope.directory.name {
        say!("scope {name}");
    }
    say!(
        "  phone attributes  {}",
        scope.directory.phone_attributes.join(", ")
    );
    let entries = match &scope.directory.source {
        SourceSettings::Ldif(data) => {
            let wanted = config.lookup_setup().wanted_attributes();
            let directory = Directory::open(&[(&scope.directory, &scope.phone)], &wanted).await?;
            say!("  source            {}", directory.describe());
            crate::directory::ldif::load(data).map_err(DirectoryError::from)?
        }
        SourceSettings::Ldap(ldap) => check_ldap(config, scope, ldap).await?,
    };
    say!(
        "{}",
        crate::hygiene::examine(&entries, &scope.directory.phone_attributes, &scope.phone)
    );
    Ok(())
}

/// Connects, binds and searches a sample, then reads every eligible entry once: the hygiene
/// report's entries, and in index mode what the index would hold. Nothing is saved (no state
/// file) and no sync thread starts.
async fn check_ldap(
    config: &Config,
    scope: &ScopeSettings,
    ldap: &LdapSettings,
) -> Result<Vec<Entry>, CheckError> {
    let attrs = &scope.directory.phone_attributes;
    let client = LdapDirectory::new(ldap, config.lookup_setup().wanted_attributes())?;
    say!("  source            {}", client.describe());
    let probe = client.probe().await?;
    say_probe(scope, &probe);
    if let Some(kerberos) = &ldap.kerberos {
        say_kerberos(kerberos);
    }
    let entries = client.read_all().await?;
    if ldap.index.is_some() {
        let index = PhoneIndex::build(entries.clone(), attrs, &scope.phone);
        say!(
            "  index             {} entries with {} distinct numbers (entries with a number \
             of some country)",
            index.entries(),
            index.numbers()
        );
    }
    Ok(entries)
}

/// Whom the Kerberos bind authenticated, and for how long its ticket lasts.
fn say_kerberos(kerberos: &KerberosSettings) {
    match crate::directory::ldap::kerberos::identity(kerberos) {
        Ok(id) => say!(
            "  kerberos          {}, ticket valid for {} more minutes (renewed from the keytab \
             {} when it runs out)",
            id.principal,
            id.lifetime.as_secs() / 60,
            kerberos.keytab.display()
        ),
        Err(e) => say!("  kerberos          cannot read the credentials: {e}"),
    }
}

/// What the sample search of `check-config` found.
fn say_probe(scope: &ScopeSettings, probe: &Probe) {
    say!("directory: connected to {}", probe.server);
    match &probe.bound_as {
        Some(dn) => say!("  bound as          {dn}"),
        None => say!("  bound             anonymously"),
    }
    say!("  sample search     {}", probe.filter);
    say!(
        "  found             {} entries with a phone attribute{}",
        probe.sample.len(),
        if probe.more { " (and more)" } else { "" }
    );
    for entry in &probe.sample {
        say!("    {}", entry.dn());
        let mut shown: Vec<(String, usize)> = Vec::new();
        for (attr, value, keys) in
            phone_values(entry, &scope.phone, &scope.directory.phone_attributes)
        {
            match shown.iter_mut().find(|(a, _)| *a == attr) {
                Some((_, n)) if *n >= SAMPLE_VALUES => *n += 1,
                Some((_, n)) => {
                    *n += 1;
                    say!("      {attr}: {value:?} -> {keys}");
                }
                None => {
                    say!("      {attr}: {value:?} -> {keys}");
                    shown.push((attr, 1));
                }
            }
        }
        for (attr, n) in shown.iter().filter(|(_, n)| *n > SAMPLE_VALUES) {
            say!("      {attr}: ... {} more values", n - SAMPLE_VALUES);
        }
    }
    if probe.sample.is_empty() {
        say!(
            "  warning: no entry under the base DN has a phone attribute; check \
             directory.base_dn, directory.filter and directory.phone_attributes"
        );
    }
}
