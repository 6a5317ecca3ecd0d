//! Searches on a connection: one page for live lookups, paged streams for syncs, and what
//! their results and entries mean.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::asn1::StructureTag;
use ldap3::controls::RawControl;
use ldap3::{Scope, SearchOptions};

use super::ad::{deleted_dn, domain_of, DcState, LAST_KNOWN_PARENT, SHOW_DELETED};
use super::error::{describe_ldap_error, no_such_base, result_name};
use super::pool::{Connection, Fault};
use super::LdapDirectory;
use crate::directory::{binary_value, guid_attribute, DirectoryError, Entry};

impl LdapDirectory {
    /// Reads every entry matching `filter` under the base with paged searches (see [`Paging`]),
    /// handing them to `batch` a page at a time. The change attribute is read for the
    /// watermark and left out of the entries. Every page must arrive within `paging.timeout`.
    /// See [`Changes`] for what is read besides the entries; a paced read adds its pauses
    /// to `pauses`.
    pub async fn fetch_all(
        &self,
        filter: &str,
        paging: Paging,
        changes: Changes<'_>,
        pauses: &Pauses,
        mut batch: impl FnMut(Vec<Entry>),
    ) -> Result<Fetched, DirectoryError> {
        let conn = self.connection().await?;
        let dc = if changes.per_dc {
            match self.dc_state(&conn).await {
                Ok(dc) => Some(dc),
                Err(e) => {
                    self.forget(&conn, Fault::Read).await;
                    return Err(e);
                }
            }
        } else {
            None
        };
        let result = self
            .stream_all(&conn, filter, paging, changes.attribute, pauses, &mut batch)
            .await;
        if result.is_err() {
            self.forget(&conn, Fault::Read).await;
        }
        result.map(|fetched| Fetched { dc, ..fetched })
    }

    async fn stream_all(
        &self,
        conn: &Connection,
        filter: &str,
        paging: Paging,
        change_attribute: &str,
        pauses: &Pauses,
        batch: &mut impl FnMut(Vec<Entry>),
    ) -> Result<Fetched, DirectoryError> {
        let fail = |reason: String| DirectoryError::Search {
            url: conn.url.to_string(),
            reason,
        };
        let change_attribute = change_attribute.to_ascii_lowercase();
        let (base, scope, mut attrs, controls) = self.request(paging.read);
        attrs.push(change_attribute.clone());
        let page_size = paging.page_size;
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(page_size)),
        ];
        let mut ldap = conn.ldap.clone();
        let mut stream = ldap
            .with_timeout(paging.timeout)
            .with_controls(controls)
            .streaming_search_with(adapters, base, scope, filter, attrs)
            .await
            .map_err(|e| fail(read_error(&e, paging.timeout)))?;
        let mut watermark: Option<String> = None;
        let mut pending = Vec::new();
        let mut count = 0;
        let mut page_started = Instant::now();
        while let Some(found) = stream
            .next()
            .await
            .map_err(|e| fail(read_error(&e, paging.timeout)))?
        {
            let (found, changes) = read_entry(found.0, Some(&change_attribute))
                .ok_or_else(|| fail(MALFORMED.to_owned()))?;
            for value in changes {
                raise(&mut watermark, value);
            }
            let Some(entry) = entry_kept(found, paging.read) else {
                continue;
            };
            pending.push(entry);
            count += 1;
            if pending.len() >= page_size as usize {
                batch(std::mem::take(&mut pending));
                if paging.paced {
                    let pause = page_started.elapsed().min(MAX_PAUSE);
                    pauses.add(pause);
                    tokio::time::sleep(pause).await;
                    page_started = Instant::now();
                }
            }
        }
        if !pending.is_empty() {
            batch(pending);
        }
        let status = stream.finish().await;
        self.search_done(status.rc, &status.text).map_err(fail)?;
        Ok(Fetched {
            server: conn.url.to_string(),
            watermark,
            count,
            dc: None,
        })
    }

    /// Where and how a read searches: base, scope, attributes and controls.
    fn request(&self, read: Read) -> (&str, Scope, Vec<String>, Vec<RawControl>) {
        match read {
            Read::Entries => (
                self.config.base_dn.as_str(),
                self.config.scope,
                self.attributes.clone(),
                vec![],
            ),
            Read::Names => (
                self.config.base_dn.as_str(),
                self.config.scope,
                vec![],
                vec![],
            ),
            Read::Deleted => (
                domain_of(&self.config.base_dn),
                Scope::Subtree,
                vec![LAST_KNOWN_PARENT.to_owned()],
                vec![RawControl {
                    ctype: SHOW_DELETED.to_owned(),
                    crit: true,
                    val: None,
                }],
            ),
        }
    }

    pub(super) async fn search(
        &self,
        conn: &Connection,
        filter: &str,
        sizelimit: i32,
    ) -> Result<Vec<Entry>, SearchFailure> {
        let fail = |reason: String| DirectoryError::Search {
            url: conn.url.to_string(),
            reason,
        };
        let mut ldap = conn.ldap.clone();
        let result = ldap
            .with_search_options(SearchOptions::new().sizelimit(sizelimit))
            .with_timeout(self.config.timeout)
            .search(
                &self.config.base_dn,
                self.config.scope,
                filter,
                &self.attributes,
            )
            .await
            .map_err(|e| SearchFailure::Transport(fail(describe_ldap_error(&e))))?;
        let ldap3::SearchResult(results, status) = result;
        // A live search takes what a size limit let through.
        if status.rc != RC_SIZE_LIMIT {
            self.search_done(status.rc, &status.text)
                .map_err(|why| SearchFailure::Refused(fail(why)))?;
        }
        results
            .into_iter()
            // Search references (AD's referrals to other partitions) carry no entry.
            .filter(|r| !r.is_ref() && !r.is_intermediate())
            .map(|r| read_entry(r.0, None).map(|(entry, _)| entry))
            .collect::<Option<_>>()
            .ok_or_else(|| SearchFailure::Transport(fail(MALFORMED.to_owned())))
    }

    /// How a whole search ended: `Err` with the reason unless it succeeded (referrals are
    /// skipped, not followed).
    pub(super) fn search_done(&self, rc: u32, text: &str) -> Result<(), String> {
        match rc {
            RC_SUCCESS | RC_REFERRAL => Ok(()),
            RC_NO_SUCH_OBJECT => Err(no_such_base(&self.config.base_dn)),
            rc => Err(format!("{} (LDAP result {rc}) {text}", result_name(rc))),
        }
    }

    /// One entry read with a base search.
    pub(super) async fn base_entry(
        &self,
        conn: &Connection,
        dn: &str,
        attributes: &[&str],
    ) -> Result<Entry, String> {
        let mut ldap = conn.ldap.clone();
        let (found, _) = ldap
            .with_timeout(self.config.timeout)
            .search(dn, Scope::Base, "(objectClass=*)", attributes.to_vec())
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| describe_ldap_error(&e))?;
        let found = found
            .into_iter()
            .next()
            .ok_or_else(|| format!("{dn:?} cannot be read"))?;
        read_entry(found.0, None)
            .map(|(entry, _)| entry)
            .ok_or_else(|| MALFORMED.to_owned())
    }
}

