//! The state file: the index saved so that a restart while the directory is unreachable still
//! answers. A snapshot of every entry, written whole when a full resync changed much, and an
//! append-only journal beside it (`<state_file>.journal`) of what each sync changed since: a
//! poll writes what it changed, not the directory.
//!
//! Both files are a magic string, then records: payload length (u32 LE), CRC-32 of the payload
//! (u32 LE), payload ([postcard]). Records are read one at a time into one buffer, so loading
//! holds nothing but the index being built. In the snapshot, any damage is an error. In the
//! journal, changes count only once their commit record is read: a torn or damaged tail (a
//! crash while appending) ends the journal at the last commit, and the next append cuts it off.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Entry;

/// The state files' format version.
const VERSION: u32 = 2;
const SNAPSHOT_MAGIC: &[u8; 8] = b"POPUPSN\n";
const JOURNAL_MAGIC: &[u8; 8] = b"POPUPJN\n";
/// No record is larger: an entry of 16 MiB is no phone directory entry.
const MAX_RECORD: u32 = 16 << 20;
/// The journal is folded into a new snapshot once it is this large and a quarter of it.
const COMPACT_AFTER: u64 = 1 << 20;

/// Where the saved index stood: written with every snapshot and every journal commit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// When it matched the directory (unix seconds).
    pub written_at: u64,
    /// The server it was read from.
    pub server: String,
    /// The change watermark of that sync.
    pub watermark: Option<String>,
}

/// One change to the saved index.
#[derive(Clone, Debug)]
pub enum Change {
    /// An entry added or replaced (by DN).
    Put(Entry),
    /// An entry removed, by DN.
    Drop(String),
}

#[derive(Serialize, Deserialize)]
enum Record<'a> {
    Snapshot {
        version: u32,
        #[serde(borrow)]
        fingerprint: Cow<'a, str>,
        id: u64,
        header: Header,
    },
    Journal {
        version: u32,
        #[serde(borrow)]
        fingerprint: Cow<'a, str>,
        id: u64,
    },
    Put {
        dn: &'a str,
        attrs: Vec<(&'a str, &'a str)>,
    },
    Drop {
        dn: &'a str,
    },
    Commit(Header),
    End {
        entries: u64,
    },
}

impl<'a> Record<'a> {
    fn put(entry: &'a Entry) -> Self {
        Record::Put {
            dn: entry.dn(),
            attrs: entry.attributes().collect(),
        }
    }
}

/// What a load found.
#[derive(Debug)]
pub struct Loaded {
    /// The newest commit (or the snapshot's header).
    pub header: Header,
    /// Entries read from the snapshot.
    pub entries: u64,
    /// Changes read from the journal.
    pub changes: u64,
    /// Why the journal was cut short, when it was.
    pub journal_cut: Option<String>,
}

/// A state file and its journal.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    fingerprint: String,
    limit: u64,
    /// The snapshot on disk that the journal continues, once one is known.
    id: Option<u64>,
    /// Bytes of the journal up to its last commit (0: none yet).
    journal_len: u64,
    snapshot_len: u64,
}

impl StateFile {
    /// The state file at `path`, for the directory configuration `fingerprint`; neither
    /// file is read larger than `limit` bytes.
    pub fn new(path: PathBuf, fingerprint: String, limit: u64) -> Self {
        StateFile {
            path,
            fingerprint,
            limit,
            id: None,
            journal_len: 0,
            snapshot_len: 0,
        }
    }

