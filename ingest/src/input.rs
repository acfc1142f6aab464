//! Opening inputs (file, stdin, zstd, gzip) and cutting them into chunks of whole lines.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Open `path` (`-` is stdin), decompressing zstd or gzip when the content starts with their
/// magic bytes, whatever the file name says.
pub fn open(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path)?)
    };
    let mut buf = BufReader::with_capacity(1 << 20, raw);
    let head = buf.fill_buf()?;
    Ok(if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::Decoder::with_buffer(buf)?)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(buf),
        ))
    } else {
        Box::new(buf)
    })
}

/// Cuts a stream into chunks of about `target` bytes that end at a newline.
#[derive(Debug)]
pub struct Chunker<R> {
    reader: R,
    target: usize,
    carry: Vec<u8>,
    eof: bool,
}

impl<R: Read> Chunker<R> {
    /// Chunks of at least `target` bytes (except the last), always whole lines.
    pub fn new(reader: R, target: usize) -> Self {
        Self {
            reader,
            target: target.max(1),
            carry: Vec::new(),
            eof: false,
        }
    }

    /// The next chunk, or None at the end. A line longer than `target` makes a larger chunk.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = std::mem::take(&mut self.carry);
        let mut scanned = 0;
        loop {
            if buf.len() >= self.target {
                if let Some(nl) = memchr::memrchr(b'\n', &buf[scanned..]) {
                    let cut = scanned + nl + 1;
                    self.carry = buf[cut..].to_vec();
                    buf.truncate(cut);
                    return Ok(Some(buf));
                }
                scanned = buf.len();
            }
            if self.eof {
                return Ok((!buf.is_empty()).then_some(buf));
            }
            let want = if buf.len() < self.target {
                self.target - buf.len()
            } else {
                1 << 16
            };
            let n = (&mut self.reader).take(want as u64).read_to_end(&mut buf)?;
            if n < want {
                self.eof = true;
            }
        }
    }
}

/// Lines in a chunk: newlines, plus one for a last line without a newline.
pub fn count_lines(chunk: &[u8]) -> u64 {
    let n = memchr::memchr_iter(b'\n', chunk).count() as u64;
    n + u64::from(!chunk.is_empty() && !chunk.ends_with(b"\n"))
}
