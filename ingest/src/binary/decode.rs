//! Field values of binary records, decoded by their format.
//!
//! Values keep their meaning across text and binary input: socket lengths and errors split
//! from `ret` as `print fmt` does, `sockaddr` arrays become `src`/`dest` endpoints, IPv4/IPv6
//! byte arrays become addresses, and known enums (`family`, `protocol`, TCP states) their names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::format::{EventFormat, FieldFormat, FieldKind, Render};

/// A decoded field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// An integer (signed or unsigned).
    Int(i128),
    /// A pointer, rendered in hex.
    Pointer(u64),
    /// Text (char arrays and `__data_loc` strings, up to the first NUL).
    Text(&'a str),
    /// An IP address.
    Addr(IpAddr),
    /// A socket address: IP and port.
    Endpoint(IpAddr, u16),
    /// A name for a known enum value.
    Symbol(&'static str),
    /// `sched_switch` `prev_state` bits, with the letters of the event's print format.
    TaskState(u64, Option<&'a [(u64, String)]>),
    /// Other bytes, rendered in hex.
    Bytes(&'a [u8]),
}

/// A scalar field as an integer.
pub(crate) fn int(rec: &[u8], f: &FieldFormat) -> Option<i128> {
    let b = rec.get(f.offset..f.offset + f.size)?;
    Some(match (f.size, f.signed) {
        (1, true) => i128::from(b[0] as i8),
        (1, false) => i128::from(b[0]),
        (2, true) => i128::from(i16::from_le_bytes(b.try_into().ok()?)),
        (2, false) => i128::from(u16::from_le_bytes(b.try_into().ok()?)),
        (4, true) => i128::from(i32::from_le_bytes(b.try_into().ok()?)),
        (4, false) => i128::from(u32::from_le_bytes(b.try_into().ok()?)),
        (8, true) => i128::from(i64::from_le_bytes(b.try_into().ok()?)),
        (8, false) => i128::from(u64::from_le_bytes(b.try_into().ok()?)),
        _ => return None,
    })
}

/// Bytes of a `__data_loc` / `__rel_loc` field.
fn dynamic<'a>(rec: &'a [u8], f: &FieldFormat) -> Option<&'a [u8]> {
    let loc = u32::from_le_bytes(rec.get(f.offset..f.offset + 4)?.try_into().ok()?);
    let (len, mut off) = ((loc >> 16) as usize, (loc & 0xffff) as usize);
    if f.kind == FieldKind::RelLoc {
        off += f.offset + f.size;
    }
    rec.get(off..off + len)
}

/// The bytes of a text field (char array or `__data_loc` string) up to its first NUL, not
/// checked to be UTF-8.
pub(crate) fn field_bytes<'a>(rec: &'a [u8], f: &FieldFormat) -> Option<&'a [u8]> {
    let b = match f.kind {
        // An array of size 0 (`char buf;` or `char buf[]`): a flexible array running to the
        // end of the record (`print` in `lisa_example_rtapp_trace.dat`).
        FieldKind::Array if f.size == 0 => rec.get(f.offset..)?,
        FieldKind::Array => rec.get(f.offset..f.offset + f.size)?,
        FieldKind::DataLoc | FieldKind::RelLoc => dynamic(rec, f)?,
        FieldKind::Int => return None,
    };
    let b = &b[..memchr::memchr(0, b).unwrap_or(b.len())];
    // A message (`trace_marker` text) ends with the newline that ends its line in text
    // output; the value is the text without it, as text ingest reads it.
    if f.kind == FieldKind::Array && f.size == 0 {
        return Some(b.strip_suffix(b"\n").unwrap_or(b));
    }
    Some(b)
}

/// A text field (char array or `__data_loc` string), up to its first NUL.
pub(crate) fn field_text<'a>(rec: &'a [u8], f: &FieldFormat) -> Option<&'a str> {
    field_bytes(rec, f).map(|b| std::str::from_utf8(b).unwrap_or(""))
}

