//! Where a part's text comes from: successive blocks of whole lines, from memory or read
//! from a byte range of a file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes of text per block (lines longer than this make a longer block).
pub const BLOCK_BYTES: usize = 1 << 20;

/// Successive blocks of whole lines of one part.
pub trait Blocks {
    /// The next block and the input offset of its first byte; None after the last. `buf` is
    /// scratch the block may be read into.
    fn next_block<'b>(&'b mut self, buf: &'b mut Vec<u8>) -> io::Result<Option<(&'b [u8], u64)>>;
    /// Start again from the first block.
    fn rewind(&mut self);
}

/// A part already in memory, `offset` bytes into its input.
#[derive(Debug)]
pub struct InMemory<'a> {
    data: &'a [u8],
    offset: u64,
    at: usize,
}

impl<'a> InMemory<'a> {
    /// The whole lines of `data`, which starts `offset` bytes into its input.
    pub fn new(data: &'a [u8], offset: u64) -> Self {
        Self {
            data,
            offset,
            at: 0,
        }
    }
}

impl Blocks for InMemory<'_> {
    fn next_block<'b>(&'b mut self, _: &'b mut Vec<u8>) -> io::Result<Option<(&'b [u8], u64)>> {
        let rest = &self.data[self.at..];
        if rest.is_empty() {
            return Ok(None);
        }
        let len = if rest.len() <= BLOCK_BYTES {
            rest.len()
        } else {
            memchr::memchr(b'\n', &rest[BLOCK_BYTES - 1..]).map_or(rest.len(), |i| BLOCK_BYTES + i)
        };
        let start = self.at;
        self.at += len;
        Ok(Some((
            &self.data[start..start + len],
            self.offset + start as u64,
        )))
    }

    fn rewind(&mut self) {
        self.at = 0;
    }
}

/// The lines of a regular file whose first byte lies in a byte range, read with positional
/// reads, so that every worker reads its own part and no reader thread copies text around.
#[derive(Debug)]
pub struct FileRange<'f> {
    file: &'f File,
    first: u64,
    next: u64,
    end: u64,
    size: u64,
    block: usize,
}

impl<'f> FileRange<'f> {
    /// The lines of `file` (`size` bytes) that start at a byte in `start..end`.
    pub fn new(file: &'f File, start: u64, end: u64, size: u64) -> io::Result<Self> {
        let first = if start == 0 {
            0
        } else {
            after_newline(file, start - 1, size)?
        };
        Ok(Self {
            file,
            first,
            next: first,
            end: end.min(size),
            size,
            block: BLOCK_BYTES,
        })
    }
}

/// Offset just past the first newline at or after `at` (`size` when there is none).
fn after_newline(file: &File, mut at: u64, size: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    while at < size {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(at + i as u64 + 1);
        }
        at += n as u64;
    }
    Ok(size)
}

/// Append up to `want` bytes read at `at`; false once the file has no more.
fn read_more(file: &File, buf: &mut Vec<u8>, at: u64, want: usize) -> io::Result<bool> {
    let old = buf.len();
    buf.resize(old + want, 0);
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[old + got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(old);
                return Err(e);
            }
        }
    }
    buf.truncate(old + got);
    Ok(got == want)
}

impl Blocks for FileRange<'_> {
    fn next_block<'b>(&'b mut self, buf: &'b mut Vec<u8>) -> io::Result<Option<(&'b [u8], u64)>> {
        if self.next >= self.end {
            return Ok(None);
        }
        buf.clear();
        let mut more = read_more(self.file, buf, self.next, self.block)?;
        let mut scanned = 0;
        let cut = loop {
            // Lines that start at or after `end` belong to the next part.
            let last_start = (self.end - 1 - self.next) as usize;
            let found = if last_start < buf.len() {
                memchr::memchr(b'\n', &buf[last_start..]).map(|i| last_start + i + 1)
            } else {
                memchr::memrchr(b'\n', &buf[scanned..]).map(|i| scanned + i + 1)
            };
            match found {
                Some(cut) => break cut,
                None if !more => break buf.len(),
                None => {
                    scanned = buf.len();
                    let at = self.next + buf.len() as u64;
                    more = read_more(self.file, buf, at, self.block)?;
                }
            }
        };
        buf.truncate(cut);
        let offset = self.next;
        self.next += cut as u64;
        if cut == 0 {
            self.next = self.size;
            return Ok(None);
        }
        Ok(Some((&buf[..], offset)))
    }

    fn rewind(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of `text` read as ranges of `part` bytes, in `block`-byte reads.
    fn ranges(text: &[u8], part: u64, block: usize) -> Vec<(Vec<u8>, u64)> {
        let dir = std::env::temp_dir().join(format!("kreq-part-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(format!("t-{part}-{block}"));
        std::fs::write(&path, text).expect("write");
        let file = File::open(&path).expect("open");
        let size = text.len() as u64;
        let mut out = Vec::new();
        let mut start = 0;
        while start < size {
            let end = size.min(start + part);
            let mut r = FileRange::new(&file, start, end, size).expect("range");
            r.block = block;
            let mut buf = Vec::new();
            while let Some((b, at)) = r.next_block(&mut buf).expect("read") {
                out.push((b.to_vec(), at));
            }
            start = end;
        }
        let _ = std::fs::remove_file(&path);
        // Empty once every test of this process is done with it; fails harmlessly before.
        let _ = std::fs::remove_dir(&dir);
        out
    }

    #[test]
    fn ranges_read_every_line_once_in_whole_lines() {
        let mut text: Vec<u8> = (0..300)
            .flat_map(|i| format!("line {i} {}\n", "x".repeat(i * 7 % 61)).into_bytes())
            .collect();
        // A line longer than any block, and a last line without a newline.
        text.extend_from_slice(&[b'y'; 700]);
        text.extend_from_slice(b"\nend");
        for part in [1, 13, 64, 200, 1000, 1 << 20] {
            for block in [1, 16, 100, 4096] {
                let blocks = ranges(&text, part, block);
                let mut joined = Vec::new();
                for (b, at) in &blocks {
                    assert_eq!(*at as usize, joined.len(), "part {part} block {block}");
                    assert!(b.ends_with(b"\n") || b.ends_with(b"end"));
                    joined.extend_from_slice(b);
                }
                assert_eq!(joined, text, "part {part} block {block}");
            }
        }
    }

    #[test]
    fn in_memory_blocks_are_whole_lines() {
        let text: Vec<u8> = (0..200_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let mut m = InMemory::new(&text, 5);
        let mut joined = Vec::new();
        let mut n = 0;
        while let Some((b, at)) = m.next_block(&mut Vec::new()).expect("block") {
            assert_eq!(at, 5 + joined.len() as u64);
            assert!(b.ends_with(b"\n"));
            joined.extend_from_slice(b);
            n += 1;
        }
        assert!(n > 1);
        assert_eq!(joined, text);
    }
}
