//! ftrace text inside other files, unwrapped like compressed input: Android systrace HTML
//! (`<script class="trace-data">` blocks, or the legacy `var linuxPerfData = "...\n\`
//! JavaScript string) and `atrace -z` output (a `TRACE:` line, then a raw zlib stream).
//!
//! The HTML is read whole (systrace files are a few MB; the page's own script is most of
//! it) and the text taken out; `atrace -z` is decompressed as it is read. Byte offsets and
//! line numbers in reports then count in the unwrapped text, as they count in the
//! decompressed text of a `.zst`.

use std::io::{self, BufRead, Read};

/// What wrapped the text, for the manifest's `sources[].format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapper {
    /// Systrace HTML.
    SystraceHtml,
    /// `atrace -z`.
    AtraceZlib,
}

impl Wrapper {
    /// Its name in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Wrapper::SystraceHtml => "systrace-html",
            Wrapper::AtraceZlib => "atrace-z",
        }
    }
}

/// Which wrapper, if any, the first bytes of an input show.
pub fn detect(head: &[u8]) -> Option<Wrapper> {
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let lead = &head[start..head.len().min(start + 64)];
    let lower: Vec<u8> = lead.iter().map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") {
        return Some(Wrapper::SystraceHtml);
    }
    zlib_after_trace_line(head).map(|_| Wrapper::AtraceZlib)
}

/// Offset of the zlib stream after `TRACE:\n`, when one follows it (atrace prints a few
/// lines before it, such as `capturing trace... done`).
fn zlib_after_trace_line(head: &[u8]) -> Option<usize> {
    let at = memchr::memmem::find(&head[..head.len().min(4096)], b"TRACE:\n")? + 7;
    let (a, b) = (*head.get(at)?, *head.get(at + 1)?);
    // RFC 1950: deflate (CM 8), and the header's check bits.
    (a & 0x0f == 8 && (u16::from(a) << 8 | u16::from(b)) % 31 == 0).then_some(at)
}

/// The text inside `input`, whose first bytes showed `wrapper`.
pub fn unwrap(
    wrapper: Wrapper,
    mut input: Box<dyn BufRead + Send>,
) -> io::Result<Box<dyn Read + Send>> {
    match wrapper {
        Wrapper::AtraceZlib => {
            let head = input.fill_buf()?;
            let at = zlib_after_trace_line(head).unwrap_or(0);
            input.consume(at);
            Ok(Box::new(flate2::bufread::ZlibDecoder::new(input)))
        }
        Wrapper::SystraceHtml => {
            let mut page = Vec::new();
            input.read_to_end(&mut page)?;
            Ok(Box::new(io::Cursor::new(systrace_text(&page))))
        }
    }
}

/// The ftrace text of a systrace page: every `trace-data` script block that is not JSON, in
/// page order, else the legacy `linuxPerfData` string. Empty when there is neither (the
/// input is then refused as holding no event).
pub fn systrace_text(page: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(i) = memchr::memmem::find(rest, b"class=\"trace-data\"") {
        rest = &rest[i..];
        let Some(open_end) = memchr::memchr(b'>', rest) else {
            break;
        };
        rest = &rest[open_end + 1..];
        let end = memchr::memmem::find(rest, b"</script>").unwrap_or(rest.len());
        let block = rest[..end].trim_ascii();
        // Other blocks hold JSON trace events, which are not ftrace text.
        if !block.is_empty() && !matches!(block[0], b'{' | b'[') {
            out.extend_from_slice(block);
            out.push(b'\n');
        }
        rest = &rest[end..];
    }
    if out.is_empty() {
        if let Some(i) = memchr::memmem::find(page, b"linuxPerfData = \"") {
            out = js_string(&page[i + b"linuxPerfData = \"".len()..]);
        }
    }
    out
}

/// A JavaScript string literal's text, from just after its opening quote: escapes decoded,
/// line continuations (`\` at the end of a source line) removed, up to the closing quote, or
/// up to the end of its script when the quote is missing (trappy's legacy test page never
/// closes it).
fn js_string(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' => break,
            b'<' if s[i..].starts_with(b"</script>") => break,
            b'\\' if i + 1 < s.len() => {
                i += 1;
                match s[i] {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => {}
                    b'\n' => {}
                    c => out.push(c),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_data_blocks_that_are_not_json_are_the_text() {
        let page = b"<!DOCTYPE html>\n<html><script class=\"trace-data\" type=\"application/text\">\n\
            {\"traceEvents\": []}\n</script>\n<script class=\"trace-data\" type=\"application/text\">\n\
            # tracer: nop\n  sh-1 [000] 1.000001: sched_waking: comm=x pid=2 prio=120 target_cpu=000\n\
            </script></html>";
        assert_eq!(detect(page), Some(Wrapper::SystraceHtml));
        let text = systrace_text(page);
        assert_eq!(
            String::from_utf8_lossy(&text),
            "# tracer: nop\n  sh-1 [000] 1.000001: sched_waking: comm=x pid=2 prio=120 target_cpu=000\n"
        );
    }

    #[test]
    fn the_legacy_javascript_string_is_unescaped() {
        let page = b"<html><script>\n  var linuxPerfData = \"\\\n# tracer: nop\\n\\\n  a-1 [000] 2.0: 0: C|1|x|1\\n\\\n\";\n</script></html>";
        assert_eq!(
            String::from_utf8_lossy(&systrace_text(page)),
            "# tracer: nop\n  a-1 [000] 2.0: 0: C|1|x|1\n"
        );
        let unclosed = b"<html><script>\n  var linuxPerfData = \"\\\n# tracer: nop\n  a-1 [000] 2.0: 0: x\n  </script>";
        assert_eq!(
            String::from_utf8_lossy(&systrace_text(unclosed)).trim_end(),
            "# tracer: nop\n  a-1 [000] 2.0: 0: x"
        );
    }

    #[test]
    fn atrace_z_is_a_zlib_stream_after_the_trace_line() {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"# tracer: nop\n").expect("compress");
        let mut file = b"capturing trace... done\nTRACE:\n".to_vec();
        file.extend(z.finish().expect("compress"));
        assert_eq!(detect(&file), Some(Wrapper::AtraceZlib));
        let mut text = String::new();
        unwrap(Wrapper::AtraceZlib, Box::new(io::Cursor::new(file)))
            .expect("unwrap")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "# tracer: nop\n");
        // Plain atrace text after the line is not wrapped.
        assert_eq!(detect(b"TRACE:\n# tracer: nop\n"), None);
    }
}
