//! trace.dat version 6: one uncompressed header, options, then per-CPU page data.

use super::cursor::{
    cstr_lossy, read_cmdlines, read_event_formats, read_ftrace_formats, read_header_info,
    selected_clock, stats_of_buffer, Cursor as DatCursor,
};
use super::file::{CpuData, TraceDat, TraceDatError};

/// Read a v6 file; `pos` is just after the page size.
pub(super) fn read(
    dat: &mut TraceDat,
    file: &[u8],
    pos: usize,
    want: Option<&str>,
) -> Result<(), TraceDatError> {
    let mut c = DatCursor::new(file, 0);
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
    // The top-level buffer's CPU table follows; instance buffers point at their own tables.
    let table = match buffers.iter().find(|(n, _)| want.is_none_or(|w| w == n)) {
        Some((name, off)) if want.is_some() || ncpus_at_top_is_empty(file, c.pos, ncpus) => {
            dat.buffer = name.clone();
            *off as usize
        }
        _ => c.pos,
    };
    // An instance buffer's offset points at its own `flyrecord\0` and CPU table.
    let mut t = DatCursor::new(file, 0);
    t.pos = table;
    if file.get(table..table + 10) == Some(b"flyrecord\0") {
        t.pos += 10;
    }
    dat.cpu_stats = stats_of_buffer(&dat.cpu_stats, &dat.buffer);
    for cpu in 0..ncpus {
        let off = t.u64()? as usize;
        let size = t.u64()? as usize;
        let mut d = DatCursor::new(file, 0);
        d.pos = off;
        let pages = d.take(size)?.to_vec();
        dat.cpus.push(CpuData {
            cpu: cpu as u32,
            pages,
        });
    }
    Ok(())
}

/// True when the top-level buffer holds no data (every CPU size is zero), as after
/// `trace-cmd extract -B INSTANCE`.
fn ncpus_at_top_is_empty(file: &[u8], pos: usize, ncpus: usize) -> bool {
    let mut t = DatCursor::new(file, 0);
    t.pos = pos;
    (0..ncpus).all(|_| {
        let _ = t.u64();
        t.u64().map_or(true, |s| s == 0)
    })
}