    /// The snapshot's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn journal_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".journal");
        PathBuf::from(name)
    }

    /// Whether changes can be appended (a snapshot of this run's lineage is on disk) and the
    /// journal is still small beside it.
    pub fn can_append(&self) -> bool {
        self.id.is_some()
            && (self.journal_len < COMPACT_AFTER || self.journal_len < self.snapshot_len / 4)
    }

    /// Makes the next save a whole snapshot (after a sync that failed half-way).
    pub fn start_over(&mut self) {
        self.id = None;
    }

    /// Writes every entry as a new snapshot (to a temporary file, synced, then renamed over
    /// the old one) and starts an empty journal. Returns the bytes written.
    pub fn write_snapshot(&mut self, header: &Header, entries: &[Entry]) -> std::io::Result<u64> {
        let id = new_id(header);
        let tmp = sibling(&self.path, ".tmp");
        let mut out = BufWriter::new(private_file(&tmp, true)?);
        out.write_all(SNAPSHOT_MAGIC)?;
        let mut written = SNAPSHOT_MAGIC.len() as u64;
        let mut buf = Vec::new();
        let head = Record::Snapshot {
            version: VERSION,
            fingerprint: Cow::Borrowed(&self.fingerprint),
            id,
            header: header.clone(),
        };
        written += frame(&mut buf, &head)?;
        for entry in entries {
            written += frame(&mut buf, &Record::put(entry))?;
            if buf.len() >= 1 << 16 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        written += frame(
            &mut buf,
            &Record::End {
                entries: entries.len() as u64,
            },
        )?;
        out.write_all(&buf)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        // The rename itself is durable once the folder is synced.
        #[cfg(unix)]
        File::open(folder(&self.path))?.sync_all()?;
        match std::fs::remove_file(self.journal_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.id = Some(id);
        self.journal_len = 0;
        self.snapshot_len = written;
        Ok(written)
    }

    /// Appends `changes` and a commit with `header` to the journal and syncs it. Returns the
    /// bytes written. Only after a snapshot was written or loaded (see [`StateFile::can_append`]).
    pub fn append(&mut self, changes: &[Change], header: &Header) -> std::io::Result<u64> {
        let Some(id) = self.id else {
            return Err(std::io::Error::other("no snapshot to append to"));
        };
        let mut buf = Vec::new();
        if self.journal_len == 0 {
            buf.extend_from_slice(JOURNAL_MAGIC);
            let head = Record::Journal {
                version: VERSION,
                fingerprint: Cow::Borrowed(&self.fingerprint),
                id,
            };
            frame(&mut buf, &head)?;
        }
        for change in changes {
            match change {
                Change::Put(entry) => frame(&mut buf, &Record::put(entry))?,
                Change::Drop(dn) => frame(&mut buf, &Record::Drop { dn })?,
            };
        }
        frame(&mut buf, &Record::Commit(header.clone()))?;
        let mut file = private_file(&self.journal_path(), self.journal_len == 0)?;
        // Whatever follows the last commit is a torn append: cut it off.
        file.set_len(self.journal_len)?;
        file.seek(SeekFrom::Start(self.journal_len))?;
        file.write_all(&buf)?;
        file.sync_data()?;
        self.journal_len += buf.len() as u64;
        Ok(buf.len() as u64)
    }

    /// Reads the snapshot, then the journal's committed changes, handing each change to
    /// `apply` in order. Entries of the snapshot come as [`Change::Put`].
    pub fn load(&mut self, mut apply: impl FnMut(Change)) -> Result<Loaded, String> {
        let snapshot = self.open(&self.path)?;
        self.snapshot_len = snapshot
            .reader
            .get_ref()
            .metadata()
            .map(|m| m.len())
            .unwrap_or(0);
        let (id, mut header, entries) = self.read_snapshot(snapshot, &mut apply)?;
        self.id = Some(id);
        self.journal_len = 0;
        let mut loaded = Loaded {
            header: header.clone(),
            entries,
            changes: 0,
            journal_cut: None,
        };
        let journal = match self.open(&self.journal_path()) {
            Ok(journal) => journal,
            Err(_) if !self.journal_path().exists() => return Ok(loaded),
            Err(e) => {
                loaded.journal_cut = Some(e);
                self.id = None;
                return Ok(loaded);
            }
        };
        match self.read_journal(journal, id, &mut header, &mut apply, &mut loaded.changes) {
            Ok(()) => {}
            Err(why) => loaded.journal_cut = Some(why),
        }
        if loaded.journal_cut.is_some() && self.journal_len == 0 {
            // Not this snapshot's journal: the next save writes a snapshot.
            self.id = None;
        }
        loaded.header = header;
        Ok(loaded)
    }

    fn open(&self, path: &Path) -> Result<Records<BufReader<File>>, String> {
        let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
        let file = File::open(path).map_err(cannot)?;
        let size = file.metadata().map_err(cannot)?.len();
        if size > self.limit {
            return Err(format!(
                "{} is {size} bytes, more than the {} allowed for index.max_entries entries \
                 (2 KiB each); raise index.max_entries if the directory really is that large",
                path.display(),
                self.limit
            ));
        }
        Ok(Records {
            reader: BufReader::new(file),
            buf: Vec::new(),
            at: 0,
            limit: self.limit,
        })
    }

    fn read_snapshot(
        &self,
        mut records: Records<BufReader<File>>,
        apply: &mut impl FnMut(Change),
    ) -> Result<(u64, Header, u64), String> {
        let name = self.path.display();
        let broken = |why: String| format!("{name} is not a saved index: {why}");
        records.magic(SNAPSHOT_MAGIC).map_err(broken)?;
        let (id, header) = match records.next().map_err(broken)? {
            Some(Record::Snapshot {
                version,
                fingerprint,
                id,
                header,
            }) => {
                self.check(version, &fingerprint, &name.to_string())?;
                (id, header)
            }
            _ => return Err(broken("it does not start with a snapshot header".into())),
        };
        let mut entries = 0u64;
        loop {
            match records.next().map_err(broken)? {
                Some(Record::Put { dn, attrs }) => {
                    apply(Change::Put(entry(dn, attrs)));
                    entries += 1;
                }
                Some(Record::End { entries: said }) if said == entries => {
                    return Ok((id, header, entries))
                }
                Some(Record::End { entries: said }) => {
                    return Err(broken(format!(
                        "it says {said} entries but holds {entries}"
                    )))
                }
                Some(_) => return Err(broken("a record out of place".into())),
                None => return Err(broken("it ends before its last record (cut short?)".into())),
            }
        }
    }

    fn read_journal(
        &mut self,
        mut records: Records<BufReader<File>>,
        id: u64,
        header: &mut Header,
        apply: &mut impl FnMut(Change),
        changes: &mut u64,
    ) -> Result<(), String> {
        let name = self.journal_path().display().to_string();
        records.magic(JOURNAL_MAGIC)?;
        match records.next()? {
            Some(Record::Journal {
                version,
                fingerprint,
                id: of,
            }) if of == id => self.check(version, &fingerprint, &name)?,
            _ => return Err(format!("{name} does not continue {}", self.path.display())),
        }
        let mut pending = Vec::new();
        loop {
            let mut committed_at = false;
            match records.next()? {
                Some(Record::Put { dn, attrs }) => {
                    pending.push(Change::Put(entry(dn, attrs)));
                }
                Some(Record::Drop { dn }) => pending.push(Change::Drop(dn.to_owned())),
                Some(Record::Commit(committed)) => {
                    *changes += pending.len() as u64;
                    pending.drain(..).for_each(&mut *apply);
                    *header = committed;
                    committed_at = true;
                }
                Some(_) => return Err(format!("{name}: a record out of place")),
                None if pending.is_empty() => return Ok(()),
                None => return Err(format!("{name}: changes after the last commit ignored")),
            }
            if committed_at {
                self.journal_len = records.at;
            }
        }
    }

    fn check(&self, version: u32, fingerprint: &str, name: &str) -> Result<(), String> {
        if version != VERSION {
            return Err(format!(
                "{name} has format version {version}, this build reads {VERSION}"
            ));
        }
        if fingerprint != self.fingerprint {
            return Err(format!(
                "{name} was saved for another directory configuration (base, filter or \
                 attributes changed)"
            ));
        }
        Ok(())
    }
}

fn entry(dn: &str, attrs: Vec<(&str, &str)>) -> Entry {
    Entry::new(dn, attrs.into_iter().map(|(n, v)| (n, vec![v])))
}

/// A snapshot's identity: its time and a counter, so that a journal is only read after the
/// snapshot it continues.
fn new_id(header: &Header) -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    header.written_at << 20 ^ u64::from(std::process::id()) << 4 ^ n
}

