//! What only Active Directory has: a DC's identity and USN, and tombstones.

use super::pool::Connection;
use super::LdapDirectory;
use crate::directory::{DirectoryError, Entry};

impl LdapDirectory {
    /// The domain controller behind `conn`: its identity and highest committed USN.
    pub(super) async fn dc_state(&self, conn: &Connection) -> Result<DcState, DirectoryError> {
        let fail = |reason: String| DirectoryError::Search {
            url: conn.url.to_string(),
            reason: format!(
                "cannot read the domain controller's identity, which index.change_attribute = \
                 \"uSNChanged\" needs (is this Active Directory?): {reason}"
            ),
        };
        let root = self
            .base_entry(conn, "", &["dsServiceName", "highestCommittedUSN"])
            .await
            .map_err(fail)?;
        let service =
            first(&root, "dsservicename").ok_or_else(|| fail("no dsServiceName".into()))?;
        let highest_usn = first(&root, "highestcommittedusn")
            .and_then(|u| u.parse().ok())
            .ok_or_else(|| fail("no highestCommittedUSN".into()))?;
        let ntds = self
            .base_entry(conn, &service, &["invocationId"])
            .await
            .map_err(fail)?;
        let invocation_id = first(&ntds, "invocationid")
            .ok_or_else(|| fail(format!("no invocationId on {service}")))?;
        Ok(DcState {
            identity: DcIdentity {
                service,
                invocation_id,
            },
            highest_usn,
        })
    }
}

/// The first value of an attribute (by lower-cased name).
fn first(entry: &Entry, name: &str) -> Option<String> {
    entry.values(name).next().map(str::to_owned)
}

/// A domain controller as Active Directory names it: the changes it numbers with `uSNChanged`
/// are its own, and a restore from backup gives it a new invocation id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcIdentity {
    /// The root DSE's `dsServiceName` (the DC's NTDS Settings object).
    pub service: String,
    /// That object's `invocationId`.
    pub invocation_id: String,
}

/// A domain controller and how far its changes went when it was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcState {
    /// Which DC.
    pub identity: DcIdentity,
    /// The root DSE's `highestCommittedUSN`.
    pub highest_usn: u64,
}

/// Active Directory's Show Deleted control: tombstones are returned too.
pub(super) const SHOW_DELETED: &str = "1.2.840.113556.1.4.417";

/// What a tombstone's relative name holds after the original one (`\nDEL:<objectGUID>`, the
/// newline escaped as `\0A` in a string DN).
pub(super) const TOMBSTONE_MARK: &str = "\\0ADEL:";

/// The attribute of a tombstone naming the container its object was deleted from.
pub(super) const LAST_KNOWN_PARENT: &str = "lastKnownParent";

/// The DN a tombstone's object had: the tombstone's relative name up to the deletion mark
/// (in the server's own escaping, as the index holds it) under `lastKnownParent`. `None` for
/// entries that are not tombstones of a deletion (the Deleted Objects container itself).
/// AD shortens relative names of more than about 200 characters to make room for the mark
/// (keeping the whole one in `msDS-LastKnownRDN`): such entries wait for the next presence
/// check.
pub(super) fn deleted_dn(tombstone: &Entry) -> Option<String> {
    let (rdn, _) = tombstone.dn().split_once(TOMBSTONE_MARK)?;
    let parent = first(tombstone, &LAST_KNOWN_PARENT.to_ascii_lowercase())?;
    Some(format!("{rdn},{parent}"))
}

/// The domain naming context `dn` belongs to: the part from its first `DC=` on.
pub(super) fn domain_of(dn: &str) -> &str {
    let mut at = 0;
    for part in dn.split(',') {
        if part
            .trim_start()
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("dc="))
        {
            return dn[at..].trim_start();
        }
        at += part.len() + 1;
    }
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tombstone(dn: &str, attrs: &[(&str, &str)]) -> Entry {
        Entry::new(dn, attrs.iter().map(|(k, v)| (k, vec![v])))
    }

    #[test]
    fn tombstones_are_named_by_the_dn_their_object_had() {
        let deleted = "CN=Deleted Objects,DC=example,DC=com";
        let guid = "DEL:ab394f8a-041c-4cde-ac24-f2c13b08484c";
        let samba = tombstone(
            &format!("CN=Cohen\\, Avi\\0A{guid},{deleted}"),
            &[("lastKnownParent", "OU=Staff,DC=example,DC=com")],
        );
        assert_eq!(
            deleted_dn(&samba).as_deref(),
            Some("CN=Cohen\\, Avi,OU=Staff,DC=example,DC=com")
        );
        // The container itself, and a tombstone whose parent is unknown, name nobody.
        assert_eq!(deleted_dn(&tombstone(deleted, &[])), None);
        assert_eq!(
            deleted_dn(&tombstone(&format!("CN=x\\0A{guid},{deleted}"), &[])),
            None
        );
    }

    #[test]
    fn tombstones_are_read_in_the_base_dns_domain() {
        assert_eq!(domain_of("OU=Staff,DC=example,DC=com"), "DC=example,DC=com");
        assert_eq!(domain_of("ou=a, dc=example,dc=com"), "dc=example,dc=com");
        assert_eq!(domain_of("DC=example,DC=com"), "DC=example,DC=com");
        assert_eq!(domain_of("o=Example"), "o=Example");
    }
}
