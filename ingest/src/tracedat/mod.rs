//! trace-cmd `trace.dat` files, version 6 and 7 (zstd or zlib compressed sections).
//!
//! Only the parts kreq needs are read: page and event formats, saved command lines, the
//! clock, uname, per-CPU stats, and each CPU's ring-buffer pages of the first (or named)
//! buffer. Layout references: trace-cmd's `trace-cmd.dat.v6(5)` and `trace-cmd.dat.v7(5)`.

mod bytes;
mod cursor;
mod error;
mod file;
mod v6;
mod v7;

pub use bytes::DatBytes;
pub use error::TraceDatError;
pub use file::{CpuData, CpuRegion, DatCpu, TraceDat};

use cursor::{Cursor, TRUNCATED};

const MAGIC: &[u8] = b"\x17\x08\x44tracing";

/// True when `head` starts like a trace.dat file.
pub fn is_tracedat(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// Parse a whole trace.dat held in memory (a copy is kept). `buffer` names the instance to
/// read (default: the first buffer in the file).
pub fn parse(file: &[u8], buffer: Option<&str>) -> Result<TraceDat, TraceDatError> {
    read(DatBytes::Memory(file.to_vec()), buffer)
}

/// Bytes of a file's start read first for its header; a v6 header (formats, kallsyms, printk
/// formats, saved command lines) that is longer is read again with four times as much.
const FIRST_HEAD: u64 = 1 << 20;

/// Read a trace.dat's header and where its pages are. Pages are read later, as a decoder
/// reaches them ([`TraceDat::decode_with`]). `buffer` names the instance to read (default: the
/// first buffer in the file).
pub fn read(bytes: DatBytes, buffer: Option<&str>) -> Result<TraceDat, TraceDatError> {
    let mut want = FIRST_HEAD;
    loop {
        let head = bytes.prefix(want)?;
        let whole = head.len() as u64 == bytes.len();
        match header(&head, &bytes, buffer) {
            Ok(mut dat) => {
                drop(head);
                dat.bytes = bytes;
                return Ok(dat);
            }
            Err(e) if !whole && e.reason.starts_with(TRUNCATED) => want *= 4,
            Err(e) => return Err(e),
        }
    }
}

/// Parse the header in `head`, the first bytes of `bytes`.
fn header(head: &[u8], bytes: &DatBytes, buffer: Option<&str>) -> Result<TraceDat, TraceDatError> {
    let mut c = Cursor::new(head, 0);
    if !is_tracedat(head) {
        return Err(c.err("not a trace.dat file (bad magic)"));
    }
    c.pos = MAGIC.len();
    let version: u32 = c.cstr()?.parse().map_err(|_| c.err("bad version string"))?;
    let endian = c.take(1)?[0];
    if endian != 0 {
        return Err(c.err("big-endian trace.dat files are not supported"));
    }
    let long_size = usize::from(c.take(1)?[0]);
    let page_size = c.u32()? as usize;
    let mut dat = TraceDat {
        version,
        page_size,
        long_size,
        ..Default::default()
    };
    match version {
        6 => v6::read(&mut dat, head, bytes, c.pos, buffer)?,
        7 => v7::read(&mut dat, bytes, &mut c, buffer)?,
        v => {
            return Err(c.err(format!(
                "trace.dat version {v} is not supported (6 and 7 are)"
            )))
        }
    }
    Ok(dat)
}
