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
    DirectorySettings, DiscoverySettings, IndexSettings, KerberosSettings, LdapSettings, LdifData,
    SourceSettings, DEFAULT_PAGE_TIMEOUT, STATE_FILE_BYTES_PER_ENTRY,
};
pub use sync::{SyncKind, SyncStatus, SyncedIndex};

/// Text for a binary attribute value: `objectGUID` and `invocationId` become the GUID string AD shows
/// (`a0b1c2d3-...`); other binary values have no text and are dropped.
pub fn binary_value(attribute: &str, bytes: &[u8]) -> Option<String> {
    if !guid_attribute(attribute) || bytes.len() != 16 {
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

/// Whether `attribute` holds GUIDs (16 bytes each), whose text is the GUID string.
pub fn guid_attribute(attribute: &str) -> bool {
    ["objectGUID", "invocationId"]
        .iter()
        .any(|name| attribute.eq_ignore_ascii_case(name))
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
    pub entry: Entry,
    /// The phone attribute that holds the number (lower-cased).
    pub attribute: &'static str,
    /// The position among the entry's fields of the value that holds it.
    pub field: usize,
    /// The attribute's position in `phone_attributes`: lower is preferred.
    pub rank: usize,
    /// The scope it was found in, by its position: lower is preferred.
    pub scope: usize,
}

impl Match {
    /// The stored value that holds the number, as written in the directory.
    pub fn value(&self) -> &str {
        self.entry.field(self.field).map_or("", |(_, value)| value)
    }
}

/// What one scope's source found for one number.
#[derive(Clone, Debug, Default)]
pub struct Candidates {
    /// The scope, by its position.
    pub scope: usize,
    /// Entries known to hold the number (from an index).
    pub matches: Vec<Match>,
    /// Entries a filter returned, which may or may not hold it.
    pub unverified: Vec<Entry>,
    /// The LDAP filter sent, for live searches.
    pub filter: Option<String>,
    /// The server that answered, for live searches.
    pub server: Option<Arc<String>>,
}

impl Candidates {
    /// The same, found in scope `scope`.
    fn in_scope(mut self, scope: usize) -> Self {
        self.scope = scope;
        for m in &mut self.matches {
            m.scope = scope;
        }
        self
    }
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

/// Where one scope's entries come from.
pub enum Source {
    /// Entries loaded once from a file and indexed by number.
    File(Box<PhoneIndex>),
    /// An index that follows an LDAP directory.
    Synced(Arc<SyncedIndex>),
    /// Live searches on every lookup.
    Live(Box<LdapDirectory>),
}

/// The configured sources of entries: one per scope, in rank order.
pub struct Directory {
    scopes: Vec<(Option<String>, Source)>,
}

impl Directory {
    /// Opens each scope's source: loads and indexes an LDIF file; in index mode reads the whole
    /// directory (or the state file); in live mode prepares connections only. Entries are read
    /// with the `wanted` attributes, each scope's numbers read by its `PhoneNormalizer`.
    pub async fn open(
        scopes: &[(&DirectorySettings, &PhoneNormalizer)],
        wanted: &[String],
    ) -> Result<Self, DirectoryError> {
        let mut opened = Vec::with_capacity(scopes.len());
        for (settings, phone) in scopes {
            let source = Source::open(settings, phone, wanted).await?;
            opened.push((settings.name.clone(), source));
        }
        Ok(Directory { scopes: opened })
    }

    /// Each scope's source, in rank order.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.scopes.iter().map(|(_, source)| source)
    }

    /// The name of the scope at `index`; `None` for the one scope of a `[directory]` without
    /// `[[directory.scope]]`.
    pub fn scope_name(&self, index: usize) -> Option<&str> {
        self.scopes.get(index).and_then(|(name, _)| name.as_deref())
    }

    /// Starts following the directory (index mode); nothing for the other sources.
    pub fn follow(&self) {
        self.sources().for_each(Source::follow);
    }

    /// Every eligible entry of scope `scope`, for the hygiene report: read from the directory
    /// (so that entries the index leaves out, with no usable number, are there too), or a
    /// file source's entries.
    pub async fn read_all(&self, scope: usize) -> Result<Vec<Entry>, DirectoryError> {
        match self.scopes.get(scope).map(|(_, source)| source) {
            Some(Source::File(index)) => Ok(index.all().map(|(_, e)| e.clone()).collect()),
            Some(Source::Synced(synced)) => synced.ldap().read_all().await,
            Some(Source::Live(ldap)) => ldap.read_all().await,
            None => Ok(Vec::new()),
        }
    }

    /// Whether every scope is held in memory (an LDIF file or an index): lookups never wait.
    pub fn in_memory(&self) -> bool {
        self.sources().all(|s| !matches!(s, Source::Live(_)))
    }

    /// A number that moves whenever an answer from memory could change (every change to an
    /// index, every sync from another server); `None` when a scope searches live.
    pub fn generation(&self) -> Option<u64> {
        self.sources()
            .map(|source| match source {
                Source::File(_) => Some(0),
                Source::Synced(synced) => Some(synced.version()),
                Source::Live(_) => None,
            })
            .sum()
    }

    /// Entries that may hold `number`, per scope in rank order, when every scope is held in
    /// memory (an LDIF file or an index); `None`, at once, when one searches live (see
    /// [`Directory::candidates`]). No future: a lookup from memory never waits.
    pub fn held_candidates(&self, number: &CallerNumber) -> Option<Vec<Candidates>> {
        if !self.in_memory() {
            return None;
        }
        self.sources()
            .enumerate()
            .map(|(i, source)| Some(source.held(number).ok()?.in_scope(i)))
            .collect()
    }

    /// Entries that may hold `number`, per scope in rank order. Several scopes are asked
    /// together; any failing fails the lookup, since a lower scope's match must not stand in
    /// for a higher one's that could not be read.
    pub async fn candidates(
        &self,
        number: &CallerNumber,
    ) -> Result<Vec<Candidates>, DirectoryError> {
        if let [(_, only)] = self.scopes.as_slice() {
            return Ok(vec![only.candidates(number, 0).await?]);
        }
        let asked = self
            .scopes
            .iter()
            .enumerate()
            .map(|(i, (_, source))| source.candidates(number, i));
        futures_util::future::join_all(asked)
            .await
            .into_iter()
            .collect()
    }

    /// Whether lookups can be answered now: every scope's source is ready (see
    /// [`Source::readiness`]); the first reason it is not, named by scope.
    pub async fn readiness(&self) -> Result<(), String> {
        for (name, source) in &self.scopes {
            source.readiness().await.map_err(|e| named(name, e))?;
        }
        Ok(())
    }

    /// Index mode's figures, added up over the scopes; `None` for the other sources.
    pub fn index_figures(&self) -> Option<IndexFigures> {
        let mut figures = self.sources().filter_map(Source::index_figures);
        let mut total = figures.next()?;
        for more in figures {
            total.entries += more.entries;
            total.numbers += more.numbers;
            total.status = total.status.older(more.status);
        }
        Some(total)
    }

    /// What connecting to each directory server has done (none for a file source).
    pub fn servers(&self) -> Vec<ServerStats> {
        self.sources().flat_map(Source::servers).collect()
    }

    /// Live mode connects now, so that the first caller does not pay for it (a failure is
    /// retried per call); the other sources have nothing to prepare.
    pub async fn warm_up(&self) -> Result<(), DirectoryError> {
        for source in self.sources() {
            source.warm_up().await?;
        }
        Ok(())
    }

    /// What the sources are, for logs and the CLI: one line, or one per scope.
    pub fn describe(&self) -> String {
        self.scopes
            .iter()
            .map(|(name, source)| named(name, source.describe()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl From<Source> for Directory {
    /// One unnamed scope.
    fn from(source: Source) -> Self {
        Directory {
            scopes: vec![(None, source)],
        }
    }
}

/// `text` under the scope's name, when it has one.
fn named(name: &Option<String>, text: String) -> String {
    match name {
        Some(name) => format!("scope {name}: {text}"),
        None => text,
    }
}

impl Source {
    async fn open(
        settings: &DirectorySettings,
        phone: &PhoneNormalizer,
        wanted: &[String],
    ) -> Result<Self, DirectoryError> {
        let attrs = &settings.phone_attributes;
        Ok(match &settings.source {
            SourceSettings::Ldif(data) => {
                let entries = ldif::load(data)?;
                Source::File(Box::new(PhoneIndex::build(entries, attrs, phone)))
            }
            SourceSettings::Ldap(ldap) => {
                let client = LdapDirectory::new(ldap, wanted.to_vec())?;
                match &ldap.index {
                    None => Source::Live(Box::new(client)),
                    Some(index) => Source::Synced(
                        SyncedIndex::start(
                            client,
                            ldap,
                            index,
                            phone,
                            wanted,
                            settings.name.as_deref(),
                        )
                        .await?,
                    ),
                }
            }
        })
    }

    fn follow(&self) {
        if let Source::Synced(synced) = self {
            synced.spawn();
        }
    }

    async fn candidates(
        &self,
        number: &CallerNumber,
        scope: usize,
    ) -> Result<Candidates, DirectoryError> {
        let found = match self.held(number) {
            Ok(found) => found,
            Err(ldap) => ldap.candidates(number).await?,
        };
        Ok(found.in_scope(scope))
    }

    /// The entries an LDIF file or an index holds under `number`'s key; the live source's
    /// client when it searches instead.
    fn held(&self, number: &CallerNumber) -> Result<Candidates, &LdapDirectory> {
        Ok(match self {
            Source::File(index) => Candidates {
                matches: index.find(&number.key),
                ..Candidates::default()
            },
            Source::Synced(synced) => Candidates {
                matches: synced.find(&number.key),
                server: synced.server(),
                ..Candidates::default()
            },
            Source::Live(ldap) => return Err(ldap),
        })
    }

    /// Whether lookups can be answered now: a file source always; an index when young enough;
    /// live searches when a server connects. The reason goes to the log, never to the caller.
    pub async fn readiness(&self) -> Result<(), String> {
        match self {
            Source::File(_) => Ok(()),
            Source::Synced(synced) => synced.fresh(),
            Source::Live(ldap) => ldap.reachable().await.map_err(|e| e.to_string()),
        }
    }

    fn index_figures(&self) -> Option<IndexFigures> {
        let Source::Synced(synced) = self else {
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

    fn servers(&self) -> Vec<ServerStats> {
        match self {
            Source::File(_) => Vec::new(),
            Source::Synced(synced) => synced.ldap().servers(),
            Source::Live(ldap) => ldap.servers(),
        }
    }

    async fn warm_up(&self) -> Result<(), DirectoryError> {
        match self {
            Source::Live(ldap) => ldap.probe().await.map(|_| ()),
            _ => Ok(()),
        }
    }

    /// One line saying what the source is.
    pub fn describe(&self) -> String {
        match self {
            Source::File(index) => format!(
                "in-memory index of {} entries with {} distinct numbers",
                index.entries(),
                index.numbers()
            ),
            Source::Synced(synced) => {
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
            Source::Live(ldap) => ldap.describe(),
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
