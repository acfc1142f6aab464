//! The kernel's own strings that binary `bprint`/`bputs` records point at: `trace_printk`
//! formats (the trace.dat's printk section, tracefs `printk_formats`) and function symbols
//! (its kallsyms section), and the rendering of a `bprint`'s arguments as `trace-cmd report`
//! shows them.
//!
//! A `bprint` record keeps the format's address and the arguments packed as the kernel's
//! `vbin_printf` packs them (lib/vsprintf.c): an 8-byte value aligned to 4 bytes, a smaller
//! one aligned to its size, a `%s` string copied whole with its NUL and no alignment, a `%p`
//! with an extension other than `S s F f x K e` already formatted into a string.

use std::fmt::Write as _;

use hashbrown::HashMap;

/// `trace_printk` formats by address, and function symbols by address.
#[derive(Debug, Default, Clone)]
pub struct KernelStrings {
    formats: HashMap<u64, String>,
    /// (address, start and end of the name in `names`), sorted by address: one allocation
    /// for the ~100k names of a kernel (a `String` each took 14 MB more on
    /// `lisa_example_rtapp_trace.dat`).
    symbols: Vec<(u64, u32, u32)>,
    names: String,
}

impl KernelStrings {
    /// Adds the lines of a printk formats listing: `0xADDR : "format"`, with C escapes.
    pub fn add_printk(&mut self, text: &str) {
        for line in text.lines() {
            let Some((addr, fmt)) = line.split_once(" : ") else {
                continue;
            };
            let addr = addr.trim().trim_start_matches("0x");
            let (Ok(addr), Some(fmt)) = (
                u64::from_str_radix(addr, 16),
                fmt.trim()
                    .strip_prefix('"')
                    .and_then(|f| f.strip_suffix('"')),
            ) else {
                continue;
            };
            self.formats.insert(addr, unescape(fmt));
        }
    }

    /// Adds the lines of a kallsyms listing: `ADDR TYPE NAME [MODULE]`.
    pub fn add_kallsyms(&mut self, text: &str) {
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(addr), Some(_), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let Ok(addr) = u64::from_str_radix(addr, 16) {
                let start = self.names.len() as u32;
                self.names.push_str(name);
                self.symbols.push((addr, start, self.names.len() as u32));
            }
        }
        self.symbols.sort_unstable_by_key(|s| s.0);
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.formats.is_empty() && self.symbols.is_empty()
    }

    /// The format (or `bputs` string) at `addr`.
    pub fn format(&self, addr: u64) -> Option<&str> {
        self.formats.get(&addr).map(String::as_str)
    }

    /// The function `ip` is in: the symbol at the greatest address not above it.
    pub fn symbol(&self, ip: u64) -> Option<&str> {
        let i = self.symbols.partition_point(|s| s.0 <= ip);
        let &(addr, start, end) = self.symbols.get(i.checked_sub(1)?)?;
        (addr != 0).then(|| self.names.get(start as usize..end as usize))?
    }
}

/// The C escapes of a printk format listing (`\n`, `\t`, `\"`, `\\`) as characters.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

/// Why a `bprint` could not be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderError {
    /// The arguments end before the format does.
    ShortArgs,
    /// A conversion kreq does not know.
    Conversion(char),
}

/// The packed arguments, read in `vbin_printf`'s order and alignment.
struct Args<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Args<'_> {
    fn int(&mut self, size: usize, signed: bool) -> Result<i128, RenderError> {
        // 8-byte values are stored as two u32 halves, aligned to 4.
        let align = size.min(4);
        self.pos = self.pos.next_multiple_of(align);
        let b = self
            .b
            .get(self.pos..self.pos + size)
            .ok_or(RenderError::ShortArgs)?;
        self.pos += size;
        let mut v = [0u8; 8];
        v[..size].copy_from_slice(b);
        let u = u64::from_le_bytes(v);
        Ok(if signed {
            let shift = 64 - 8 * size as u32;
            i128::from(((u << shift) as i64) >> shift)
        } else {
            i128::from(u)
        })
    }

    fn str(&mut self) -> Result<&str, RenderError> {
        let rest = self.b.get(self.pos..).ok_or(RenderError::ShortArgs)?;
        let end = memchr::memchr(0, rest).ok_or(RenderError::ShortArgs)?;
        self.pos += end + 1;
        Ok(std::str::from_utf8(&rest[..end]).unwrap_or("?"))
    }
}

