//! One unit of ingest work: a part's text (or decoded rows) in, one part file out.

use std::path::PathBuf;
use std::sync::mpsc;

use crate::dataset::{file_metadata, part_name, part_path, PartFile};
use crate::error::{Error, Result};
use crate::options::{IngestOptions, Progress};
use crate::rows::ParsedChunk;
use crate::text::blocks::{FileRange, InMemory};
use crate::text::part::{write_parsed, write_part, PartTarget};

/// A part to write, numbered in input order.
pub(crate) struct Job {
    pub(crate) seq: u64,
    pub(crate) source: usize,
    pub(crate) payload: Payload,
}

/// Text still to parse, or rows already decoded from binary input.
pub(crate) enum Payload {
    /// Whole lines read by the reader thread (stdin, compressed input), at this input offset.
    Text(u64, Vec<u8>),
    /// The lines that start in the byte range `.0...1` of a regular file of `.2` bytes, which
    /// the worker reads.
    Range(u64, u64, u64),
    Decoded(ParsedChunk),
}

/// A part written.
pub(crate) struct Done {
    pub(crate) seq: u64,
    pub(crate) source: usize,
    /// The chunk's results; its events are dropped once written (see `rows`).
    pub(crate) parsed: ParsedChunk,
    pub(crate) file: PartFile,
    /// The part's name in the manifest, when it held an event.
    pub(crate) part: Option<String>,
    pub(crate) sorted_whole: bool,
}

/// Parse (or take) a job's rows and write them as its part file.
pub(crate) fn work(
    job: Job,
    opts: &IngestOptions,
    inputs: &[PathBuf],
    names: &[String],
    clock: &str,
    free: &mpsc::Sender<Vec<u8>>,
    progress: &dyn Progress,
) -> Result<Done> {
    let path = part_path(&opts.output, job.seq);
    let metadata = file_metadata(
        &names[job.source],
        clock,
        opts.kernel.as_deref(),
        opts.host.as_deref(),
    );
    let input = inputs[job.source].as_path();
    let to = PartTarget {
        input,
        path: &path,
        zstd_level: opts.zstd_level,
        metadata: &metadata,
    };
    let advance = |bytes| progress.advance(bytes);
    let written = match job.payload {
        Payload::Text(offset, data) => {
            let w = write_part(&mut InMemory::new(&data, offset), to, &advance);
            let _ = free.send(data);
            w?
        }
        Payload::Range(start, end, size) => {
            let file = std::fs::File::open(input).map_err(|e| Error::io(input, e))?;
            let mut range =
                FileRange::new(&file, start, end, size).map_err(|e| Error::io(input, e))?;
            write_part(&mut range, to, &advance)?
        }
        Payload::Decoded(parsed) => write_parsed(parsed, to)?,
    };
    Ok(Done {
        seq: job.seq,
        source: job.source,
        parsed: written.parsed,
        file: written.file,
        part: (written.file.rows > 0).then(|| part_name(&path)),
        sorted_whole: written.sorted_whole,
    })
}
