//! Where entries come from: an LDIF file held in memory, or live searches against LDAP.
//!
//! A source only finds *candidates* for a number; `lookup` verifies them, so a loose filter
//! can never produce a wrong name.

mod entry;
pub mod filter;
pub mod index;
pub mod ldap;
pub mod ldif;
mod settings;
pub mod state;
pub mod sync;
mod tls;

use std::sync::Arc;

use crate::phone::{CallerNumber, PhoneNormalizer};

pub use entry::{Entry, Name, StoredEntry};
pub use index::PhoneIndex;
pub use ldap::{LdapDirectory, Probe, ServerStats};
pub use settings::{
    DirectorySettings, IndexSettings, LdapSettings, LdifData, SourceSettings,
    STATE_FILE_BYTES_PER_ENTRY,
};
pub use sync::{SyncKind, SyncStatus, SyncedIndex};

/// Text for a binary attribute value: `objectGUID` and `invocationId` become the GUID string AD shows
/// (`a0b1c2d3-...`); other binary values have no text and are dropped.
pub fn binary_value(attribute: &str, bytes: &[u8]) -> Option<String> {
    let guid = ["objectGUID", "invocationId"]
        .iter()
        .any(|name| attribute.eq_ignore_ascii_case(name));
    if !guid || bytes.len() != 16 {
        return None;
    }
    let b = bytes;
    Some(format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    ))
}

/// A directory problem, worded for the admin who must fix it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DirectoryError {
    /// The LDIF source could not be read or parsed.
    #[error("{0}")]
    Ldif(#[from] ldif::LdifError),
    /// The TLS settings cannot work.
    #[error("TLS settings: {0}")]
    Tls(String),
    /// Connecting, TLS or binding to one server failed.
    #[error("{url}: {reason}")]
    Connect {
        /// The server.
        url: String,
        /// What happened.
        reason: String,
    },
    /// No configured server could be used.
    #[error("no directory server could be used: {0}")]
    Unavailable(String),
    /// Index mode could not start: neither a sync nor the state file worked.
    #[error("index: {0}")]
    Startup(String),
    /// The server refused or failed a search.
    #[error("search on {url} failed: {reason}")]
    Search {
        /// The server.
        url: String,
        /// What happened.
        reason: String,
    },
}

impl DirectoryError {
    /// A short, stable label for logs: `ldif`, `tls`, `connect`, `unavailable` or `search`.
    pub fn kind(&self) -> &'static str {
        match self {
            DirectoryError::Ldif(_) => "ldif",
            DirectoryError::Tls(_) => "tls",
            DirectoryError::Connect { .. } => "connect",
            DirectoryError::Unavailable(_) => "unavailable",
            DirectoryError::Search { .. } => "search",
            DirectoryError::Startup(_) => "startup",
        }
    }
}

/// One entry that holds the caller's number, and where.
#[derive(Clone, Debug)]
pub struct Match {
    /// The entry.
    pub entry: Arc<Entry>,
    /// The phone attribute that holds the number (lower-cased).
    pub attribute: &'static str,
    /// The stored value that holds it, as written in the directory.
    pub value: String,
    /// The attribute's position in `phone_attributes`: lower is preferred.
    pub rank: usize,
}

/// What a source found for one number.
#[derive(Clone, Debug, Default)]
pub struct Candidates {
    /// Entries known to hold the number (from an index).
    pub matches: Vec<Match>,
    /// Entries a filter returned, which may or may not hold it.
    pub unverified: Vec<Arc<Entry>>,
    /// The LDAP filter sent, for live searches.
    pub filter: Option<String>,
    /// The server that answered, for live searches.
    pub server: Option<Arc<String>>,
}

/// What an index that follows a directory holds and how its syncs went: for metrics.
pub struct IndexFigures {
    /// Entries held.
    pub entries: usize,
    /// Distinct numbers held.
    pub numbers: usize,
    /// The syncs' status.
    pub status: SyncStatus,
    /// The server the index was last synced from.
    pub source: String,
}

/// The configured source of entries.
pub enum Directory {
    /// Entries loaded once from a file and indexed by number.
    File(Box<PhoneIndex>),
    /// An index that follows an LDAP directory.
    Synced(Arc<SyncedIndex>),
    /// Live searches on every lookup.
    Live(Box<LdapDirectory>),
}