/// One conversion's flags, width and precision.
#[derive(Default)]
struct Spec {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
}

impl Spec {
    /// Writes `body` (with `sign`/`prefix` before it) padded to the width.
    fn pad(&self, out: &mut String, sign: &str, prefix: &str, body: &str, numeric: bool) {
        let len = sign.len() + prefix.len() + body.chars().count();
        let fill = self.width.saturating_sub(len);
        if self.left {
            out.push_str(sign);
            out.push_str(prefix);
            out.push_str(body);
            out.extend(std::iter::repeat_n(' ', fill));
        } else if self.zero && numeric && self.precision.is_none() {
            out.push_str(sign);
            out.push_str(prefix);
            out.extend(std::iter::repeat_n('0', fill));
            out.push_str(body);
        } else {
            out.extend(std::iter::repeat_n(' ', fill));
            out.push_str(sign);
            out.push_str(prefix);
            out.push_str(body);
        }
    }

    /// Digits of an integer, at least `precision` of them.
    fn digits(&self, mut d: String) -> String {
        if let Some(p) = self.precision {
            if p == 0 && d == "0" {
                d.clear();
            }
            while d.len() < p {
                d.insert(0, '0');
            }
        }
        d
    }
}

/// Renders format `fmt` with the `bprint` arguments `args` into `out`, as `trace-cmd report`
/// does; `long_size` is the traced kernel's `sizeof(long)`. `symbols` names `%pS` pointers.
pub fn render(
    fmt: &str,
    args: &[u8],
    long_size: usize,
    symbols: &KernelStrings,
    out: &mut String,
) -> Result<(), RenderError> {
    let mut a = Args { b: args, pos: 0 };
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.left = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '#' => spec.alt = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        if chars.peek() == Some(&'*') {
            chars.next();
            let w = a.int(4, true)?;
            spec.left |= w < 0;
            spec.width = w.unsigned_abs() as usize;
        } else {
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                spec.width = spec.width * 10 + d as usize;
                chars.next();
            }
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            if chars.peek() == Some(&'*') {
                chars.next();
                spec.precision = Some(a.int(4, true)?.max(0) as usize);
            } else {
                let mut p = 0;
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    p = p * 10 + d as usize;
                    chars.next();
                }
                spec.precision = Some(p);
            }
        }
        // Length qualifier -> stored size.
        let mut size = 4;
        match chars.peek() {
            Some('h') => {
                chars.next();
                size = 2;
                if chars.peek() == Some(&'h') {
                    chars.next();
                    size = 1;
                }
            }
            Some('l') => {
                chars.next();
                size = long_size;
                if chars.peek() == Some(&'l') {
                    chars.next();
                    size = 8;
                }
            }
            Some('L' | 'q') => {
                chars.next();
                size = 8;
            }
            Some('z' | 'Z' | 't' | 'j') => {
                chars.next();
                size = long_size;
            }
            _ => {}
        }
        let Some(conv) = chars.next() else {
            break;
        };
        match conv {
            'd' | 'i' => {
                let v = a.int(size, true)?;
                let sign = if v < 0 {
                    "-"
                } else if spec.plus {
                    "+"
                } else if spec.space {
                    " "
                } else {
                    ""
                };
                let body = spec.digits(v.unsigned_abs().to_string());
                spec.pad(out, sign, "", &body, true);
            }
            'u' | 'x' | 'X' | 'o' => {
                let v = a.int(size, false)? as u64;
                let body = spec.digits(match conv {
                    'u' => v.to_string(),
                    'x' => format!("{v:x}"),
                    'X' => format!("{v:X}"),
                    _ => format!("{v:o}"),
                });
                let prefix = match (spec.alt && v != 0, conv) {
                    (true, 'x') => "0x",
                    (true, 'X') => "0X",
                    (true, 'o') => "0",
                    _ => "",
                };
                spec.pad(out, "", prefix, &body, true);
            }
            'c' => {
                let v = a.int(1, false)? as u8;
                spec.pad(out, "", "", &char::from(v).to_string(), false);
            }
            's' => {
                let s = a.str()?;
                let s = match spec.precision {
                    Some(p) => s.get(..p.min(s.len())).unwrap_or(s),
                    None => s,
                };
                spec.pad(out, "", "", s, false);
            }
            'p' => {
                let ext = chars.peek().copied().filter(char::is_ascii_alphanumeric);
                match ext {
                    None | Some('S' | 's' | 'F' | 'f' | 'x' | 'K' | 'e') => {
                        let v = a.int(long_size, false)? as u64;
                        let mut body = String::new();
                        match ext.map(|e| (e, symbols.symbol(v))) {
                            Some(('S' | 's' | 'F' | 'f', Some(name))) => body.push_str(name),
                            _ if v == 0 => body.push_str("(nil)"),
                            _ => {
                                let _ = write!(body, "0x{v:x}");
                            }
                        }
                        spec.pad(out, "", "", &body, false);
                    }
                    Some(_) => {
                        // Formatted by the kernel when recorded.
                        let s = a.str()?.to_owned();
                        spec.pad(out, "", "", &s, false);
                    }
                }
                while chars.peek().is_some_and(char::is_ascii_alphanumeric) {
                    chars.next();
                }
            }
            other => return Err(RenderError::Conversion(other)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn arguments_are_read_as_vbin_printf_packs_them() {
        // "pid=%d comm=%s cpu=%d rq=%p t_avg=%lu": int, string (no alignment), int (aligned
        // to 4 after the string), pointer and long (8 bytes, aligned to 4).
        let args = packed(&[
            &6972i32.to_le_bytes(),
            b"sudo\0",
            &[0, 0, 0],
            &1i32.to_le_bytes(),
            &0xffff_ffc9_7fed_2f68u64.to_le_bytes(),
            &966u64.to_le_bytes(),
        ]);
        let mut out = String::new();
        let k = KernelStrings::default();
        render(
            "pid=%d comm=%s cpu=%d rq=%p t_avg=%lu",
            &args,
            8,
            &k,
            &mut out,
        )
        .expect("render");
        assert_eq!(
            out,
            "pid=6972 comm=sudo cpu=1 rq=0xffffffc97fed2f68 t_avg=966"
        );
    }

    #[test]
    fn flags_width_and_precision_follow_printf() {
        let args = packed(&[&(-5i32).to_le_bytes(), &255u32.to_le_bytes(), b"abcdef\0"]);
        let mut out = String::new();
        render(
            "[%04d] [%#x] [%-5.3s]",
            &args,
            8,
            &KernelStrings::default(),
            &mut out,
        )
        .expect("render");
        assert_eq!(out, "[-005] [0xff] [abc  ]");
    }

    #[test]
    fn arguments_that_end_early_are_an_error() {
        let mut out = String::new();
        let r = render(
            "%d %d",
            &1i32.to_le_bytes(),
            8,
            &KernelStrings::default(),
            &mut out,
        );
        assert_eq!(r, Err(RenderError::ShortArgs));
    }

    #[test]
    fn symbols_and_formats_are_found_by_address() {
        let mut k = KernelStrings::default();
        k.add_kallsyms("ffffffc0000fba98 t enqueue_task_fair\nffffffc0000fc000 T other\n");
        k.add_printk("0xffffffc0008f3e98 : \"evt=%s\\n\"\n");
        assert_eq!(k.symbol(0xffff_ffc0_000f_bb98), Some("enqueue_task_fair"));
        assert_eq!(k.symbol(0x10), None);
        assert_eq!(k.format(0xffff_ffc0_008f_3e98), Some("evt=%s\n"));
    }
}
