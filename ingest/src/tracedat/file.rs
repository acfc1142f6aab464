//! What kreq reads of a trace.dat: formats, command lines, clock, stats and where each CPU's
//! pages are, and the decoder over those pages, which reads them from the file as it goes.

use std::borrow::Cow;

use hashbrown::HashMap;

use super::bytes::{decompress, Codec, DatBytes};
use super::error::TraceDatError;
use crate::binary::format::{FormatRegistry, PageHeader};
use crate::binary::merge::{CpuPages, DecodeContext, DecodedStream, Decoder};
use crate::binary::printk::KernelStrings;
use crate::binary::source::{PageRuns, Run, SourceError};

/// Where one CPU's ring-buffer pages are in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuRegion {
    /// CPU number.
    pub cpu: u32,
    /// File offset of the CPU's data.
    pub offset: u64,
    /// Its size in the file (compressed, for a compressed v7 file).
    pub size: u64,
}

/// One CPU's pages read into memory.
#[derive(Debug)]
pub struct CpuData {
    /// CPU number.
    pub cpu: u32,
    /// Concatenated pages, decompressed.
    pub pages: Vec<u8>,
}

impl CpuData {
    /// The pages as one run, for a decoder.
    pub fn as_pages(&self) -> CpuPages<'_> {
        CpuPages {
            cpu: self.cpu as u16,
            runs: vec![&self.pages],
        }
    }
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
    /// Where each CPU's data of that buffer is.
    pub cpus: Vec<CpuRegion>,
    /// `trace_printk` formats and function symbols (the printk and kallsyms sections).
    pub strings: KernelStrings,
    /// `sizeof(long)` on the traced machine.
    pub long_size: usize,
    pub(super) codec: Codec,
    pub(super) bytes: DatBytes,
    /// Bytes of uncompressed pages read at a time (0: [`RAW_RUN_BYTES`]).
    pub(super) raw_run_bytes: usize,
}

impl Default for DatBytes {
    fn default() -> Self {
        Self::Memory(Vec::new())
    }
}

/// Bytes of uncompressed pages read at a time: 256 pages of 4 KiB. Larger runs read no faster
/// and only hold more memory.
pub const RAW_RUN_BYTES: usize = 1 << 20;

impl TraceDat {
    /// Read uncompressed pages `bytes` at a time (rounded down to whole pages, at least one)
    /// instead of [`RAW_RUN_BYTES`]: tests use small runs to cross many run boundaries.
    pub fn with_run_bytes(mut self, bytes: usize) -> Self {
        self.raw_run_bytes = bytes;
        self
    }

    /// Decode every CPU's pages, merged by time, into chunks of at most `rows` rows (all in
    /// memory: for tests and small files).
    pub fn decode(&self, rows: usize) -> DecodedStream {
        crate::binary::merge::decode(&self.cpu_sources(), &self.context(&[]), rows)
    }

    /// Run `f` with a decoder over every CPU's pages, merged by time, so that chunks can be
    /// taken one at a time. The pages are read (and decompressed) from the file as the merge
    /// reaches them, twice: once by the decoder's first pass, once to decode. Memory stays
    /// flat in the file's size: each CPU holds one run (a compressed chunk, or
    /// [`RAW_RUN_BYTES`]).
    pub fn decode_with<T>(&self, f: impl FnOnce(&mut Decoder<'_>) -> T) -> T {
        let (cpus, ctx) = (self.cpu_sources(), self.context(&[]));
        let mut decoder = Decoder::new(&cpus, &ctx);
        f(&mut decoder)
    }

    /// Each CPU's pages, read from the file on demand.
    pub fn cpu_sources(&self) -> Vec<DatCpu<'_>> {
        self.cpus
            .iter()
            .map(|&region| DatCpu { dat: self, region })
            .collect()
    }

    /// The file offset of page `page` of CPU `cpu`: where it is in an uncompressed file; for
    /// a compressed one, where that CPU's compressed data starts.
    pub fn page_offset(&self, cpu: u16, page: usize) -> u64 {
        let Some(r) = self.cpus.iter().find(|r| r.cpu == u32::from(cpu)) else {
            return 0;
        };
        match self.codec {
            Codec::None => r.offset + (page * self.page_size) as u64,
            _ => r.offset,
        }
    }

