//! Reading trace.dat bytes: a cursor that reports file offsets in its errors, compressed
//! sections, and the header, format and command-line sections that versions 6 and 7 share.

use super::bytes::{decompress, Codec, DatBytes};
use super::error::TraceDatError;
use super::file::TraceDat;
use crate::binary::format::{parse_event_format, PageHeader};

/// How the errors of a cursor that ran out of bytes start: a header read from the start of a
/// file is read again with more of the file.
pub(super) const TRUNCATED: &str = "truncated";

/// Bytes read in order; errors name the file offset.
pub(super) struct Cursor<'a> {
    b: &'a [u8],
    pub(super) pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(b: &'a [u8], base: u64) -> Self {
        Self { b, pos: 0, base }
    }
    /// File offset of the next byte.
    pub(super) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }
    pub(super) fn err(&self, reason: impl Into<String>) -> TraceDatError {
        TraceDatError {
            offset: self.offset(),
            reason: reason.into(),
        }
    }
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], TraceDatError> {
        let s = self
            .b
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or_else(|| self.err(format!("{TRUNCATED}: wanted {n} bytes")))?;
        self.pos += n;
        Ok(s)
    }
    pub(super) fn u16(&mut self) -> Result<u16, TraceDatError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    pub(super) fn u32(&mut self) -> Result<u32, TraceDatError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    pub(super) fn u64(&mut self) -> Result<u64, TraceDatError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    pub(super) fn cstr(&mut self) -> Result<&'a str, TraceDatError> {
        let rest = &self.b[self.pos.min(self.b.len())..];
        let end = memchr::memchr(0, rest)
            .ok_or_else(|| self.err(format!("{TRUNCATED}: unterminated string")))?;
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| self.err("string is not UTF-8"))?;
        self.pos += end + 1;
        Ok(s)
    }
    pub(super) fn sized_text(&mut self, size: usize) -> Result<&'a str, TraceDatError> {
        let b = self.take(size)?;
        std::str::from_utf8(b).map_err(|_| self.err("text is not UTF-8"))
    }
}

/// A v7 section's content at `off`, decompressed when flagged.
pub(super) fn section(bytes: &DatBytes, off: u64, codec: Codec) -> Result<Vec<u8>, TraceDatError> {
    let head = bytes.read_at(off, 16)?;
    let mut c = Cursor::new(&head, off);
    let _id = c.u16()?;
    let flags = c.u16()?;
    let _string = c.u32()?;
    let size = c.u64()?;
    let at = off + 16;
    if flags & 1 != 0 {
        let sizes = bytes.read_at(at, 8)?;
        let mut s = Cursor::new(&sizes, at);
        let (csize, usize_) = (s.u32()? as usize, s.u32()? as usize);
        let data = bytes.read_at(at + 8, csize)?;
        decompress(codec, &data, usize_, at)
    } else {
        let size = usize::try_from(size).map_err(|_| c.err("section size out of range"))?;
        Ok(bytes.read_at(at, size)?.into_owned())
    }
}

pub(super) fn read_header_info(
    dat: &mut TraceDat,
    s: &mut Cursor<'_>,
) -> Result<(), TraceDatError> {
    if s.cstr()? != "header_page" {
        return Err(s.err("expected header_page"));
    }
    let size = s.u64()? as usize;
    let text = s.sized_text(size)?;
    dat.page_header = PageHeader::parse(text).map_err(|e| s.err(e.to_string()))?;
    if s.cstr()? != "header_event" {
        return Err(s.err("expected header_event"));
    }
    let size = s.u64()? as usize;
    s.take(size)?;
    Ok(())
}

pub(super) fn read_ftrace_formats(
    dat: &mut TraceDat,
    s: &mut Cursor<'_>,
) -> Result<(), TraceDatError> {
    let n = s.u32()?;
    for _ in 0..n {
        let size = s.u64()? as usize;
        add_format(dat, "ftrace", s.sized_text(size)?, s)?;
    }
    Ok(())
}

pub(super) fn read_event_formats(
    dat: &mut TraceDat,
    s: &mut Cursor<'_>,
) -> Result<(), TraceDatError> {
    let systems = s.u32()?;
    for _ in 0..systems {
        let system = s.cstr()?.to_owned();
        let n = s.u32()?;
        for _ in 0..n {
            let size = s.u64()? as usize;
            add_format(dat, &system, s.sized_text(size)?, s)?;
        }
    }
    Ok(())
}

fn add_format(
    dat: &mut TraceDat,
    system: &str,
    text: &str,
    s: &Cursor<'_>,
) -> Result<(), TraceDatError> {
    let f = parse_event_format(text, system).map_err(|e| s.err(e.to_string()))?;
    dat.format_texts
        .push((format!("{system}/{}", f.name), text.to_owned()));
    dat.formats.insert(f);
    Ok(())
}

pub(super) fn read_cmdlines(dat: &mut TraceDat, text: &str) {
    for line in text.lines() {
        if let Some((pid, comm)) = line.split_once(' ') {
            if let Ok(pid) = pid.trim().parse() {
                dat.cmdlines.insert(pid, comm.to_owned());
            }
        }
    }
}

/// The clock in brackets of a `trace_clock` listing (`local global [mono] ...`).
pub(super) fn selected_clock(list: &str) -> Option<String> {
    let start = list.find('[')? + 1;
    let end = list[start..].find(']')? + start;
    Some(list[start..end].to_owned())
}

/// CPUSTAT options come per buffer: the top-level buffer's first, then for each instance a
/// `Buffer: NAME` marker followed by its CPUs. Keep those of buffer `name` ("" = top level).
pub(super) fn stats_of_buffer(all: &[String], name: &str) -> Vec<String> {
    let mut current = String::new();
    let mut out = Vec::new();
    for s in all {
        if let Some(rest) = s.trim().strip_prefix("Buffer:") {
            current = rest.trim().to_owned();
        } else if current == name {
            out.push(s.clone());
        }
    }
    out
}

/// A NUL-terminated option value as text.
pub(super) fn cstr_lossy(b: &[u8]) -> String {
    let end = memchr::memchr(0, b).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}
