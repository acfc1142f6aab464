//! One line of ftrace text: what kind it is and its fixed prefix.
//!
//! Kernel layout (`trace_print_context`): comm right-aligned in 16 bytes, `-`, pid, optional
//! `(tgid)`, `[cpu]`, 4 or 5 flag characters (or none in some trace-cmd output), timestamp and
//! `:`, then the body. The fast path relies on the `-` at byte 16; other layouts (trace-cmd
//! report with an instance prefix, `%-5d` pids, no tgid) go through a slower search for the
//! `[cpu]` field.

use crate::rows::{Flags, IrqContext, LostKind};
use crate::text::body::{self, Body};

/// A parsed event line, borrowing from the input.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLine<'a> {
    /// Task name as printed.
    pub comm: &'a str,
    /// Thread id.
    pub tid: i32,
    /// Thread group id, when printed and known.
    pub tgid: Option<i32>,
    /// CPU.
    pub cpu: u16,
    /// Flags, when printed.
    pub flags: Option<Flags>,
    /// Timestamp in ns (µs text scaled), or the raw counter for counter clocks.
    pub ts_ns: i64,
    /// False when the timestamp was a raw counter (no decimal point).
    pub ts_is_ns: bool,
    /// Event name and fields.
    pub body: Body<'a>,
}

/// What one line of text is.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    /// A trace event.
    Event(EventLine<'a>),
    /// A lost-events report.
    Lost {
        /// CPU that lost events.
        cpu: u16,
        /// How many, when stated.
        count: Option<u64>,
        /// Wording.
        kind: LostKind,
    },
    /// Blank, `#` header, `cpus=N`, `##### CPU N buffer started ####` and similar.
    Ignored,
    /// Not a line kreq understands; the reason says what failed.
    Malformed(&'static str),
}

/// Parse one line (without its newline). Fields are split later, by [`Body::fields`].
pub fn parse_line<'a>(line: &'a str) -> Line<'a> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    // A systrace embedded as a JavaScript string ends each line with `\n\` (an escaped
    // newline, then the string's line continuation; catapult's `*_jsstring` traces): the
    // line's text ends before it.
    let line = line.strip_suffix("\\n\\").unwrap_or(line);
    let b = line.as_bytes();
    let first = b.iter().position(|&c| c != b' ' && c != b'\t');
    let Some(first) = first else {
        return Line::Ignored;
    };
    match b[first] {
        b'#' => return Line::Ignored,
        b'C' if line[first..].starts_with("CPU:") => return parse_cpu_line(&line[first..]),
        b'c' if line[first..].starts_with("cpus=") => return Line::Ignored,
        // trace-cmd report's header: `version = 6`, and `CPU 3 is empty` for each idle CPU.
        b'v' if is_version_line(&line[first..]) => return Line::Ignored,
        b'C' if is_empty_cpu_line(&line[first..]) => return Line::Ignored,
        _ => {}
    }
    match parse_event(line) {
        Ok(ev) => Line::Event(ev),
        Err(reason) => Line::Malformed(reason),
    }
}

/// `version = N`, the first line of `trace-cmd report`.
fn is_version_line(s: &str) -> bool {
    s.strip_prefix("version = ")
        .is_some_and(|v| !v.is_empty() && v.trim_end().bytes().all(|c| c.is_ascii_digit()))
}

