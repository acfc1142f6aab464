//! Opening inputs (file, stdin, zstd, gzip) and cutting them into chunks of whole lines.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use kreq_schemas::dataset::SourceSummary;

use crate::error::{Error, Result};
use crate::rows::ParsedChunk;
use crate::tracedat;
use crate::wrapped::{self, Wrapper};

/// An opened input: its (decompressed) bytes, and its size when that is known up front.
pub struct Opened {
    /// The text (or trace.dat) bytes.
    pub reader: Box<dyn Read + Send>,
    /// Size in bytes of an uncompressed regular file; None for stdin and compressed input.
    pub size: Option<u64>,
    /// The first bytes (up to 64 KiB) of an uncompressed input, enough to tell its format;
    /// empty for compressed or wrapped input.
    pub head: Vec<u8>,
    /// The file the text was wrapped in (systrace HTML, `atrace -z`), now unwrapped.
    pub wrapper: Option<Wrapper>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Open `path` (`-` is stdin), decompressing zstd or gzip when the content starts with their
/// magic bytes, whatever the file name says, then taking the text out of a systrace HTML page
/// or an `atrace -z` stream ([`crate::wrapped`]).
pub fn open(path: &Path) -> io::Result<Opened> {
    let Opened {
        reader, size, head, ..
    } = open_compressed(path)?;
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let wrapper = if head.is_empty() {
        // Compressed: look at the decompressed bytes. An input that fails at once is left
        // for the chunker to report (with where it stopped).
        reader.fill_buf().ok().and_then(wrapped::detect)
    } else {
        wrapped::detect(&head)
    };
    Ok(match wrapper {
        None => Opened {
            reader: Box::new(reader),
            size,
            head,
            wrapper: None,
        },
        Some(w) => Opened {
            reader: wrapped::unwrap(w, Box::new(reader))?,
            size: None,
            head: Vec::new(),
            wrapper: Some(w),
        },
    })
}

/// [`open`] before unwrapping: the decompressed bytes.
fn open_compressed(path: &Path) -> io::Result<Opened> {
    let (raw, len): (Box<dyn Read + Send>, Option<u64>) = if path.as_os_str() == "-" {
        (Box::new(io::stdin()), None)
    } else {
        let f = File::open(path)?;
        let meta = f.metadata()?;
        (Box::new(f), meta.is_file().then_some(meta.len()))
    };
    let mut buf = BufReader::with_capacity(1 << 20, raw);
    let head = buf.fill_buf()?;
    Ok(if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Opened {
            reader: Box::new(zstd::Decoder::with_buffer(buf)?),
            size: None,
            head: Vec::new(),
            wrapper: None,
        }
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Opened {
            reader: Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::bufread::MultiGzDecoder::new(buf),
            )),
            size: None,
            head: Vec::new(),
            wrapper: None,
        }
    } else {
        Opened {
            head: head[..head.len().min(1 << 16)].to_vec(),
            reader: Box::new(buf),
            size: len,
            wrapper: None,
        }
    })
}

/// Smallest chunk [`chunk_size`] cuts to spread an input over threads.
pub const MIN_SPLIT_CHUNK: usize = 8 << 20;

/// Chunk size for an input of `size` bytes (None: unknown) with at most `max` bytes per chunk
/// and `threads` workers: an input smaller than `threads` chunks is cut into one chunk per
/// worker (at least [`MIN_SPLIT_CHUNK`] each) so that every worker has a share.
pub fn chunk_size(size: Option<u64>, max: usize, threads: usize) -> usize {
    match size.and_then(|s| usize::try_from(s).ok()) {
        Some(s) => s
            .div_ceil(threads.max(1))
            .max(MIN_SPLIT_CHUNK)
            .min(max)
            .max(1),
        None => max,
    }
}

/// Cuts a stream into chunks of about `target` bytes that end at a newline.
#[derive(Debug)]
pub struct Chunker<R> {
    reader: R,
    target: usize,
    carry: Vec<u8>,
    eof: bool,
    /// Buffers of chunks already parsed, reused so each chunk does not fault in fresh memory.
    spare: Vec<Vec<u8>>,
    /// Bytes handed out so far.
    offset: u64,
    /// The input ended early: where (bytes of whole lines before the cut) and why.
    truncated: Option<(u64, io::Error)>,
}