/// The folder `path` is in (`.` for a bare file name).
fn folder(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let dir = folder(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}{suffix}"))
}

/// Opens `path` for writing, mode 0600, emptied when `truncate`.
fn private_file(path: &Path, truncate: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Appends one framed record to `buf`; returns its size.
fn frame(buf: &mut Vec<u8>, record: &Record<'_>) -> std::io::Result<u64> {
    let payload = postcard::to_stdvec(record).map_err(std::io::Error::other)?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&n| n <= MAX_RECORD)
        .ok_or_else(|| std::io::Error::other("a record too large to save"))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
    Ok(8 + u64::from(len))
}

/// Framed records read one at a time.
struct Records<R> {
    reader: R,
    buf: Vec<u8>,
    /// Bytes read so far.
    at: u64,
    limit: u64,
}

impl<R: Read> Records<R> {
    fn magic(&mut self, magic: &[u8; 8]) -> Result<(), String> {
        let mut found = [0u8; 8];
        self.reader
            .read_exact(&mut found)
            .map_err(|e| format!("no header ({e})"))?;
        if &found != magic {
            return Err("it is not a popup-ldap state file of this version".into());
        }
        self.at = 8;
        Ok(())
    }

    /// The next record; `None` at the end of the file.
    fn next(&mut self) -> Result<Option<Record<'_>>, String> {
        let mut head = [0u8; 8];
        match self.reader.read(&mut head[..1]) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        self.reader
            .read_exact(&mut head[1..])
            .map_err(|_| "a record cut short".to_owned())?;
        let [a, b, c, d, e, f, g, h] = head;
        let len = u32::from_le_bytes([a, b, c, d]);
        let crc = u32::from_le_bytes([e, f, g, h]);
        if len > MAX_RECORD || self.at + 8 + u64::from(len) > self.limit {
            return Err(format!("a record of {len} bytes is too large"));
        }
        self.buf.resize(len as usize, 0);
        self.reader
            .read_exact(&mut self.buf)
            .map_err(|_| "a record cut short".to_owned())?;
        if crc32fast::hash(&self.buf) != crc {
            return Err(format!(
                "a record at byte {} is damaged (checksum)",
                self.at
            ));
        }
        self.at += 8 + u64::from(len);
        postcard::from_bytes(&self.buf)
            .map(Some)
            .map_err(|e| format!("a record at byte {} cannot be read: {e}", self.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(n: u32) -> Entry {
        Entry::new(
            &format!("uid=p{n},dc=x"),
            [
                ("cn", vec![format!("P {n}")]),
                ("mobile", vec![format!("054-{n:07}")]),
            ],
        )
    }

    fn header(at: u64) -> Header {
        Header {
            written_at: at,
            server: "ldaps://a".into(),
            watermark: Some(format!("w{at}")),
        }
    }

    fn load(state: &mut StateFile) -> Result<(Vec<String>, Loaded), String> {
        let mut seen = Vec::new();
        let loaded = state.load(|c| match c {
            Change::Put(e) => seen.push(format!("put {}", e.dn())),
            Change::Drop(dn) => seen.push(format!("drop {dn}")),
        })?;
        Ok((seen, loaded))
    }

    #[test]
    fn a_snapshot_and_its_journal_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.state");
        let mut state = StateFile::new(path.clone(), "f".into(), 1 << 20);
        assert!(!state.can_append());
        state
            .write_snapshot(&header(1), &[person(1), person(2)])
            .expect("snapshot");
        assert!(state.can_append());
        state
            .append(
                &[Change::Put(person(3)), Change::Drop("uid=p1,dc=x".into())],
                &header(2),
            )
            .expect("append");
        state.append(&[], &header(3)).expect("confirm");
        let mut again = StateFile::new(path.clone(), "f".into(), 1 << 20);
        let (seen, loaded) = load(&mut again).expect("load");
        assert_eq!(
            seen,
            [
                "put uid=p1,dc=x",
                "put uid=p2,dc=x",
                "put uid=p3,dc=x",
                "drop uid=p1,dc=x"
            ]
        );
        assert_eq!(
            (loaded.header, loaded.entries, loaded.changes),
            (header(3), 2, 2)
        );
        assert!(loaded.journal_cut.is_none());
        // Loading continues the same journal.
        again
            .append(&[Change::Put(person(4))], &header(4))
            .expect("append");
        let (seen, _) = load(&mut StateFile::new(path.clone(), "f".into(), 1 << 20)).expect("load");
        assert_eq!(seen.last().map(String::as_str), Some("put uid=p4,dc=x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [path.clone(), again.journal_path()] {
                let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", p.display());
            }
        }
        // A new snapshot empties the journal.
        again
            .write_snapshot(&header(5), &[person(9)])
            .expect("snapshot");
        assert!(!again.journal_path().exists());
        let (seen, loaded) = load(&mut StateFile::new(path, "f".into(), 1 << 20)).expect("load");
        assert_eq!((seen.len(), loaded.header.written_at), (1, 5));
    }

    /// A snapshot of person 1 with a journal adding person 2.
    fn snapshot_and_journal(path: &Path) -> StateFile {
        let mut state = StateFile::new(path.to_owned(), "f".into(), 1 << 20);
        state
            .write_snapshot(&header(1), &[person(1)])
            .expect("snapshot");
        state
            .append(&[Change::Put(person(2))], &header(2))
            .expect("append");
        state
    }

    #[test]
    fn a_torn_journal_ends_at_its_last_commit_and_is_cut_at_the_next_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.state");
        let mut state = snapshot_and_journal(&path);
        state
            .append(&[Change::Put(person(3))], &header(3))
            .expect("append");
        let journal = state.journal_path();
        let full = std::fs::read(&journal).expect("read");
        for cut in [full.len() - 1, full.len() - 20, full.len() - 40] {
            std::fs::write(&journal, &full[..cut]).expect("tear");
            let mut torn = StateFile::new(path.clone(), "f".into(), 1 << 20);
            let (seen, loaded) = load(&mut torn).expect("load");
            assert_eq!(seen, ["put uid=p1,dc=x", "put uid=p2,dc=x"], "cut at {cut}");
            assert_eq!(loaded.header.written_at, 2);
            assert!(loaded.journal_cut.is_some());
        }
        // A damaged byte inside the last change: the same.
        let mut damaged = full.clone();
        let at = damaged.len() - 30;
        damaged[at] ^= 0xff;
        std::fs::write(&journal, &damaged).expect("damage");
        let mut state = StateFile::new(path.clone(), "f".into(), 1 << 20);
        let (seen, loaded) = load(&mut state).expect("load");
        assert_eq!(seen.len(), 2);
        assert!(loaded.journal_cut.expect("cut").contains("checksum"));
        // The next append replaces the damaged tail.
        state
            .append(&[Change::Put(person(5))], &header(5))
            .expect("append");
        let (seen, loaded) = load(&mut StateFile::new(path, "f".into(), 1 << 20)).expect("load");
        assert_eq!(seen.last().map(String::as_str), Some("put uid=p5,dc=x"));
        assert!(loaded.journal_cut.is_none(), "{:?}", loaded.journal_cut);
    }