impl Directory {
    /// Opens the configured source: loads and indexes an LDIF file; in index mode reads the
    /// whole directory (or the state file); in live mode prepares connections only. Entries
    /// are read with the `wanted` attributes, their numbers read by `phone`.
    pub async fn open(
        settings: &DirectorySettings,
        phone: &PhoneNormalizer,
        wanted: &[String],
    ) -> Result<Self, DirectoryError> {
        let attrs = &settings.phone_attributes;
        Ok(match &settings.source {
            SourceSettings::Ldif(data) => {
                let entries = ldif::load(data)?;
                Directory::File(Box::new(PhoneIndex::build(entries, attrs, phone)))
            }
            SourceSettings::Ldap(ldap) => {
                let client = LdapDirectory::new(ldap, wanted.to_vec())?;
                match &ldap.index {
                    None => Directory::Live(Box::new(client)),
                    Some(index) => Directory::Synced(
                        SyncedIndex::start(client, ldap, index, phone, wanted).await?,
                    ),
                }
            }
        })
    }

    /// Starts following the directory (index mode); nothing for the other sources.
    pub fn follow(&self) {
        if let Directory::Synced(synced) = self {
            synced.spawn();
        }
    }

    /// Entries that may hold `number`.
    pub async fn candidates(&self, number: &CallerNumber) -> Result<Candidates, DirectoryError> {
        match self {
            Directory::File(index) => Ok(Candidates {
                matches: index.find(&number.key),
                ..Candidates::default()
            }),
            Directory::Synced(synced) => Ok(Candidates {
                matches: synced.find(&number.key),
                server: synced.server(),
                ..Candidates::default()
            }),
            Directory::Live(ldap) => ldap.candidates(number).await,
        }
    }

    /// Whether lookups can be answered now: a file source always; an index when young enough;
    /// live searches when a server connects. The reason goes to the log, never to the caller.
    pub async fn readiness(&self) -> Result<(), String> {
        match self {
            Directory::File(_) => Ok(()),
            Directory::Synced(synced) => synced.fresh(),
            Directory::Live(ldap) => ldap.reachable().await.map_err(|e| e.to_string()),
        }
    }

    /// Index mode's figures; `None` for the other sources.
    pub fn index_figures(&self) -> Option<IndexFigures> {
        let Directory::Synced(synced) = self else {
            return None;
        };
        let (entries, numbers) = synced.counts();
        Some(IndexFigures {
            entries,
            numbers,
            status: synced.status(),
            source: synced.server().map(|s| (*s).clone()).unwrap_or_default(),
        })
    }

    /// What connecting to each directory server has done (none for a file source).
    pub fn servers(&self) -> Vec<ServerStats> {
        match self {
            Directory::File(_) => Vec::new(),
            Directory::Synced(synced) => synced.ldap().servers(),
            Directory::Live(ldap) => ldap.servers(),
        }
    }

    /// Live mode connects now, so that the first caller does not pay for it (a failure is
    /// retried per call); the other sources have nothing to prepare.
    pub async fn warm_up(&self) -> Result<(), DirectoryError> {
        match self {
            Directory::Live(ldap) => ldap.probe().await.map(|_| ()),
            _ => Ok(()),
        }
    }

    /// One line saying what the source is, for logs and the CLI.
    pub fn describe(&self) -> String {
        match self {
            Directory::File(index) => format!(
                "in-memory index of {} entries with {} distinct numbers",
                index.entries(),
                index.numbers()
            ),
            Directory::Synced(synced) => {
                let (entries, numbers) = synced.counts();
                let status = synced.status();
                let age = status
                    .age()
                    .map(|d| format!("{} s ago", d.as_secs()))
                    .unwrap_or_else(|| "never".to_owned());
                format!(
                    "in-memory index of {} entries with {} distinct numbers, {} {} from {}{}",
                    entries,
                    numbers,
                    if status.from_snapshot {
                        "saved"
                    } else {
                        "synced"
                    },
                    age,
                    status.server.as_deref().unwrap_or("-"),
                    status
                        .last_error
                        .map(|e| format!("; last sync failed: {e}"))
                        .unwrap_or_default()
                )
            }
            Directory::Live(ldap) => ldap.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_guid_renders_like_active_directory() {
        let bytes = [
            0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34,
            0x56, 0x78,
        ];
        assert_eq!(
            binary_value("objectGUID", &bytes).as_deref(),
            Some("12345678-1234-5678-9abc-def012345678")
        );
        assert_eq!(binary_value("objectGUID", &bytes[..3]), None);
        assert_eq!(binary_value("jpegPhoto", &bytes), None);
    }
}
