//! What `kreq ingest --warehouse` and `kreq record --warehouse` share: a batch's partition,
//! its commit, and the test hook that stops a commit before its swap.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use kreq_schemas::dataset::Manifest;
use kreq_schemas::warehouse::utc_date;
use kreq_warehouse::{CommitReport, Partition, Staging, Warehouse};

/// Commit the staged batch, written with manifest `m` from `inputs` (none for a live
/// recording), to the partition of `host` and `date`, each defaulting to what the recording
/// says (its host name; [`recording_date`]).
pub fn commit(
    wh: &Warehouse,
    staged: Staging,
    host: Option<String>,
    date: Option<String>,
    m: &Manifest,
    inputs: &[PathBuf],
) -> Result<(Partition, CommitReport)> {
    let Some(host) = host.or_else(|| m.host.clone()) else {
        bail!("the recording does not name its host: give --host");
    };
    let date = match date {
        Some(d) => d,
        None => recording_date(m, inputs)?,
    };
    let to = Partition { host, date };
    let done = wh
        .commit(staged, &to, &pause_before_swap)
        .with_context(|| format!("committing to {}", wh.root().display()))?;
    Ok((to, done))
}

/// The UTC date of a recording: of its first event when it knows wall-clock time (a live
/// recording's `epoch_offset_ns`), else of the first input's modification time (today, for a
/// live recording without inputs).
pub fn recording_date(m: &Manifest, inputs: &[PathBuf]) -> Result<String> {
    if let (Some(offset), Some((first, _))) = (m.epoch_offset_ns, m.time_range_ns) {
        return Ok(utc_date((first + offset).div_euclid(1_000_000_000)));
    }
    let modified = match inputs.first() {
        Some(first) => std::fs::metadata(first)
            .and_then(|md| md.modified())
            .with_context(|| format!("{}: modification time", first.display()))?,
        None => std::time::SystemTime::now(),
    };
    let secs = match modified.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    Ok(utc_date(secs))
}

/// With `KREQ_TEST_PAUSE_BEFORE_SWAP=SECONDS`, say so on stderr and wait that long once a
/// commit's snapshot is complete and before it becomes visible: the warehouse tests kill a
/// batch there.
pub fn pause_before_swap() {
    if let Some(secs) = std::env::var("KREQ_TEST_PAUSE_BEFORE_SWAP")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        eprintln!("kreq: paused before the warehouse swap");
        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    }
}
