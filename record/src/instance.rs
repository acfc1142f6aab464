//! A private tracefs instance: created on start, removed on drop, stale ones cleaned up.
//!
//! Everything kreq changes lives under `instances/kreq-PID-N/`; the top-level buffer and
//! global settings are never written.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where tracefs is normally mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// Prefix of every instance kreq creates.
pub const PREFIX: &str = "kreq-";

/// A tracefs instance owned by this process.
#[derive(Debug)]
pub struct Instance {
    dir: PathBuf,
    removed: bool,
}

/// The tracefs mount point, mounting it at [`TRACEFS`] when it is not mounted yet.
pub fn tracefs_root() -> Result<PathBuf> {
    let root = PathBuf::from(TRACEFS);
    if root.join("instances").is_dir() {
        return Ok(root);
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev", TRACEFS])
        .status()
        .map_err(|e| Error::io(&root, e))?;
    if !status.success() || !root.join("instances").is_dir() {
        return Err(Error::Tracefs(format!(
            "{TRACEFS} is not a mounted tracefs and mounting it failed (are you root?)"
        )));
    }
    Ok(root)
}

impl Instance {
    /// Create `instances/kreq-PID-N`, removing stale kreq instances first.
    pub fn create(root: &Path) -> Result<Self> {
        cleanup_stale(root)?;
        let pid = std::process::id();
        for n in 0..100 {
            let dir = root.join("instances").join(format!("{PREFIX}{pid}-{n}"));
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    return Ok(Self {
                        dir,
                        removed: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            }
        }
        Err(Error::Tracefs("could not find a free instance name".into()))
    }

    /// The instance directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Instance name (`kreq-PID-N`).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Write `value` to a file of the instance (`trace_clock`, `events/sched/enable`, ...).
    pub fn write(&self, rel: &str, value: &str) -> Result<()> {
        let p = self.dir.join(rel);
        std::fs::write(&p, value)
            .map_err(|e| Error::Tracefs(format!("writing {value:?} to {}: {e}", p.display())))
    }

    /// Write `value` to a file of the instance without truncating it first: for pid lists
    /// (`set_event_pid`) this adds to the list instead of replacing it.
    pub fn add(&self, rel: &str, value: &str) -> Result<()> {
        use std::io::Write;
        let p = self.dir.join(rel);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(|e| Error::Tracefs(format!("adding {value:?} to {}: {e}", p.display())))
    }

    /// Read a file of the instance.
    pub fn read(&self, rel: &str) -> Result<String> {
        let p = self.dir.join(rel);
        read_file(&p).map_err(|e| Error::io(&p, e))
    }

    /// Stop tracing, disable all events and remove the instance.
    pub fn remove(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        let _ = self.write("tracing_on", "0");
        let _ = self.write("events/enable", "0");
        remove_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        self.removed = true;
        Ok(())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// Remove an instance directory. The kernel refuses (EBUSY) while a file of the instance is
/// still referenced, which can outlast its close for a moment on a loaded machine: retry for
/// up to 2 s.
pub fn remove_dir(dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            r => return r,
        }
    }
}

/// Read a tracefs file with large reads: some (`events/header_page`) return only the first
/// piece, then end of file, to a small first read such as `read_to_string`'s 32-byte probe.
pub fn read_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Remove `kreq-*` instances whose creating process is gone (all of them when `all`).
/// Returns the names removed.
pub fn cleanup(root: &Path, all: bool) -> Result<Vec<String>> {
    let dir = root.join("instances");
    let mut removed = Vec::new();
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if all || !alive {
            let p = entry.path();
            let _ = std::fs::write(p.join("tracing_on"), "0");
            let _ = std::fs::write(p.join("events/enable"), "0");
            remove_dir(&p).map_err(|e| Error::io(&p, e))?;
            removed.push(name);
        }
    }
    Ok(removed)
}

fn cleanup_stale(root: &Path) -> Result<Vec<String>> {
    cleanup(root, false)
}
