//! trace-cmd `trace.dat` files, version 6 and 7 (zstd or zlib compressed sections).
//!
//! Only the parts kreq needs are read: page and event formats, saved command lines, the
//! clock, uname, per-CPU stats, and each CPU's ring-buffer pages of the first (or named)
//! buffer. Layout references: trace-cmd's `trace-cmd.dat.v6(5)` and `trace-cmd.dat.v7(5)`.

use hashbrown::HashMap;

use super::datfile::{
    cpu_pages, read_cmdlines, read_event_formats, read_ftrace_formats, read_header_info, section,
    Codec, Cursor,
};
use super::format::{FormatRegistry, PageHeader};
use super::merge::{CpuPages, DecodeContext, DecodedStream, Decoder};

const MAGIC: &[u8] = b"\x17\x08\x44tracing";

/// True when `head` starts like a trace.dat file.
pub fn is_tracedat(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// Why a trace.dat file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("trace.dat byte offset {offset}: {reason}")]
pub struct TraceDatError {
    /// Where in the file.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

/// One CPU's ring-buffer pages.
#[derive(Debug)]
pub struct CpuData {
    /// CPU number.
    pub cpu: u32,
    /// Concatenated pages, decompressed.
    pub pages: Vec<u8>,
}

/// The parts of a trace.dat that kreq uses.
#[derive(Debug, Default)]
pub struct TraceDat {
    /// File version (6 or 7).
    pub version: u32,
    /// Ring-buffer page size.
    pub page_size: usize,
    /// Page header layout.
    pub page_header: PageHeader,
    /// Event formats by id.
    pub formats: FormatRegistry,
    /// The format files' text, `system/name` -> text, for the dataset metadata.
    pub format_texts: Vec<(String, String)>,
    /// Saved command lines: tid -> comm.
    pub cmdlines: HashMap<i32, String>,
    /// Trace clock.
    pub clock: Option<String>,
    /// uname of the traced machine.
    pub uname: Option<String>,
    /// `per_cpu/cpuN/stats` text, in CPU order.
    pub cpu_stats: Vec<String>,
    /// Name of the buffer (instance) read.
    pub buffer: String,
    /// Per-CPU data of that buffer.
    pub cpus: Vec<CpuData>,
}

impl TraceDat {
    /// Decode every CPU's pages, merged by time, into chunks of at most `rows` rows.
    pub fn decode(&self, rows: usize) -> DecodedStream {
        super::merge::decode(&self.cpu_pages(), &self.context(&[]), rows)
    }

    /// Run `f` with a decoder over every CPU's pages, merged by time, so that chunks can be
    /// taken one at a time.
    pub fn decode_with<T>(&self, f: impl FnOnce(&mut Decoder<'_>) -> T) -> T {
        let (cpus, ctx) = (self.cpu_pages(), self.context(&[]));
        f(&mut Decoder::new(&cpus, &ctx))
    }

    /// Every CPU's pages, each CPU's as one run.
    pub fn cpu_pages(&self) -> Vec<CpuPages<'_>> {
        self.cpus
            .iter()
            .map(|c| CpuPages {
                cpu: c.cpu as u16,
                runs: vec![&c.pages],
            })
            .collect()
    }

    /// What the decoder needs besides the pages, leaving out the threads in `exclude`.
    pub fn context<'a>(&'a self, exclude: &'a [i32]) -> DecodeContext<'a> {
        // trace.dat keeps no tgids.
        static NO_TGIDS: std::sync::OnceLock<HashMap<i32, i32>> = std::sync::OnceLock::new();
        DecodeContext {
            page_header: self.page_header,
            page_size: self.page_size,
            formats: &self.formats,
            cmdlines: &self.cmdlines,
            tgids: NO_TGIDS.get_or_init(HashMap::new),
            exclude,
        }
    }
}

/// Parse a whole trace.dat held in memory. `buffer` names the instance to read (default:
/// the first buffer in the file).
pub fn parse(file: &[u8], buffer: Option<&str>) -> Result<TraceDat, TraceDatError> {
    let mut c = Cursor::new(file, 0);
    if !is_tracedat(file) {
        return Err(c.err("not a trace.dat file (bad magic)"));
    }
    c.pos = MAGIC.len();
    let version: u32 = c.cstr()?.parse().map_err(|_| c.err("bad version string"))?;
    let endian = c.take(1)?[0];
    if endian != 0 {
        return Err(c.err("big-endian trace.dat files are not supported"));
    }
    let _long_size = c.take(1)?[0];
    let page_size = c.u32()? as usize;
    let mut dat = TraceDat {
        version,
        page_size,
        ..Default::default()
    };
    match version {
        6 => super::tracedat_v6::read(&mut dat, file, c.pos, buffer)?,
        7 => read_v7(&mut dat, file, &mut c, buffer)?,
        v => {
            return Err(c.err(format!(
                "trace.dat version {v} is not supported (6 and 7 are)"
            )))
        }
    }
    Ok(dat)
}

fn read_v7(
    dat: &mut TraceDat,
    file: &[u8],
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
    let mut next = c.u64()?;
    let mut buffers = Vec::new();
    let mut section_offsets = Vec::new();
    while next != 0 {
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
        let off = b.u64()?;
        let size = b.u64()? as usize;
        let pages = cpu_pages(file, off, size, codec)?;
        dat.cpus.push(CpuData { cpu, pages });
    }
    Ok(())
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
