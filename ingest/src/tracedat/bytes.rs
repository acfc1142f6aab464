//! A trace.dat's bytes: a file on disk read in place (only the parts asked for are read), or
//! bytes already in memory (stdin, a compressed trace.dat, tests).

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;

use super::error::TraceDatError;

/// Where a trace.dat's bytes are.
#[derive(Debug)]
pub enum DatBytes {
    /// A file, read with positioned reads as the parser and decoder reach each part.
    File {
        /// The open file.
        file: File,
        /// Its length.
        len: u64,
    },
    /// The whole file in memory.
    Memory(Vec<u8>),
}

impl DatBytes {
    /// The file at `file`, read in place.
    pub fn file(file: File) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self::File { file, len })
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Self::File { len, .. } => *len,
            Self::Memory(b) => b.len() as u64,
        }
    }

    /// True when there is no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` bytes from `offset`; an error names the offset when they are not all there.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>, TraceDatError> {
        let truncated = || TraceDatError {
            offset,
            reason: format!("truncated: wanted {len} bytes"),
        };
        let end = offset.checked_add(len as u64).ok_or_else(truncated)?;
        if end > self.len() {
            return Err(truncated());
        }
        match self {
            Self::Memory(b) => Ok(Cow::Borrowed(&b[offset as usize..end as usize])),
            Self::File { file, .. } => {
                let mut buf = vec![0; len];
                file.read_exact_at(&mut buf, offset)
                    .map_err(|e| TraceDatError {
                        offset,
                        reason: format!("reading: {e}"),
                    })?;
                Ok(Cow::Owned(buf))
            }
        }
    }

    /// The first `len` bytes, or all of them when there are fewer.
    pub fn prefix(&self, len: u64) -> Result<Cow<'_, [u8]>, TraceDatError> {
        self.read_at(0, len.min(self.len()) as usize)
    }
}

/// How a v7 file's sections and page chunks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Codec {
    #[default]
    None,
    Zstd,
    Zlib,
}

/// `data` inflated to at most `size` bytes (the size the file declares); `at` names its offset
/// in errors.
pub(super) fn decompress(
    codec: Codec,
    data: &[u8],
    size: usize,
    at: u64,
) -> Result<Vec<u8>, TraceDatError> {
    // The size is the file's word: a hint, capped so that a corrupt one cannot reserve gigabytes.
    let mut out = Vec::with_capacity(size.min(64 << 20));
    let res = match codec {
        Codec::None => {
            out.extend_from_slice(data);
            Ok(0)
        }
        // Read one byte more than declared, to tell a stream that inflates beyond its size
        // (a corrupt or hostile file) without inflating all of it.
        Codec::Zstd => zstd::stream::read::Decoder::new(data)
            .and_then(|d| d.take(size as u64 + 1).read_to_end(&mut out)),
        Codec::Zlib => flate2::read::ZlibDecoder::new(data)
            .take(size as u64 + 1)
            .read_to_end(&mut out),
    };
    res.map_err(|e| TraceDatError {
        offset: at,
        reason: format!("decompressing: {e}"),
    })?;
    if codec != Codec::None && out.len() > size {
        return Err(TraceDatError {
            offset: at,
            reason: format!("compressed data inflates beyond its declared {size} bytes"),
        });
    }
    Ok(out)
}