    /// Whether the pages are compressed (a v7 file with zstd or zlib).
    pub fn compressed(&self) -> bool {
        self.codec != Codec::None
    }

    /// Every CPU's pages read into memory (for tests that alter pages).
    pub fn read_pages(&self) -> Result<Vec<CpuData>, SourceError> {
        self.cpu_sources()
            .iter()
            .map(|c| {
                let mut pages = Vec::new();
                for run in c.runs() {
                    pages.extend_from_slice(&run?);
                }
                Ok(CpuData {
                    cpu: c.region.cpu,
                    pages,
                })
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
            strings: Some(&self.strings).filter(|s| !s.is_empty()),
            long_size: self.long_size,
            ts_shift_ns: 0,
        }
    }
}

/// One CPU's pages in a trace.dat file.
#[derive(Debug, Clone, Copy)]
pub struct DatCpu<'a> {
    dat: &'a TraceDat,
    region: CpuRegion,
}

impl PageRuns for DatCpu<'_> {
    fn cpu(&self) -> u16 {
        self.region.cpu as u16
    }

    fn runs(&self) -> Box<dyn Iterator<Item = Run<'_>> + '_> {
        let CpuRegion { offset, size, .. } = self.region;
        let page = self.dat.page_size.max(1);
        if self.dat.codec == Codec::None {
            let want = match self.dat.raw_run_bytes {
                0 => RAW_RUN_BYTES,
                n => n,
            };
            let step = (want / page).max(1) * page;
            let mut pos = 0;
            return Box::new(std::iter::from_fn(move || {
                if pos >= size {
                    return None;
                }
                let n = (size - pos).min(step as u64) as usize;
                let run = self.dat.bytes.read_at(offset + pos, n);
                // An error ends the run.
                pos = if run.is_ok() { pos + n as u64 } else { size };
                Some(run.map_err(SourceError::from))
            }));
        }
        Box::new(Chunks {
            dat: self.dat,
            pos: offset,
            left: if size == 0 { Some(0) } else { None },
            carry: Vec::new(),
            page,
        })
    }
}

/// A compressed CPU's data: `u32` chunk count, then per chunk `u32` compressed size, `u32`
/// size and the compressed bytes. Each chunk is decompressed when the decoder reaches it; a
/// page cut between two chunks is carried to the next.
struct Chunks<'a> {
    dat: &'a TraceDat,
    pos: u64,
    /// Chunks left; None before the count is read.
    left: Option<u32>,
    carry: Vec<u8>,
    page: usize,
}

impl Chunks<'_> {
    fn next_run(&mut self) -> Result<Option<Vec<u8>>, TraceDatError> {
        let bytes = &self.dat.bytes;
        loop {
            let left = match self.left {
                Some(n) => n,
                None => {
                    let count = bytes.read_at(self.pos, 4)?;
                    let n = u32::from_le_bytes([count[0], count[1], count[2], count[3]]);
                    self.pos += 4;
                    n
                }
            };
            if left == 0 {
                self.left = Some(0);
                return Ok((!self.carry.is_empty()).then(|| std::mem::take(&mut self.carry)));
            }
            self.left = Some(left - 1);
            let head = bytes.read_at(self.pos, 8)?;
            let word =
                |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
            let (csize, size) = (word(0) as usize, word(4) as usize);
            let at = self.pos + 8;
            let data = bytes.read_at(at, csize)?;
            self.pos = at + csize as u64;
            let out = decompress(self.dat.codec, &data, size, at)?;
            let mut run = if self.carry.is_empty() {
                out
            } else {
                let mut r = std::mem::take(&mut self.carry);
                r.extend_from_slice(&out);
                r
            };
            let whole = run.len() / self.page * self.page;
            self.carry = run.split_off(whole);
            if !run.is_empty() {
                return Ok(Some(run));
            }
        }
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Run<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_run() {
            Ok(run) => run.map(|r| Ok(Cow::Owned(r))),
            Err(e) => {
                // An error ends the run.
                self.left = Some(0);
                self.carry.clear();
                Some(Err(e.into()))
            }
        }
    }
}