impl From<SearchFailure> for DirectoryError {
    fn from(failure: SearchFailure) -> Self {
        match failure {
            SearchFailure::Transport(e) | SearchFailure::Refused(e) => e,
        }
    }
}

/// LDAP result codes that still carry usable entries.
pub(super) const RC_SUCCESS: u32 = 0;

pub(super) const RC_SIZE_LIMIT: u32 = 4;

pub(super) const RC_REFERRAL: u32 = 10;

pub(super) const RC_NO_SUCH_OBJECT: u32 = 32;

/// A search that failed on the way (the connection is suspect) or was refused by the server.
pub(super) enum SearchFailure {
    Transport(DirectoryError),
    Refused(DirectoryError),
}

/// Entries read by a paged search, in batches.
pub struct Fetched {
    /// The server that answered.
    pub server: String,
    /// The greatest value of the change attribute seen, if any entry had it.
    pub watermark: Option<String>,
    /// How many entries were read.
    pub count: usize,
    /// The domain controller's state, read on the same connection before the search (when
    /// asked for).
    pub dc: Option<DcState>,
}

/// How a read tells what changed.
#[derive(Clone, Copy, Debug)]
pub struct Changes<'a> {
    /// The change attribute, read for the watermark and left out of the entries.
    pub attribute: &'a str,
    /// The domain controller's identity and USN are read first on the same connection
    /// (Active Directory's `uSNChanged` numbers are per DC).
    pub per_dc: bool,
}

/// How a paged read is made.
#[derive(Clone, Copy, Debug)]
pub struct Paging {
    /// Entries per page.
    pub page_size: i32,
    /// Half speed: a pause after each page as long as it took, leaving the machine to calls.
    pub paced: bool,
    /// What is read.
    pub read: Read,
    /// The longest wait for a page (`index.page_timeout_s`).
    pub timeout: Duration,
}

