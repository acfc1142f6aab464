//! What kreq reads of a trace.dat: formats, command lines, clock, stats and each CPU's pages,
//! and the decoder over those pages.

use hashbrown::HashMap;

use crate::binary::format::{FormatRegistry, PageHeader};
use crate::binary::merge::{CpuPages, DecodeContext, DecodedStream, Decoder};
use crate::binary::printk::KernelStrings;

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
    /// `trace_printk` formats and function symbols (the printk and kallsyms sections).
    pub strings: KernelStrings,
    /// `sizeof(long)` on the traced machine.
    pub long_size: usize,
}

impl TraceDat {
    /// Decode every CPU's pages, merged by time, into chunks of at most `rows` rows.
    pub fn decode(&self, rows: usize) -> DecodedStream {
        crate::binary::merge::decode(&self.cpu_pages(), &self.context(&[]), rows)
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
            strings: Some(&self.strings).filter(|s| !s.is_empty()),
            long_size: self.long_size,
        }
    }
}
