//! trace.dat version 6: one uncompressed header, options, then per-CPU page data.

use super::bytes::DatBytes;
use super::cursor::{
    cstr_lossy, read_cmdlines, read_event_formats, read_ftrace_formats, read_header_info,
    selected_clock, stats_of_buffer, Cursor as DatCursor,
};
use super::error::TraceDatError;
use super::file::{CpuRegion, TraceDat};

/// Read a v6 file's header from `head` (the file's first bytes; an error that says
/// `truncated` asks for more); `pos` is just after the page size.
pub(super) fn read(
    dat: &mut TraceDat,
    head: &[u8],
    bytes: &DatBytes,
    pos: usize,
    want: Option<&str>,
) -> Result<(), TraceDatError> {
    let mut c = DatCursor::new(head, 0);
    c.pos = pos;
    read_header_info(dat, &mut c)?;
    read_ftrace_formats(dat, &mut c)?;
    read_event_formats(dat, &mut c)?;
    let kallsyms = c.u32()? as usize;
    dat.strings
        .add_kallsyms(&String::from_utf8_lossy(c.take(kallsyms)?));
    let printk = c.u32()? as usize;
    dat.strings
        .add_printk(&String::from_utf8_lossy(c.take(printk)?));
    let cmdlines = c.u64()? as usize;
    let text = c.sized_text(cmdlines)?;
    read_cmdlines(dat, text);
    let ncpus = c.u32()? as usize;
    let mut kind = c.take(10)?;
    let mut buffers = Vec::new();
    if kind == b"options  \0" {
        loop {
            let id = c.u16()?;
            if id == 0 {
                break;
            }
            let size = c.u32()? as usize;
            let data = c.take(size)?;
            let mut d = DatCursor::new(data, (c.pos - size) as u64);
            match id {
                2 => dat.cpu_stats.push(cstr_lossy(data)),
                3 => {
                    let off = d.u64()?;
                    buffers.push((d.cstr()?.to_owned(), off));
                }
                4 => dat.clock = selected_clock(&cstr_lossy(data)),
                5 => dat.uname = Some(cstr_lossy(data)),
                _ => {}
            }
        }
        kind = c.take(10)?;
    }
    if kind != b"flyrecord\0" {
        return Err(c.err("only flyrecord data is supported (not latency text)"));
    }
    let top = c.offset();
    // The top-level buffer's CPU table follows; instance buffers point at their own tables.
    let mut table = top;
    if let Some((name, off)) = buffers.iter().find(|(n, _)| want.is_none_or(|w| w == n)) {
        if want.is_some() || cpu_table(bytes, top, ncpus)?.iter().all(|r| r.size == 0) {
            dat.buffer = name.clone();
            table = *off;
        }
    }
    // An instance buffer's offset points at its own `flyrecord\0` and CPU table.
    if table != top && bytes.read_at(table, 10).ok().as_deref() == Some(b"flyrecord\0") {
        table += 10;
    }
    dat.cpu_stats = stats_of_buffer(&dat.cpu_stats, &dat.buffer);
    for r in cpu_table(bytes, table, ncpus)? {
        if r.offset
            .checked_add(r.size)
            .is_none_or(|end| end > bytes.len())
        {
            return Err(TraceDatError {
                offset: r.offset,
                reason: format!("cpu {} data runs past the end of the file", r.cpu),
            });
        }
        dat.cpus.push(r);
    }
    Ok(())
}

/// The CPU table at `at`: per CPU, `u64` offset and `u64` size.
fn cpu_table(bytes: &DatBytes, at: u64, ncpus: usize) -> Result<Vec<CpuRegion>, TraceDatError> {
    let len = ncpus.checked_mul(16).ok_or_else(|| TraceDatError {
        offset: at,
        reason: format!("{ncpus} CPUs"),
    })?;
    let table = bytes.read_at(at, len)?;
    let mut t = DatCursor::new(&table, at);
    (0..ncpus)
        .map(|cpu| {
            Ok(CpuRegion {
                cpu: cpu as u32,
                offset: t.u64()?,
                size: t.u64()?,
            })
        })
        .collect()
}