/// Spare buffers kept at most (a chunk per worker in flight is plenty).
const MAX_SPARE: usize = 4;

impl<R: Read> Chunker<R> {
    /// Chunks of about `target` bytes, always whole lines.
    pub fn new(reader: R, target: usize) -> Self {
        Self {
            reader,
            target: target.max(1),
            carry: Vec::new(),
            eof: false,
            spare: Vec::new(),
            offset: 0,
            truncated: None,
        }
    }

    /// Where and why the input ended early, if it did: a compressed input cut off mid-frame (a
    /// recording killed while compressing) or a read error. The chunks before hold every
    /// whole line before the cut.
    pub fn truncated(&mut self) -> Option<(u64, io::Error)> {
        self.truncated.take()
    }

    /// Hand back the buffer of a chunk that is no longer needed, for a later chunk.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < MAX_SPARE && buf.capacity() >= self.target {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// The next chunk, or None at the end: the whole lines in the next `target` bytes. A line
    /// longer than `target` makes a larger chunk.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        // Room for a whole chunk up front: growing by doubling would copy it several times.
        let mut buf = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.target + (1 << 16)));
        buf.extend_from_slice(&self.carry);
        self.carry.clear();
        let mut scanned = 0;
        loop {
            if buf.len() >= self.target {
                if let Some(nl) = memchr::memrchr(b'\n', &buf[scanned..]) {
                    let cut = scanned + nl + 1;
                    self.carry.extend_from_slice(&buf[cut..]);
                    buf.truncate(cut);
                    self.offset += buf.len() as u64;
                    return Ok(Some(buf));
                }
                scanned = buf.len();
            }
            if self.eof {
                self.offset += buf.len() as u64;
                return Ok((!buf.is_empty()).then_some(buf));
            }
            let want = if buf.len() < self.target {
                self.target - buf.len()
            } else {
                1 << 16
            };
            match (&mut self.reader).take(want as u64).read_to_end(&mut buf) {
                Ok(n) if n < want => self.eof = true,
                Ok(_) => {}
                Err(e) => {
                    // What was read before the error is kept up to its last whole line; the
                    // line cut in two is not an event.
                    let whole = memchr::memrchr(b'\n', &buf).map_or(0, |nl| nl + 1);
                    buf.truncate(whole);
                    self.truncated = Some((self.offset + whole as u64, e));
                    self.eof = true;
                }
            }
        }
    }
}

/// Lines in a chunk: newlines, plus one for a last line without a newline.
pub fn count_lines(chunk: &[u8]) -> u64 {
    let n = memchr::memchr_iter(b'\n', chunk).count() as u64;
    n + u64::from(!chunk.is_empty() && !chunk.ends_with(b"\n"))
}

/// Read the rest of a trace.dat input that is not a file on disk (stdin, compressed) into
/// memory.
pub(crate) fn read_rest<R: std::io::Read>(
    path: &std::path::Path,
    mut data: Vec<u8>,
    chunker: &mut Chunker<R>,
) -> Result<tracedat::DatBytes> {
    while let Some(more) = chunker.next_chunk().map_err(|e| Error::io(path, e))? {
        data.extend_from_slice(&more);
    }
    Ok(tracedat::DatBytes::Memory(data))
}