/// What a paged read returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// The entries under the base with the configured attributes.
    Entries,
    /// Only their DNs (and the change attribute): entries without attributes.
    Names,
    /// Active Directory's tombstones of the base DN's domain (Show Deleted control), as
    /// entries without attributes named by the DN each had before it was deleted.
    Deleted,
}

/// A paged read's error, with a hint when a page did not come within `limit`.
fn read_error(e: &ldap3::LdapError, limit: Duration) -> String {
    let hint = if matches!(e, ldap3::LdapError::Timeout { .. }) {
        format!(
            " (no page within {} s, index.page_timeout_s: a server that does not index an \
             attribute of the search, such as the change attribute a poll asks for, reads every \
             entry first)",
            limit.as_secs_f64()
        )
    } else {
        String::new()
    };
    format!("{}{hint}", describe_ldap_error(e))
}

/// The time a paced read has spent pausing between its pages, a pause counted as it
/// starts: a limit on the whole read leaves out the read's own pauses.
#[derive(Debug, Default)]
pub struct Pauses(AtomicU64);

impl Pauses {
    /// Counts `pause`, as it starts.
    pub(crate) fn add(&self, pause: Duration) {
        let micros = u64::try_from(pause.as_micros()).unwrap_or(u64::MAX);
        self.0.fetch_add(micros, Ordering::Relaxed);
    }

    /// The pauses so far, the one under way included.
    pub fn total(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }
}

/// The longest pause of a paced read between two pages.
pub(super) const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Moves `watermark` up to `value` when `value` is a later change.
fn raise(watermark: &mut Option<String>, value: String) {
    if watermark
        .as_ref()
        .is_none_or(|w| change_order(&value, w).is_gt())
    {
        *watermark = Some(value);
    }
}

/// What a read keeps of a found entry: the entry, or for a tombstone the name its object
/// had (none when the tombstone does not say).
fn entry_kept(found: Entry, read: Read) -> Option<Entry> {
    if read == Read::Deleted {
        let dn = deleted_dn(&found)?;
        Some(Entry::new(&dn, std::iter::empty::<(String, Vec<String>)>()))
    } else {
        Some(found)
    }
}

/// Why a search's entry was refused.
const MALFORMED: &str = "the directory sent a search result entry that is not valid LDAP";

/// An entry straight from the message the directory sent (RFC 4511 4.5.2): its DN and text
/// values, GUID attributes as GUID strings (even when their 16 bytes happen to be valid
/// UTF-8), other binary values dropped. The values of `leave_out` (any case) are returned
/// apart instead of kept. `None` when the message is not shaped as an entry. (Not ldap3's
/// `SearchEntry::construct`: it panics on such a message, and copies every value into a
/// map on the way, a cost a sync pays for every entry of the directory.)
pub(super) fn read_entry(
    found: StructureTag,
    leave_out: Option<&str>,
) -> Option<(Entry, Vec<String>)> {
    let mut parts = found.match_id(4)?.expect_constructed()?.into_iter();
    let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
    let mut attributes = Vec::new();
    let mut left_out = Vec::new();
    for attribute in parts.next()?.expect_constructed()? {
        let mut attribute = attribute.expect_constructed()?.into_iter();
        let name = String::from_utf8(attribute.next()?.expect_primitive()?).ok()?;
        let guid = guid_attribute(&name);
        let mut values = Vec::new();
        for value in attribute.next()?.expect_constructed()? {
            let bytes = value.expect_primitive()?;
            let text = if guid {
                binary_value(&name, &bytes)
            } else {
                String::from_utf8(bytes).ok()
            };
            values.extend(text);
        }
        if leave_out.is_some_and(|l| name.eq_ignore_ascii_case(l)) {
            left_out.extend(values);
        } else {
            attributes.push((name, values));
        }
    }
    Some((Entry::new(&dn, attributes), left_out))
}

