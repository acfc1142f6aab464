//! Where a decoder's pages come from: each CPU's pages as runs of whole pages, read on demand.
//!
//! A recorder hands over the buffers it read into; a trace.dat reads (and decompresses) its
//! sections from the file as the decoder reaches them. The decoder reads every CPU twice (a
//! first pass checks the pages, a second decodes them), so [`PageRuns::runs`] starts over at
//! each call.

use std::borrow::Cow;

/// A run of whole pages, or why it could not be read.
pub type Run<'a> = Result<Cow<'a, [u8]>, SourceError>;

/// A run of pages that could not be read (an I/O or decompression error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte offset {offset}: {reason}")]
pub struct SourceError {
    /// Where in the input.
    pub offset: u64,
    /// What went wrong.
    pub reason: String,
}

/// One CPU's ring-buffer pages in time order, as runs of whole `page_size` pages.
pub trait PageRuns {
    /// The CPU number.
    fn cpu(&self) -> u16;
    /// The runs from the first page on.
    fn runs(&self) -> Box<dyn Iterator<Item = Run<'_>> + '_>;
}

/// One CPU's pages held in memory: runs of whole `page_size` pages, so that a recorder can
/// hand over the buffers it read into without copying them together.
#[derive(Debug, Clone)]
pub struct CpuPages<'a> {
    /// CPU number.
    pub cpu: u16,
    /// The pages, `page_size` bytes each, concatenated within each run.
    pub runs: Vec<&'a [u8]>,
}

impl PageRuns for CpuPages<'_> {
    fn cpu(&self) -> u16 {
        self.cpu
    }

    fn runs(&self) -> Box<dyn Iterator<Item = Run<'_>> + '_> {
        Box::new(self.runs.iter().map(|r| Ok(Cow::Borrowed(*r))))
    }
}
