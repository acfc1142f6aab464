//! One unit of ingest work: a part's text (or decoded rows) in, one part file out.

use std::path::PathBuf;
use std::sync::mpsc;

use kreq_schemas::dataset;

use crate::chunk::ParsedChunk;
use crate::error::{Error, Result};
use crate::output::file_name;
use crate::part::{write_part, FileRange, InMemory, PartTarget};
use crate::pipeline::{IngestOptions, Progress};
use crate::sink::write_table;
use crate::summary::{part_metadata, time_range};

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
    /// The lines that start in this byte range of a regular file, which the worker reads.
    Range(u64, u64),
    Decoded(ParsedChunk),
}

/// A part written.
pub(crate) struct Done {
    pub(crate) seq: u64,
    pub(crate) source: usize,
    /// The chunk's results; its events are dropped once written (see `rows`).
    pub(crate) parsed: ParsedChunk,
    pub(crate) rows: u64,
    pub(crate) part: Option<String>,
    pub(crate) bytes: u64,
    pub(crate) time_range: Option<(i64, i64)>,
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
    let path = dataset::part_path(&opts.output, dataset::EVENTS_DIR, job.seq);
    let metadata = part_metadata(opts, &names[job.source], clock);
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
            let w = write_part(&mut InMemory::new(&data, offset), 1, to, &advance);
            let _ = free.send(data);
            w?
        }
        Payload::Range(start, end) => {
            let file = std::fs::File::open(input).map_err(|e| Error::io(input, e))?;
            let size = file.metadata().map_err(|e| Error::io(input, e))?.len();
            let mut range =
                FileRange::new(&file, start, end, size).map_err(|e| Error::io(input, e))?;
            write_part(&mut range, 1, to, &advance)?
        }
        Payload::Decoded(parsed) => return write_decoded(job.seq, job.source, parsed, to),
    };
    let part = format!("{}/{}", dataset::EVENTS_DIR, file_name(&path));
    Ok(Done {
        seq: job.seq,
        source: job.source,
        parsed: written.parsed,
        rows: written.rows,
        part: (written.rows > 0).then_some(part),
        bytes: written.bytes,
        time_range: written.time_range,
    })
}

/// Write rows decoded from binary input as one part.
fn write_decoded(
    seq: u64,
    source: usize,
    mut parsed: ParsedChunk,
    to: PartTarget<'_>,
) -> Result<Done> {
    let time_range = time_range(&parsed.events);
    let rows = parsed.events.num_rows() as u64;
    let (part, bytes) = if rows > 0 {
        let bytes = write_table(
            to.path,
            "events",
            &parsed.events,
            to.zstd_level,
            to.metadata,
        )?;
        let part = format!("{}/{}", dataset::EVENTS_DIR, file_name(to.path));
        (Some(part), bytes)
    } else {
        (None, 0)
    };
    // The rows are on disk; keeping them until the run ends would only hold memory.
    parsed.events = arrow::record_batch::RecordBatch::new_empty(parsed.events.schema());
    Ok(Done {
        seq,
        source,
        parsed,
        rows,
        part,
        bytes,
        time_range,
    })
}
