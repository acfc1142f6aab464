//! A warehouse of kreq datasets: every host's recordings of every day in one directory of
//! Hive-style partitions (`TABLE/host=H/date=D/part-BATCH-N.parquet`), appended to by batches
//! that become visible whole or not at all, and that replace their own earlier files when run
//! again. The layout is [`kreq_schemas::warehouse`]'s.
//!
//! A batch is written by the ordinary dataset writers into a staging directory
//! ([`Warehouse::stage`]), then [`Warehouse::commit`]ted: under an exclusive lock, a new
//! snapshot directory is made of hard links to the current snapshot's files (less the batch's
//! earlier ones) and the batch's new parts, and the `current` symlink is replaced by one to it
//! in a single `rename`. Until that rename nothing of the batch is visible; after it, all of
//! it. A commit costs one `link` per file already in the warehouse (no data is copied); the
//! snapshot before the last is removed.
#![deny(missing_docs)]

mod error;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use kreq_schemas::dataset::{Manifest, MANIFEST};
use kreq_schemas::table;
use kreq_schemas::warehouse::{self as layout, BatchRecord, ClockOffset, Marker};

pub use error::{Error, Result};

use error::io;

/// A warehouse directory.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: PathBuf,
}

/// A batch being written: a dataset directory under `_staging`, removed when dropped unless
/// committed.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    batch: String,
    id_base: Option<u64>,
}

impl Staging {
    /// The dataset directory to write the batch into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The batch id.
    pub fn batch(&self) -> &str {
        &self.batch
    }