fn sockaddr(b: &[u8]) -> Option<(IpAddr, u16)> {
    let family = u16::from_le_bytes(b.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    match family {
        2 => Some((
            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b.get(4..8)?).ok()?)),
            port,
        )),
        10 => Some((
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b.get(8..24)?).ok()?)),
            port,
        )),
        _ => None,
    }
}

fn symbol(field: &str, v: i128) -> Option<&'static str> {
    Some(match (field, v) {
        ("family", 2) => "AF_INET",
        ("family", 10) => "AF_INET6",
        ("protocol", 6) => "IPPROTO_TCP",
        ("protocol", 17) => "IPPROTO_UDP",
        ("oldstate" | "newstate", s) => match s {
            1 => "TCP_ESTABLISHED",
            2 => "TCP_SYN_SENT",
            3 => "TCP_SYN_RECV",
            4 => "TCP_FIN_WAIT1",
            5 => "TCP_FIN_WAIT2",
            6 => "TCP_TIME_WAIT",
            7 => "TCP_CLOSE",
            8 => "TCP_CLOSE_WAIT",
            9 => "TCP_LAST_ACK",
            10 => "TCP_LISTEN",
            11 => "TCP_CLOSING",
            12 => "TCP_NEW_SYN_RECV",
            _ => return None,
        },
        _ => return None,
    })
}

