//! Shared helpers for kreq benchmarks: loading the bundled captures and making long inputs.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

/// The repository's `testdata/` directory.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Decompressed text of a bundled capture (`testdata/NAME/trace.txt.zst`).
pub fn capture_text(name: &str) -> std::io::Result<Vec<u8>> {
    let path = testdata().join(name).join("trace.txt.zst");
    zstd::decode_all(std::fs::File::open(path)?)
}

/// `copies` concatenated copies of a trace, each copy's timestamps shifted past the previous
/// copy's end, so the result is a longer trace that is still in time order.
pub fn replicate_shifted(text: &[u8], copies: usize) -> Vec<u8> {
    let s = String::from_utf8_lossy(text);
    let secs: Vec<Option<(usize, usize, u64)>> = s.lines().map(timestamp_secs).collect();
    let first = secs.iter().flatten().map(|t| t.2).min().unwrap_or(0);
    let last = secs.iter().flatten().map(|t| t.2).max().unwrap_or(0);
    let span = last - first + 1;
    let mut out = Vec::with_capacity(text.len() * copies);
    for k in 0..copies as u64 {
        for (line, ts) in s.lines().zip(&secs) {
            match ts {
                Some((start, end, sec)) if k > 0 => {
                    out.extend_from_slice(&line.as_bytes()[..*start]);
                    out.extend_from_slice((sec + k * span).to_string().as_bytes());
                    out.extend_from_slice(&line.as_bytes()[*end..]);
                }
                _ => out.extend_from_slice(line.as_bytes()),
            }
            out.push(b'\n');
        }
    }
    out
}

/// Byte range and value of the whole-seconds part of the first `secs.frac:` token.
fn timestamp_secs(line: &str) -> Option<(usize, usize, u64)> {
    let b = line.as_bytes();
    let mut from = 0;
    while let Some(i) = line[from..].find(": ").map(|i| i + from) {
        let start = line[..i].rfind(' ').map_or(0, |s| s + 1);
        let tok = &line[start..i];
        if let Some((sec, frac)) = tok.split_once('.') {
            if !sec.is_empty()
                && sec.bytes().all(|c| c.is_ascii_digit())
                && frac.bytes().all(|c| c.is_ascii_digit())
            {
                return Some((start, start + sec.len(), sec.parse().ok()?));
            }
        }
        from = i + 1;
        if from >= b.len() {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_shifts_seconds_and_keeps_order() {
        let t = b"  a-1  [000] .....  10.000001: x: a=1\n  a-1  [000] .....  12.5: x: a=2\n";
        let r = String::from_utf8(replicate_shifted(t, 2)).unwrap_or_default();
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].contains(" 13.000001: "), "{}", lines[2]);
        assert!(lines[3].contains(" 15.5: "), "{}", lines[3]);
    }
}
