//! Ring-buffer pages (`trace_pipe_raw` sub-buffers and trace.dat pages): records and times.
//!
//! Page: `u64 timestamp`, `local_t commit` (bits 0-26 data length, bit 31 events were missed
//! before this page, bit 30 the missed count is stored after the data), then events. Event
//! header `u32`: `type_len:5, time_delta:27`; type_len 1..=28 is a record of `4 * type_len`
//! bytes; 0 a record whose length is in the next u32; 29 padding; 30 a time extend; 31 an
//! absolute time stamp.

use super::format::PageHeader;

const COMMIT_MASK: u64 = (1 << 27) - 1;
const MISSING_EVENTS: u64 = 1 << 31;
const MISSING_STORED: u64 = 1 << 30;
const TS_BITS: u32 = 27;
/// A time past 2^63 ns (292 years; `ts_ns` is an i64): only a corrupt page says so (fuzzing
/// found one whose base time plus a delta overflowed).
const OVERFLOW: &str = "time stamp beyond 2^63 ns";

/// `ts` moved on by `by`, None past 2^63 ns.
fn advance(ts: u64, by: u64) -> Option<u64> {
    ts.checked_add(by).filter(|&t| t <= i64::MAX as u64)
}

/// What a page says about events lost before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// Nothing lost.
    None,
    /// Events were lost; the kernel did not say how many.
    Unknown,
    /// This many events were lost.
    Count(u64),
}

/// A decoded page: its records with absolute timestamps.
#[derive(Debug)]
pub struct Page<'a> {
    /// Events lost before this page.
    pub missed: Missed,
    /// Page timestamp (time base of its first event).
    pub base_ts: u64,
    /// Bytes of event data.
    pub data_len: usize,
    data: &'a [u8],
}

/// A malformed page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad ring-buffer page: {0}")]
pub struct PageError(pub &'static str);

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize, size: usize) -> Option<u64> {
    match size {
        4 => u32_at(b, at).map(u64::from),
        8 => Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)),
        _ => None,
    }
}

impl<'a> Page<'a> {
    /// Parse a page's header (little-endian data).
    pub fn parse(page: &'a [u8], h: &PageHeader) -> Result<Self, PageError> {
        let base_ts = u64_at(page, h.timestamp_offset, 8).ok_or(PageError("short header"))?;
        let commit =
            u64_at(page, h.commit_offset, h.commit_size).ok_or(PageError("short header"))?;
        let data_len = (commit & COMMIT_MASK) as usize;
        let data = page
            .get(h.data_offset..h.data_offset + data_len)
            .ok_or(PageError("commit length beyond the page"))?;
        let missed = if commit & MISSING_EVENTS == 0 {
            Missed::None
        } else if commit & MISSING_STORED != 0 {
            let at = h.data_offset + data_len;
            u64_at(page, at, h.commit_size).map_or(Missed::Unknown, Missed::Count)
        } else {
            Missed::Unknown
        };
        Ok(Self {
            missed,
            base_ts,
            data_len,
            data,
        })
    }

    /// The records: `(timestamp, record bytes)`.
    pub fn records(&self) -> Records<'a> {
        Records {
            data: self.data,
            pos: 0,
            ts: self.base_ts,
        }
    }
}

/// Iterator over the records of a page.
#[derive(Debug)]
pub struct Records<'a> {
    data: &'a [u8],
    pos: usize,
    ts: u64,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(u64, &'a [u8]), PageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let data = self.data;
        next_record(data, &mut self.pos, &mut self.ts)
            .map(|r| r.map(|(ts, range)| (ts, &data[range])))
    }
}

/// The record of `data` (a page's event data) at `*pos`, moving `*pos` past it and `*ts` to its
/// time: `(time, byte range in data)`. [`Records`] is this over a borrowed page; a reader that
/// replaces its buffer as it goes keeps the two numbers instead of a borrow.
pub fn next_record(
    data: &[u8],
    pos: &mut usize,
    ts: &mut u64,
) -> Option<Result<(u64, std::ops::Range<usize>), PageError>> {
    loop {
        let header = u32_at(data, *pos)?;
        let type_len = header & 0x1f;
        let delta = u64::from(header >> 5);
        let body = *pos + 4;
        match type_len {
            29 => {
                // Padding: with a zero delta it fills the rest of the page.
                if delta == 0 {
                    *pos = data.len();
                    return None;
                }
                let Some(len) = u32_at(data, body) else {
                    return Some(Err(PageError("truncated padding")));
                };
                *pos = body + len as usize;
            }
            30 => {
                let Some(ext) = u32_at(data, body) else {
                    return Some(Err(PageError("truncated time extend")));
                };
                let Some(t) = advance(*ts, delta + (u64::from(ext) << TS_BITS)) else {
                    return Some(Err(PageError(OVERFLOW)));
                };
                *ts = t;
                *pos = body + 4;
            }
            31 => {
                let Some(ext) = u32_at(data, body) else {
                    return Some(Err(PageError("truncated time stamp")));
                };
                // Absolute stamps hold the low 59 bits; keep the current upper bits.
                let abs = delta + (u64::from(ext) << TS_BITS);
                *ts = (*ts & !((1 << 59) - 1)) | abs;
                *pos = body + 4;
            }
            0 => {
                let Some(len) = u32_at(data, body) else {
                    return Some(Err(PageError("truncated record length")));
                };
                let len = (len as usize).saturating_sub(4);
                let start = body + 4;
                if data.get(start..start + len).is_none() {
                    return Some(Err(PageError("record beyond page data")));
                }
                let Some(t) = advance(*ts, delta) else {
                    return Some(Err(PageError(OVERFLOW)));
                };
                *ts = t;
                *pos = start + ((len + 3) & !3);
                return Some(Ok((*ts, start..start + len)));
            }
            n => {
                let len = n as usize * 4;
                if data.get(body..body + len).is_none() {
                    return Some(Err(PageError("record beyond page data")));
                }
                let Some(t) = advance(*ts, delta) else {
                    return Some(Err(PageError(OVERFLOW)));
                };
                *ts = t;
                *pos = body + len;
                return Some(Ok((*ts, body..body + len)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's time past 2^63 ns is an error of the page, not a panic or a negative
    /// `ts_ns` (the fuzz target `tracedat` found a page whose base time overflowed).
    #[test]
    fn a_time_past_2_pow_63_is_a_page_error() {
        // One 4-byte record (type_len 1) with delta 5.
        let mut data = (1u32 | (5 << 5)).to_le_bytes().to_vec();
        data.extend_from_slice(&[0; 4]);
        for (base, ok) in [
            (1000, true),
            (i64::MAX as u64 - 2, false),
            (u64::MAX - 1, false),
        ] {
            let (mut pos, mut ts) = (0, base);
            let r = next_record(&data, &mut pos, &mut ts).expect("a record");
            assert_eq!(r.is_ok(), ok, "base {base}: {r:?}");
        }
    }
}