    /// The first request and span id a correlation of this batch hands out, when it is
    /// correlated (recorded with the batch).
    pub fn id_base(&self) -> Option<u64> {
        self.id_base
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Where a committed batch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Host partition value.
    pub host: String,
    /// Date partition value (`YYYY-MM-DD`).
    pub date: String,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitReport {
    /// The snapshot now visible (`.snapshots/NNNNNN`).
    pub snapshot: String,
    /// Files the batch added.
    pub added: usize,
    /// Files of an earlier commit of the same batch that it replaced.
    pub replaced: usize,
    /// Files of other batches carried over.
    pub kept: usize,
}

impl Warehouse {
    /// Open the warehouse at `root`, making it when `root` is missing or an empty directory.
    pub fn create_or_open(root: &Path) -> Result<Self> {
        let empty = match fs::read_dir(root) {
            Ok(mut rd) => rd.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(io(root)(e)),
        };
        if empty {
            Self::create(root)?;
        }
        Self::open(root)
    }

    /// Open an existing warehouse.
    pub fn open(root: &Path) -> Result<Self> {
        let marker = root.join(layout::MARKER);
        let text = fs::read_to_string(&marker).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Layout {
                path: root.to_owned(),
                msg: format!(
                    "not a kreq warehouse (no {}) and not empty; give a new or empty directory",
                    layout::MARKER
                ),
            },
            _ => io(&marker)(e),
        })?;
        let m: Marker = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: marker.clone(),
            source,
        })?;
        // A warehouse of an older schema takes this kreq's parts when every table of it reads
        // as it is (columns added since read as null); its marker keeps the oldest schema
        // any of its parts has, so a later kreq judges it by that.
        let current: u32 = kreq_schemas::SCHEMA_VERSION.parse().unwrap_or(0);
        let version: u32 = m.schema_version.parse().unwrap_or(0);
        let rewrite = table::ALL.iter().find_map(|t| match t.upgrade(version) {
            table::Upgrade::Rewrite(by) => Some((t.name, by)),
            table::Upgrade::None => None,
        });
        if version > current || rewrite.is_some() {
            let why = match rewrite {
                Some((name, by)) => format!(
                    "; its `{name}` files must be written again (`{by}` of each batch, into a \
                     new warehouse)"
                ),
                None => String::new(),
            };
            return Err(Error::Layout {
                path: root.to_owned(),
                msg: format!(
                    "warehouse of schema {}; this kreq writes schema {}{why}",
                    m.schema_version,
                    kreq_schemas::SCHEMA_VERSION
                ),
            });
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    fn create(root: &Path) -> Result<()> {
        let first = snapshot_name(0);
        let snap = root.join(layout::SNAPSHOTS).join(&first);
        for t in table::ALL {
            fs::create_dir_all(snap.join(t.name)).map_err(io(&snap))?;
            let link = root.join(t.name);
            std::os::unix::fs::symlink(Path::new(layout::CURRENT).join(t.name), &link)
                .map_err(io(&link))?;
        }
        fs::create_dir_all(snap.join(layout::BATCHES)).map_err(io(&snap))?;
        let current = root.join(layout::CURRENT);
        std::os::unix::fs::symlink(Path::new(layout::SNAPSHOTS).join(&first), &current)
            .map_err(io(&current))?;
        let marker = Marker {
            schema_version: kreq_schemas::SCHEMA_VERSION.into(),
            created_by: format!("kreq {}", env!("CARGO_PKG_VERSION")),
        };
        // The marker last: a directory without it is not taken for a warehouse.
        let text = serde_json::to_string_pretty(&marker).map_err(|source| Error::Json {
            path: root.join(layout::MARKER),
            source,
        })?;
        write_atomic(&root.join(layout::MARKER), text.as_bytes())
    }

    /// The warehouse directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A staging dataset directory for batch `batch`.
    pub fn stage(&self, batch: &str) -> Result<Staging> {
        check("batch", batch)?;
        let dir = self
            .root
            .join(layout::STAGING)
            .join(format!("{batch}-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        fs::create_dir_all(dir.parent().unwrap_or(&self.root)).map_err(io(&dir))?;
        Ok(Staging {
            dir,
            batch: batch.to_owned(),
            id_base: None,
        })
    }

    /// A staging dataset holding committed batch `record`'s events and lost events (hard
    /// links: its files are never written in place, only replaced) and its manifest, to be
    /// correlated and committed again as the same batch. Its id range is the batch's own, or a
    /// new one past every other batch's.
    pub fn checkout(&self, record: &BatchRecord) -> Result<Staging> {
        let mut manifest = record.manifest.clone();
        manifest.correlation = None;
        let mut staged = self.linked(record, &[table::EVENTS, table::LOST_EVENTS], &manifest)?;
        staged.id_base = Some(match record.id_base {
            Some(b) => b,
            None => self.next_id_base()?,
        });
        Ok(staged)
    }

    /// A staging dataset holding every file of committed batch `record` (hard links) and its
    /// manifest as committed: one host's recording as a plain dataset, for tools that read one
    /// (`kreq export`). Removed when dropped.
    pub fn dataset_of(&self, record: &BatchRecord) -> Result<Staging> {
        self.linked(record, &table::ALL, &record.manifest)
    }

    /// A staging dataset of batch `record`'s files of `tables` (hard links, renumbered as a
    /// dataset's parts) and `manifest`.
    fn linked(
        &self,
        record: &BatchRecord,
        tables: &[table::Table],
        manifest: &Manifest,
    ) -> Result<Staging> {
        let staged = self.stage(&record.id)?;
        let current = self.current()?;
        for t in tables {
            let dir = t.dir(&staged.dir);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            let prefix = format!("{}/", t.name);
            let files = record.files.iter().filter(|f| f.starts_with(&prefix));
            for (seq, f) in files.enumerate() {
                let to = kreq_schemas::dataset::part_path(&staged.dir, t.name, seq as u64);
                fs::hard_link(current.join(f), &to).map_err(io(&to))?;
            }
        }
        manifest
            .write(&staged.dir)
            .map_err(io(staged.dir.join(MANIFEST)))?;
        Ok(staged)
    }

    /// An id range no committed batch holds.
    fn next_id_base(&self) -> Result<u64> {
        let top = self.batches()?.iter().filter_map(|b| b.id_base).max();
        Ok(top.map_or(layout::ID_RANGE, |b| b + layout::ID_RANGE))
    }

    /// The visible snapshot's directory.
    pub fn current(&self) -> Result<PathBuf> {
        let link = self.root.join(layout::CURRENT);
        let target = fs::read_link(&link).map_err(io(&link))?;
        Ok(self.root.join(target))
    }

    /// The committed batches.
    pub fn batches(&self) -> Result<Vec<BatchRecord>> {
        let dir = self.current()?.join(layout::BATCHES);
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let path = e.map_err(io(&dir))?.path();
            if path.extension().is_some_and(|x| x == "json") {
                let text = fs::read_to_string(&path).map_err(io(&path))?;
                out.push(
                    serde_json::from_str(&text).map_err(|source| Error::Json { path, source })?,
                );
            }
        }
        out.sort_by(|a: &BatchRecord, b| (&a.host, &a.date, &a.id).cmp(&(&b.host, &b.date, &b.id)));
        Ok(out)
    }

    /// The committed batches of `host` and `date` (any, where `None`), in [`Self::batches`]'
    /// order.
    pub fn batches_of(&self, host: Option<&str>, date: Option<&str>) -> Result<Vec<BatchRecord>> {
        let mut out = self.batches()?;
        out.retain(|b| host.is_none_or(|h| h == b.host) && date.is_none_or(|d| d == b.date));
        Ok(out)
    }

    /// Make the staged batch visible in partition `to`, replacing the files of an earlier
    /// commit of the same batch id. `before_swap` runs once the new snapshot is complete, just
    /// before it is made visible (tests stop a batch there).
    pub fn commit(
        &self,
        staged: Staging,
        to: &Partition,
        before_swap: &dyn Fn(),
    ) -> Result<CommitReport> {
        check("host", &to.host)?;
        if !layout::valid_date(&to.date) {
            return Err(Error::Value {
                what: "date",
                value: to.date.clone(),
                rule: "YYYY-MM-DD",
            });
        }
        let _lock = self.lock()?;
        self.remove_abandoned_staging();
        let batch = staged.batch.clone();
        let current = self.current()?;
        let number = current
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| Error::Layout {
                path: current.clone(),
                msg: "current snapshot is not a numbered directory".into(),
            })?;
        let snapshots = self.root.join(layout::SNAPSHOTS);
        let name = snapshot_name(number + 1);
        let next = snapshots.join(&name);
        if next.exists() {
            // Left by a commit killed before its swap.
            fs::remove_dir_all(&next).map_err(io(&next))?;
        }
        let own_record = format!("{}/{batch}.json", layout::BATCHES);
        let (mut kept, mut replaced) = (0, 0);
        for t in table::ALL {
            fs::create_dir_all(next.join(t.name)).map_err(io(&next))?;
        }
        fs::create_dir_all(next.join(layout::BATCHES)).map_err(io(&next))?;
        for rel in files_under(&current)? {
            let file_name = rel.rsplit('/').next().unwrap_or(&rel);
            if layout::batch_of(file_name) == Some(batch.as_str()) || rel == own_record {
                replaced += usize::from(rel != own_record);
                continue;
            }
            let dest = next.join(&rel);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io(parent))?;
            }
            fs::hard_link(current.join(&rel), &dest).map_err(io(&dest))?;
            kept += 1;
        }
        let manifest = Manifest::read(staged.dir()).map_err(io(staged.dir().join(MANIFEST)))?;
        let mut files = Vec::new();
        let partition = layout::partition(&to.host, &to.date);
        for t in table::ALL {
            let from = t.dir(staged.dir());
            let mut parts: Vec<PathBuf> = match fs::read_dir(&from) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&from)(e)),
            };
            parts.sort();
            let dir = next.join(t.name).join(&partition);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            for (seq, part) in parts.iter().enumerate() {
                let name = layout::part_name(&batch, seq as u64);
                fs::rename(part, dir.join(&name)).map_err(io(part))?;
                files.push(format!("{}/{partition}/{name}", t.name));
            }
        }
        let record = BatchRecord {
            id: batch.clone(),
            host: to.host.clone(),
            date: to.date.clone(),
            files,
            manifest,
            id_base: staged.id_base,
        };
        let record_path = next.join(&own_record);
        let text = serde_json::to_string_pretty(&record).map_err(|source| Error::Json {
            path: record_path.clone(),
            source,
        })?;
        write_atomic(&record_path, text.as_bytes())?;
        before_swap();
        // The swap: a new symlink renamed over `current`.
        let tmp = self.root.join(".current.tmp");
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(Path::new(layout::SNAPSHOTS).join(&name), &tmp)
            .map_err(io(&tmp))?;
        fs::rename(&tmp, self.root.join(layout::CURRENT)).map_err(io(&tmp))?;
        // Keep the snapshot just replaced for readers that resolved it; drop older ones.
        let keep = [name.clone(), snapshot_name(number)];
        for e in fs::read_dir(&snapshots).map_err(io(&snapshots))?.flatten() {
            if !keep
                .iter()
                .any(|k| e.file_name().to_str() == Some(k.as_str()))
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        Ok(CommitReport {
            snapshot: format!("{}/{name}", layout::SNAPSHOTS),
            added: record.files.len(),
            replaced,
            kept,
        })
    }

    /// The warehouse's exclusive lock, held until the file is dropped.
    fn lock(&self) -> Result<fs::File> {
        let lock_path = self.root.join(".lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        Ok(lock)
    }

    /// Record the hosts' clock offsets in the current snapshot ([`layout::CLOCK_OFFSETS`]),
    /// replacing any recorded before, in one `rename` under the lock.
    pub fn record_clock_offsets(&self, offsets: &[ClockOffset]) -> Result<()> {
        let _lock = self.lock()?;
        let path = self.current()?.join(layout::CLOCK_OFFSETS);
        let text = serde_json::to_string_pretty(offsets).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, text.as_bytes())
    }

    /// Remove staging directories whose writer is gone (killed batches).
    fn remove_abandoned_staging(&self) {
        let dir = self.root.join(layout::STAGING);
        let Ok(rd) = fs::read_dir(&dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.rsplit_once('-'))
                .and_then(|(_, p)| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A batch id derived from the inputs' contents: committing the same inputs again replaces
/// what they added. 16 hex digits of a 64-bit FNV-1a hash over each input's length and bytes.
pub fn batch_id(inputs: &[PathBuf]) -> Result<String> {
    const PRIME: u64 = 0x100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
    };
    let mut buf = vec![0; 1 << 16];
    for path in inputs {
        let mut f = fs::File::open(path).map_err(io(path))?;
        let len = f.metadata().map_err(io(path))?.len();
        eat(&len.to_le_bytes());
        loop {
            let n = f.read(&mut buf).map_err(io(path))?;
            if n == 0 {
                break;
            }
            eat(&buf[..n]);
        }
    }
    Ok(format!("{h:016x}"))
}

fn snapshot_name(n: u64) -> String {
    format!("{n:06}")
}

fn check(what: &'static str, value: &str) -> Result<()> {
    if layout::valid_value(value) {
        Ok(())
    } else {
        Err(Error::Value {
            what,
            value: value.to_owned(),
            rule: "letters, digits, '.', '_' and '-', not starting with '.' or '_'",
        })
    }
}

/// Every file under `dir`, as `/`-separated paths relative to it.
fn files_under(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![(dir.to_owned(), String::new())];
    while let Some((d, prefix)) = todo.pop() {
        for e in fs::read_dir(&d).map_err(io(&d))? {
            let e = e.map_err(io(&d))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if e.file_type().map_err(io(e.path()))?.is_dir() {
                todo.push((e.path(), rel));
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Write `bytes` to `path` through a temporary file renamed into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, bytes).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}
