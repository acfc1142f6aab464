//! Output files: written whole under a temporary name, then renamed, so a reader never sees
//! a partial file.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// Write to `path` through a temporary file renamed into place, or to stdout for `-`. A path
/// that exists and is not a regular file (`/dev/null`, a FIFO) is written directly.
pub fn with_output<T>(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<T, kreq_query::Error>,
) -> Result<T> {
    if path == Path::new("-") {
        let mut out = BufWriter::new(std::io::stdout().lock());
        let s = f(&mut out)?;
        out.flush()?;
        return Ok(s);
    }
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut out = BufWriter::new(file);
        let s = f(&mut out).with_context(|| format!("writing {}", path.display()))?;
        out.flush()?;
        return Ok(s);
    }
    let tmp = path.with_extension("kreq-tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = BufWriter::new(file);
    let s = f(&mut out).with_context(|| format!("writing {}", path.display()))?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(s)
}
