//! The dataset directory on disk: creating it, the manifest, naming inputs.

use std::path::Path;

use kreq_schemas::dataset::{self, Manifest};

use crate::error::{Error, Result};

/// Write `kreq.json` atomically (tmp + rename).
pub(crate) fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    m.write(dir)
        .map_err(|e| Error::io(dir.join(dataset::MANIFEST), e))
}

/// Create the dataset directories; refuse to mix with an existing dataset unless `force`.
pub(crate) fn prepare_output(dir: &Path, force: bool) -> Result<()> {
    let io = |e| Error::io(dir, e);
    if dir.exists() {
        let non_empty = std::fs::read_dir(dir).map_err(io)?.next().is_some();
        if non_empty {
            if !force {
                return Err(Error::OutputExists(dir.to_owned()));
            }
            for sub in [
                kreq_schemas::table::EVENTS.name,
                kreq_schemas::table::LOST_EVENTS.name,
            ] {
                let p = dir.join(sub);
                if p.exists() {
                    std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
                }
            }
            for file in [dataset::MANIFEST, dataset::FORMATS] {
                let m = dir.join(file);
                if m.exists() {
                    std::fs::remove_file(&m).map_err(|e| Error::io(&m, e))?;
                }
            }
        }
    }
    for sub in [
        kreq_schemas::table::EVENTS.name,
        kreq_schemas::table::LOST_EVENTS.name,
    ] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// File name of a path as text.
pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Name of the text format, from the start of an input.
pub(crate) fn detect_format(head: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.starts_with("cpus=") {
        "trace-cmd-report"
    } else if first.starts_with("# tracer:") {
        "trace"
    } else {
        "trace_pipe"
    }
}