/// Decode a trace.dat into chunks of rows, handed to `send`; false when `send` refused one
/// (the workers are gone). A file on disk is read in place: pages are read and decompressed
/// as the merge reaches them.
pub(crate) fn read_tracedat(
    path: &std::path::Path,
    bytes: tracedat::DatBytes,
    summary: &mut SourceSummary,
    send: &mut dyn FnMut(ParsedChunk) -> bool,
) -> Result<bool> {
    summary.bytes = bytes.len();
    let version = bytes.read_at(10, 1).ok().map_or('?', |b| b[0] as char);
    summary.format = format!("trace.dat v{version}");
    let dat_err = |e| Error::TraceDat {
        path: path.to_owned(),
        source: e,
    };
    let dat = tracedat::read(bytes, None).map_err(dat_err)?;
    summary.clock = dat.clock.clone();
    summary.uname = dat.uname.clone();
    let mut stats = Some(crate::binary::stats::lost_from_stats(&dat.cpu_stats));
    let unreadable = |cpu: u16, e: crate::binary::source::SourceError| {
        dat_err(tracedat::TraceDatError {
            offset: e.offset,
            reason: format!("cpu {cpu}: {}", e.reason),
        })
    };
    dat.decode_with(|decoder| {
        if let Some((cpu, page, e)) = decoder.bad_pages.first() {
            let compressed = if dat.compressed() {
                " (of the compressed data there)"
            } else {
                ""
            };
            return Err(dat_err(tracedat::TraceDatError {
                offset: dat.page_offset(*cpu, *page),
                reason: format!("cpu {cpu} page {page}{compressed}: {e}"),
            }));
        }
        if let Some((cpu, e)) = decoder.source_errors().into_iter().next() {
            return Err(unreadable(cpu, e));
        }
        // Chunks go to the workers as they are decoded; the job queue's bound keeps only a
        // few in memory.
        while let Some(mut chunk) = decoder.next_chunk(TRACEDAT_PART_ROWS) {
            chunk.lost.extend(stats.take().into_iter().flatten());
            if !send(chunk) {
                return Ok(false);
            }
        }
        // A run that could not be read the second time (the file changed under us).
        match decoder.source_errors().into_iter().next() {
            Some((cpu, e)) => Err(unreadable(cpu, e)),
            None => Ok(true),
        }
    })
}

/// Events per part file of a trace.dat input: a quarter of a row group, so the few parts in
/// flight between the decoder and the writers stay small.
const TRACEDAT_PART_ROWS: usize = kreq_schemas::writer::MAX_ROW_GROUP_ROWS / 4;

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks of `text` cut at `target`, recycling each buffer (or not) once seen.
    fn chunks(text: &[u8], target: usize, recycle: bool) -> Vec<Vec<u8>> {
        let mut c = Chunker::new(text, target);
        let mut out = Vec::new();
        while let Some(chunk) = c.next_chunk().expect("read") {
            out.push(chunk.clone());
            if recycle {
                c.recycle(chunk);
            }
        }
        out
    }

    #[test]
    fn small_inputs_are_cut_into_a_chunk_per_thread() {
        const MIB: u64 = 1 << 20;
        let max = 64 << 20;
        // Halves, rounded up: no byte is left for a third chunk.
        assert_eq!(
            chunk_size(Some(57 * MIB + 1), max, 2),
            (57 * MIB / 2 + 1) as usize
        );
        assert_eq!(chunk_size(Some(57 * MIB), max, 1), max.min(57 << 20));
        assert_eq!(chunk_size(Some(MIB), max, 2), MIN_SPLIT_CHUNK);
        assert_eq!(chunk_size(Some(1000 * MIB), max, 2), max);
        assert_eq!(chunk_size(None, max, 2), max);
        assert_eq!(chunk_size(Some(57 * MIB), 16 << 20, 2), 16 << 20);
    }

    #[test]
    fn chunks_are_whole_lines_and_recycling_changes_nothing() {
        let text: Vec<u8> = (0..500)
            .flat_map(|i| format!("line {i} {}\n", "x".repeat(i % 37)).into_bytes())
            .chain(b"last line without newline".iter().copied())
            .collect();
        let plain = chunks(&text, 100, false);
        assert!(plain.len() > 50);
        assert!(plain[..plain.len() - 1].iter().all(|c| c.ends_with(b"\n")));
        // Cut at the last newline within the first `target` bytes: lines here are < 50 bytes.
        assert!(plain[..plain.len() - 1]
            .iter()
            .all(|c| (50..=100).contains(&c.len())));
        assert_eq!(plain.concat(), text);
        assert_eq!(chunks(&text, 100, true), plain);
    }
}