/// `CPU N is empty`, which `trace-cmd report` prints for a CPU with no event.
fn is_empty_cpu_line(s: &str) -> bool {
    s.strip_prefix("CPU ")
        .and_then(|r| r.trim_end().strip_suffix(" is empty"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

/// `CPU:N [LOST M EVENTS]`, `CPU:N [M EVENTS DROPPED]` and the like.
fn parse_cpu_line(s: &str) -> Line<'_> {
    let rest = &s[4..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(cpu) = rest[..digits].parse::<u16>() else {
        return Line::Malformed("CPU line without a CPU number");
    };
    let tail = rest[digits..].trim();
    if let Some(inner) = tail
        .strip_prefix("[LOST ")
        .and_then(|t| t.strip_suffix(" EVENTS]"))
    {
        return Line::Lost {
            cpu,
            count: inner.trim().parse().ok(),
            kind: LostKind::Lost,
        };
    }
    if let Some(inner) = tail
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(" EVENTS DROPPED]"))
    {
        return Line::Lost {
            cpu,
            count: inner.trim().parse().ok(),
            kind: LostKind::Dropped,
        };
    }
    Line::Malformed("CPU line that is not a lost-events report")
}

fn parse_event(line: &str) -> Result<EventLine<'_>, &'static str> {
    let b = line.as_bytes();
    // Fast path: kernel layout, `-` at byte 16 followed by the pid.
    let (comm, tid, after_pid) = if b.len() > 17 && b[16] == b'-' && b[17].is_ascii_digit() {
        let end = 17 + b[17..].iter().take_while(|c| c.is_ascii_digit()).count();
        let tid = parse_i32(&b[17..end]).ok_or("pid out of range")?;
        (line[..16].trim_start(), tid, end)
    } else {
        slow_comm_pid(line)?
    };
    let mut pos = skip_spaces(b, after_pid);
    let mut tgid = None;
    if b.get(pos) == Some(&b'(') {
        let close = memchr::memchr(b')', &b[pos..]).ok_or("unclosed tgid")? + pos;
        let inner = line[pos + 1..close].trim();
        if !inner.starts_with('-') {
            tgid = Some(parse_i32(inner.as_bytes()).ok_or("bad tgid")?);
        }
        pos = skip_spaces(b, close + 1);
    }
    if b.get(pos) != Some(&b'[') {
        return Err("no [cpu] field");
    }
    let close = memchr::memchr(b']', &b[pos..]).ok_or("unclosed [cpu]")? + pos;
    let cpu = parse_u16(&b[pos + 1..close]).ok_or("bad cpu number")?;
    pos = skip_spaces(b, close + 1);
    // Flags token, unless the next token is already the timestamp.
    let tok_end = pos + b[pos..].iter().take_while(|&&c| c != b' ').count();
    let mut flags = None;
    if !b[pos..tok_end].ends_with(b":") {
        flags = Some(parse_flags(&b[pos..tok_end]).ok_or("bad flags")?);
        pos = skip_spaces(b, tok_end);
    } else if b.get(pos).is_some_and(|c| !c.is_ascii_digit()) {
        // Flags joined to the timestamp (`....316.196720:`, `d...316.196740:` in atrace output
        // Perfetto parses): 4 flag characters when a timestamp follows them, else 5.
        let tok = &b[pos..tok_end - 1];
        let joined = [4, 5].into_iter().find_map(|n| {
            let ts = tok
                .get(n..)
                .filter(|t| t.first().is_some_and(u8::is_ascii_digit))?;
            parse_ts(ts)?;
            Some((n, parse_flags(&tok[..n])?))
        });
        if let Some((n, f)) = joined {
            flags = Some(f);
            pos += n;
        }
    }
    let ts_end = pos + b[pos..].iter().take_while(|&&c| c != b':').count();
    if ts_end >= b.len() {
        return Err("no timestamp");
    }
    let (ts_ns, ts_is_ns) = parse_ts(&b[pos..ts_end]).ok_or("bad timestamp")?;
    let body_start = (ts_end + 1).min(b.len());
    let body_text = line[body_start..]
        .strip_prefix(' ')
        .unwrap_or(&line[body_start..]);
    let body = body::parse_body(body_text);
    Ok(EventLine {
        comm,
        tid,
        tgid,
        cpu,
        flags,
        ts_ns,
        ts_is_ns,
        body,
    })
}

/// Layouts without the `-` at byte 16: find `[digits]`, then walk back over `(tgid)` and
/// `-pid`. comm is at most 15 bytes, right-aligned in 16, so anything before those 16 bytes
/// (trace-cmd's `instance:` prefix) is not part of it.
fn slow_comm_pid(line: &str) -> Result<(&str, i32, usize), &'static str> {
    let b = line.as_bytes();
    let mut search = 0;
    let bracket = loop {
        let i = memchr::memchr(b'[', &b[search..]).ok_or("no [cpu] field")? + search;
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 && b.get(i + 1 + digits) == Some(&b']') && i > 0 && b[i - 1] == b' ' {
            break i;
        }
        search = i + 1;
    };
    let mut head = line[..bracket].trim_end();
    if head.ends_with(')') {
        let open = head.rfind('(').ok_or("unbalanced tgid")?;
        head = head[..open].trim_end();
    }
    let dash = head.rfind('-').ok_or("no -pid after comm")?;
    let pid_text = &head[dash + 1..];
    let tid = parse_i32(pid_text.as_bytes()).ok_or("bad pid")?;
    let region = &head[..dash];
    let mut cut = region.len().saturating_sub(16);
    while !region.is_char_boundary(cut) {
        cut += 1;
    }
    Ok((region[cut..].trim_start(), tid, head.len()))
}

fn skip_spaces(b: &[u8], mut pos: usize) -> usize {
    while b.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos
}

fn parse_flags(f: &[u8]) -> Option<Flags> {
    if f.len() != 4 && f.len() != 5 {
        return None;
    }
    let (irqs_off, bh_off) = match f[0] {
        b'd' => (true, false),
        b'b' => (false, true),
        b'D' => (true, true),
        b'.' | b'X' => (false, false),
        _ => return None,
    };
    let need_resched = match f[1] {
        b'.' => false,
        c if c.is_ascii_alphabetic() => true,
        _ => return None,
    };
    let context = match f[2] {
        b'.' => IrqContext::Task,
        b's' => IrqContext::Softirq,
        b'h' => IrqContext::Hardirq,
        b'H' => IrqContext::HardirqInSoftirq,
        b'z' => IrqContext::Nmi,
        b'Z' => IrqContext::NmiInHardirq,
        _ => return None,
    };
    let depth = |c: u8| match c {
        b'.' => Some(0),
        c => (c as char).to_digit(16).map(|d| d as u8),
    };
    Some(Flags {
        irqs_off,
        bh_off,
        need_resched,
        context,
        preempt_depth: depth(f[3])?,
        migrate_disable: if f.len() == 5 {
            Some(depth(f[4])?)
        } else {
            None
        },
    })
}

/// `secs.frac` (ns clocks; µs in kernel text, any precision up to ns) or a raw counter.
fn parse_ts(t: &[u8]) -> Option<(i64, bool)> {
    match memchr::memchr(b'.', t) {
        Some(dot) => {
            let secs = parse_u64(&t[..dot])?;
            let frac = &t[dot + 1..];
            if frac.is_empty() || frac.len() > 9 {
                return None;
            }
            let mut ns = parse_u64(frac)?;
            for _ in frac.len()..9 {
                ns *= 10;
            }
            let total = secs.checked_mul(1_000_000_000)?.checked_add(ns)?;
            Some((i64::try_from(total).ok()?, true))
        }
        None => Some((i64::try_from(parse_u64(t)?).ok()?, false)),
    }
}

/// Unsigned decimal digits only.
pub(crate) fn parse_u64(d: &[u8]) -> Option<u64> {
    if d.is_empty() || d.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

fn parse_i32(d: &[u8]) -> Option<i32> {
    i32::try_from(parse_u64(d)?).ok()
}

fn parse_u16(d: &[u8]) -> Option<u16> {
    u16::try_from(parse_u64(d)?).ok()
}
