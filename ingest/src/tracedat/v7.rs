//! trace.dat version 7: options and page data in sections, each optionally compressed.

use super::bytes::{Codec, DatBytes};
use super::cursor::{
    cstr_lossy, read_cmdlines, read_event_formats, read_ftrace_formats, read_header_info, section,
    selected_clock, stats_of_buffer, Cursor,
};
use super::error::TraceDatError;
use super::file::{CpuRegion, TraceDat};

/// Read a v7 file's header and sections; `c` is over the file's first bytes, just after the
/// page size.
pub(super) fn read(
    dat: &mut TraceDat,
    file: &DatBytes,
    c: &mut Cursor<'_>,
    want: Option<&str>,
) -> Result<(), TraceDatError> {
    let codec = match c.cstr()? {
        "none" => Codec::None,
        "zstd" => Codec::Zstd,
        "zlib" => Codec::Zlib,
        other => return Err(c.err(format!("unsupported compression {other}"))),
    };
    let _codec_version = c.cstr()?;
    dat.codec = codec;
    let mut next = c.u64()?;
    let mut buffers = Vec::new();
    let mut section_offsets = Vec::new();
    // Options sections are chained by offset; a chain that comes back to a section it has
    // read would loop for ever (the tracedat fuzz target made one).
    let mut seen = std::collections::HashSet::new();
    while next != 0 {
        if !seen.insert(next) {
            return Err(TraceDatError {
                offset: next,
                reason: "the options sections form a loop".into(),
            });
        }
        let opts = section(file, next, codec)?;
        let mut o = Cursor::new(&opts, next);
        next = 0;
        while o.pos < opts.len() {
            let id = o.u16()?;
            let size = o.u32()? as usize;
            let data = o.take(size)?;
            let mut d = Cursor::new(data, o.offset());
            match id {
                0 => {
                    next = d.u64()?;
                    break;
                }
                2 => dat.cpu_stats.push(cstr_lossy(data)),
                3 => buffers.push((data.to_vec(), d.offset())),
                4 => dat.clock = selected_clock(&cstr_lossy(data)),
                5 => dat.uname = Some(cstr_lossy(data)),
                16..=21 => section_offsets.push((id, d.u64()?)),
                _ => {}
            }
        }
    }
    for (id, off) in section_offsets {
        let body = section(file, off, codec)?;
        let mut s = Cursor::new(&body, off);
        match id {
            16 => read_header_info(dat, &mut s)?,
            17 => read_ftrace_formats(dat, &mut s)?,
            18 => read_event_formats(dat, &mut s)?,
            19 => {
                let size = s.u32()? as usize;
                dat.strings
                    .add_kallsyms(&String::from_utf8_lossy(s.take(size)?));
            }
            20 => {
                let size = s.u32()? as usize;
                dat.strings
                    .add_printk(&String::from_utf8_lossy(s.take(size)?));
            }
            21 => {
                let size = s.u64()? as usize;
                read_cmdlines(dat, s.sized_text(size)?);
            }
            _ => {}
        }
    }
    // BUFFER option: data offset, name, clock, page size, CPU count, then per CPU
    // (cpu, offset, size). Without a name, the first buffer that holds CPUs is read.
    let mut chosen = None;
    for (bytes, at) in &buffers {
        let mut b = Cursor::new(bytes, *at);
        let _data_offset = b.u64()?;
        let name = b.cstr()?.to_owned();
        let clock = b.cstr()?.to_owned();
        let page_size = b.u32()? as usize;
        let ncpus = b.u32()?;
        let wanted = want.map_or(ncpus > 0, |w| w == name);
        if wanted && chosen.is_none() {
            chosen = Some((name, clock, page_size, ncpus, b));
        }
    }
    let (name, clock, page_size, ncpus, mut b) =
        chosen.ok_or_else(|| c.err("no buffer with trace data in the file"))?;
    if page_size > 0 {
        dat.page_size = page_size;
    }
    dat.cpu_stats = stats_of_buffer(&dat.cpu_stats, &name);
    dat.buffer = name;
    if !clock.is_empty() {
        dat.clock = Some(clock);
    }
    for _ in 0..ncpus {
        let cpu = b.u32()?;
        let offset = b.u64()?;
        let size = b.u64()?;
        if offset.checked_add(size).is_none_or(|end| end > file.len()) {
            return Err(TraceDatError {
                offset,
                reason: format!("cpu {cpu} data runs past the end of the file"),
            });
        }
        dat.cpus.push(CpuRegion { cpu, offset, size });
    }
    Ok(())
}