/// Call `out(field, value)` for every field of a record of event `fmt`.
pub fn for_each_field<'a>(
    fmt: &'a EventFormat,
    letters: Option<&'a [(u64, String)]>,
    rec: &'a [u8],
    mut out: impl FnMut(&'a str, Value<'a>),
) {
    for f in &fmt.fields {
        let name = f.name.as_str();
        let bytes = || match f.kind {
            FieldKind::DataLoc | FieldKind::RelLoc => dynamic(rec, f),
            _ => rec.get(f.offset..f.offset + f.size),
        };
        let value = match f.render {
            Render::Int => match int(rec, f) {
                Some(v) => Value::Int(v),
                None => continue,
            },
            Render::Pointer => match int(rec, f) {
                Some(v) => Value::Pointer(v as u64),
                None => continue,
            },
            Render::TaskState => match int(rec, f) {
                Some(v) => Value::TaskState(v as u64, letters),
                None => continue,
            },
            Render::Symbol => match int(rec, f) {
                Some(v) => symbol(name, v).map_or(Value::Int(v), Value::Symbol),
                None => continue,
            },
            Render::SockRet => {
                let Some(v) = int(rec, f) else { continue };
                out("length", Value::Int(v.max(0)));
                out("error", Value::Int(v.min(0)));
                continue;
            }
            Render::Text => match field_text(rec, f) {
                Some(t) => Value::Text(t),
                None => continue,
            },
            Render::SockAddr => match bytes() {
                Some(b) => match sockaddr(b) {
                    Some((ip, port)) => {
                        out(
                            if name == "saddr" { "src" } else { "dest" },
                            Value::Endpoint(ip, port),
                        );
                        continue;
                    }
                    None => Value::Bytes(b),
                },
                None => continue,
            },
            Render::Ipv4 => match bytes() {
                Some(b) if b.len() == 4 => {
                    Value::Addr(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
                }
                _ => continue,
            },
            Render::Ipv6 => match bytes().and_then(|b| <[u8; 16]>::try_from(b).ok()) {
                Some(a) => Value::Addr(IpAddr::V6(Ipv6Addr::from(a))),
                None => continue,
            },
            Render::Bytes => match bytes() {
                Some(b) => Value::Bytes(b),
                None => continue,
            },
        };
        out(name, value);
    }
}

/// Task-state letters of kernel 6.18 (`sched_switch` print fmt), used when a format file
/// does not list its own.
pub const DEFAULT_STATE_LETTERS: [(u64, &str); 8] = [
    (0x01, "S"),
    (0x02, "D"),
    (0x04, "T"),
    (0x08, "t"),
    (0x10, "X"),
    (0x20, "Z"),
    (0x40, "P"),
    (0x80, "I"),
];

/// [`task_state`] with an event format's letters (see [`EventFormat::print_symbols`]), or
/// [`DEFAULT_STATE_LETTERS`] when it lists none.
///
/// [`EventFormat::print_symbols`]: super::format::EventFormat::print_symbols
pub fn task_state_with(bits: u64, letters: Option<&[(u64, String)]>, out: &mut String) {
    match letters {
        Some(l) => {
            let table: Vec<(u64, &str)> = l.iter().map(|(b, n)| (*b, n.as_str())).collect();
            task_state(bits, &table, out);
        }
        None => task_state(bits, &DEFAULT_STATE_LETTERS, out),
    }
}

/// `prev_state` as the kernel prints it: `R` for no bit, letters joined by `|`, `+` when
/// preempted (the bit above the highest letter).
pub fn task_state(bits: u64, letters: &[(u64, &str)], out: &mut String) {
    let top = letters.iter().map(|(b, _)| *b).max().unwrap_or(0x80);
    // Every bit up to the highest letter's (a format from a file may list any bits, even 0
    // or the top bit: the tracedat fuzz target found both).
    let state = bits & u64::MAX.checked_shr(top.leading_zeros()).unwrap_or(0);
    let preempted = top.checked_shl(1).filter(|&p| p > top).unwrap_or(0);
    if state == 0 {
        out.push('R');
    } else {
        let mut first = true;
        for (b, l) in letters {
            if state & b != 0 {
                if !first {
                    out.push('|');
                }
                out.push_str(l);
                first = false;
            }
        }
    }
    if bits & preempted != 0 {
        out.push('+');
    }
}

impl std::fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(v) => match i64::try_from(*v) {
                Ok(small) => write!(f, "{small}"),
                Err(_) => write!(f, "{v}"),
            },
            Value::Pointer(p) => write!(f, "0x{p:x}"),
            Value::Text(s) => f.write_str(s),
            Value::Addr(a) => write!(f, "{a}"),
            Value::Endpoint(IpAddr::V6(a), p) => write!(f, "[{a}]:{p}"),
            Value::Endpoint(a, p) => write!(f, "{a}:{p}"),
            Value::Symbol(s) => f.write_str(s),
            Value::TaskState(bits, letters) => {
                let mut s = String::new();
                task_state_with(*bits, *letters, &mut s);
                f.write_str(&s)
            }
            Value::Bytes(b) => {
                f.write_str("0x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::format::parse_fields;

    /// `print` as kernels before 4.x declare it (`lisa_example_rtapp_trace.dat`): `char buf;`
    /// of size 0 is the message, to the end of the record, without its newline.
    #[test]
    fn a_size_zero_char_field_is_the_rest_of_the_record() {
        let fields = parse_fields(
            "\tfield:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;\n\
             \tfield:char buf;\toffset:16;\tsize:0;\tsigned:0;\n",
            "print",
        )
        .expect("format");
        let buf = fields.iter().find(|f| f.name == "buf").expect("buf");
        let mut rec = vec![0u8; 16];
        rec.extend_from_slice(b"TRACE_MARKER_START\n\0\0\0");
        assert_eq!(field_text(&rec, buf), Some("TRACE_MARKER_START"));
    }

    /// The kernel's letters: `S`, `D|W`-style joins, `R` for no bit, `+` for the bit above the
    /// highest letter; and letter tables a corrupt format may give (a letter at bit 0, one at
    /// the top bit: the tracedat fuzz target found both) print without overflowing.
    #[test]
    fn task_states_print_as_the_kernel_prints_them_whatever_the_letters() {
        let show = |bits: u64, letters: &[(u64, &str)]| {
            let mut s = String::new();
            task_state(bits, letters, &mut s);
            s
        };
        assert_eq!(show(0x1, &DEFAULT_STATE_LETTERS), "S");
        assert_eq!(show(0x0, &DEFAULT_STATE_LETTERS), "R");
        assert_eq!(show(0x100, &DEFAULT_STATE_LETTERS), "R+");
        assert_eq!(show(0x3, &DEFAULT_STATE_LETTERS), "S|D");
        assert_eq!(show(0x1, &[(0, "Z")]), "R");
        assert_eq!(show(u64::MAX, &[(1 << 63, "T")]), "T");
    }
}