    #[test]
    fn broken_foreign_or_oversized_snapshots_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.state");
        let mut state = StateFile::new(path.clone(), "f".into(), 1 << 20);
        assert!(load(&mut state)
            .expect_err("missing")
            .contains("cannot read"));
        state
            .write_snapshot(&header(1), &[person(1), person(2)])
            .expect("snapshot");
        let good = std::fs::read(&path).expect("read");
        let other = |f: &str, limit| load(&mut StateFile::new(path.clone(), f.into(), limit));
        assert!(other("g", 1 << 20)
            .expect_err("foreign")
            .contains("another directory"));
        assert!(other("f", 64)
            .expect_err("limit")
            .contains("more than the 64 allowed"));
        for (bytes, why) in [
            (b"{\"version\":1}".to_vec(), "not a popup-ldap state file"),
            (good[..good.len() - 3].to_vec(), "cut short"),
            (
                good[..good.len() - 10].to_vec(),
                "ends before its last record",
            ),
            (
                {
                    let mut b = good.clone();
                    let at = b.len() / 2;
                    b[at] ^= 1;
                    b
                },
                "checksum",
            ),
            (
                {
                    let mut b = good[..8].to_vec();
                    b.extend_from_slice(&u32::MAX.to_le_bytes());
                    b.extend_from_slice(&[0; 4]);
                    b
                },
                "too large",
            ),
        ] {
            std::fs::write(&path, &bytes).expect("write");
            let e = other("f", 1 << 20).expect_err(why);
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn a_journal_of_another_snapshot_is_not_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.state");
        let mut state = snapshot_and_journal(&path);
        let journal = std::fs::read(state.journal_path()).expect("journal");
        state
            .write_snapshot(&header(3), &[person(7)])
            .expect("snapshot");
        std::fs::write(state.journal_path(), journal).expect("stale journal");
        let mut again = StateFile::new(path, "f".into(), 1 << 20);
        let (seen, loaded) = load(&mut again).expect("load");
        assert_eq!(seen, ["put uid=p7,dc=x"]);
        assert!(loaded
            .journal_cut
            .expect("cut")
            .contains("does not continue"));
        assert!(
            !again.can_append(),
            "a fresh snapshot must replace the stale journal"
        );
    }
}