/// How two change values order: numerically when both are numbers (`uSNChanged`), else as
/// text (generalized times of one format sort as text).
pub fn change_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::{TagClass, PL};

    #[test]
    fn change_values_order_as_numbers_or_as_text() {
        use std::cmp::Ordering::*;
        assert_eq!(change_order("999", "1000"), Less);
        assert_eq!(
            change_order("20261124120332.0Z", "20261124120331.0Z"),
            Greater
        );
        assert_eq!(change_order("12", "12"), Equal);
    }

    #[tokio::test]
    async fn a_page_that_does_not_come_in_time_says_what_to_index() {
        let elapsed = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>())
            .await
            .expect_err("never ready");
        let limit = Duration::from_secs(30);
        let said = read_error(&ldap3::LdapError::Timeout { elapsed }, limit);
        assert!(said.starts_with("timeout: deadline has elapsed"), "{said}");
        assert!(
            said.contains("within 30 s, index.page_timeout_s") && said.contains("does not index"),
            "{said}"
        );
        let refused = read_error(&ldap3::LdapError::FilterParsing, limit);
        assert!(!refused.contains("page_timeout"), "{refused}");
    }

    fn primitive(bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn constructed(id: u64, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::C(inner),
        }
    }

    /// A search result entry as the directory sends it.
    fn message(dn: &str, attributes: &[(&str, &[&[u8]])]) -> StructureTag {
        let attributes = attributes
            .iter()
            .map(|(name, values)| {
                let values = values.iter().map(|v| primitive(v)).collect();
                constructed(
                    16,
                    vec![primitive(name.as_bytes()), constructed(17, values)],
                )
            })
            .collect();
        let entry = StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![primitive(dn.as_bytes()), constructed(16, attributes)]),
        };
        entry
    }

    #[test]
    fn guids_that_look_like_text_still_render_as_guids() {
        let ascii = b"0123456789abcdef";
        let found = message(
            "CN=x",
            &[
                ("objectGUID", &[ascii]),
                ("cn", &[b"x", b"\xff\xfe"]),
                ("jpegPhoto", &[b"\xff\xd8"]),
            ],
        );
        let (entry, _) = read_entry(found, None).expect("an entry");
        let expected = binary_value("objectGUID", ascii).expect("guid");
        assert_eq!(
            entry.values("objectguid").collect::<Vec<_>>(),
            [expected.as_str()]
        );
        // Binary values of other attributes have no text: dropped, the text ones kept.
        assert_eq!(entry.values("cn").collect::<Vec<_>>(), ["x"]);
        assert_eq!(entry.values("jpegphoto").count(), 0);
    }

    #[test]
    fn the_change_attribute_is_read_apart_whatever_its_case() {
        let found = message(
            "uid=a,dc=x",
            &[
                ("ModifyTimestamp", &[b"20261130050000Z"]),
                ("mobile", &[b"1", b"2"]),
            ],
        );
        let (entry, changes) = read_entry(found, Some("modifytimestamp")).expect("an entry");
        assert_eq!(changes, ["20261130050000Z"]);
        assert_eq!(entry.dn(), "uid=a,dc=x");
        assert_eq!(
            entry.attributes().collect::<Vec<_>>(),
            [("mobile", "1"), ("mobile", "2")]
        );
    }

    #[test]
    fn a_message_not_shaped_as_an_entry_is_refused_not_a_panic() {
        let entry = |payload| StructureTag {
            class: TagClass::Application,
            id: 4,
            payload,
        };
        let attribute = |inner| constructed(16, vec![constructed(16, inner)]);
        let malformed = [
            // A search result done, or a reference, where an entry was expected.
            StructureTag {
                id: 5,
                ..message("uid=a", &[])
            },
            entry(PL::P(b"uid=a".to_vec())),
            entry(PL::C(vec![])),
            entry(PL::C(vec![primitive(b"uid=a")])),
            entry(PL::C(vec![primitive(b"\xff"), constructed(16, vec![])])),
            entry(PL::C(vec![
                constructed(16, vec![]),
                constructed(16, vec![]),
            ])),
            entry(PL::C(vec![primitive(b"uid=a"), primitive(b"cn")])),
            entry(PL::C(vec![primitive(b"uid=a"), attribute(vec![])])),
            entry(PL::C(vec![
                primitive(b"uid=a"),
                attribute(vec![primitive(b"cn")]),
            ])),
            entry(PL::C(vec![
                primitive(b"uid=a"),
                attribute(vec![primitive(b"cn"), primitive(b"a")]),
            ])),
            entry(PL::C(vec![
                primitive(b"uid=a"),
                attribute(vec![
                    primitive(b"cn"),
                    constructed(17, vec![constructed(16, vec![])]),
                ]),
            ])),
            entry(PL::C(vec![
                primitive(b"uid=a"),
                attribute(vec![primitive(b"\xff"), constructed(17, vec![])]),
            ])),
        ];
        for tag in malformed {
            let shown = format!("{tag:?}");
            assert!(read_entry(tag, None).is_none(), "{shown}");
        }
        // An entry without attributes, and an attribute without values, are entries.
        let (bare, _) = read_entry(message("uid=a", &[("cn", &[])]), None).expect("an entry");
        assert_eq!((bare.dn(), bare.attributes().count()), ("uid=a", 0));
    }
}
