//! Appending binary ring-buffer records (`kreq record`, trace.dat) to an events batch.

use super::{EventBatchBuilder, EventInfo, RowHead};

use crate::binary::decode::{for_each_field, int, Value};
use crate::binary::format::EventFormat;
use crate::binary::printk::{render, KernelStrings};
use crate::promote::{slot_for, EventKind, Slot, Typed};
use crate::text::body::EventName;

impl EventInfo {
    /// [`EventInfo::slot`] for binary records: compares name addresses, not bytes.
    fn bin_slot(&mut self, i: usize, key: &str) -> Slot {
        let addr = key.as_ptr() as usize ^ (key.len() << 48);
        if let Some(&(a, slot)) = self.bin_slots.get(i) {
            if a == addr {
                return slot;
            }
        }
        let slot = slot_for(self.kind, key);
        if i < self.bin_slots.len() {
            self.bin_slots[i] = (addr, slot);
        } else if i == self.bin_slots.len() {
            self.bin_slots.push((addr, slot));
        }
        slot
    }
}

/// `p` as `0x` and lower-case hex digits (as `{:#x}` prints it), written into `buf`.
fn hex(p: u64, buf: &mut [u8; 18]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let n = (64 - p.leading_zeros()).div_ceil(4).max(1) as usize;
    buf[0] = b'0';
    buf[1] = b'x';
    for i in 0..n {
        buf[1 + n - i] = DIGITS[((p >> (4 * i)) & 0xf) as usize];
    }
    // Only ASCII was written.
    std::str::from_utf8(&buf[..2 + n]).unwrap_or("0x?")
}

/// What the kernel's strings say about a `print`, `bprint` or `bputs` record.
#[derive(Clone, Copy)]
struct KernelMessage<'k> {
    /// A `bprint` whose message was rendered into the scratch text.
    rendered: bool,
    /// The `bprint` format or `bputs` string its pointer names.
    text: Option<&'k str>,
    /// The function its `ip` is in.
    caller: Option<&'k str>,
}

/// Renders a `bprint` record's message into `msg` and looks up what its pointers name; None
/// for other events.
fn kernel_message<'k>(
    fmt: &EventFormat,
    rec: &[u8],
    k: &'k KernelStrings,
    long_size: usize,
    msg: &mut String,
) -> Option<KernelMessage<'k>> {
    // Every other event leaves here before any field lookup: this runs for every record.
    if !matches!(fmt.name.as_str(), "bprint" | "bputs" | "print") {
        return None;
    }
    let field = |name: &str| fmt.fields.iter().find(|f| f.name == name);
    let pointer = |name: &str| field(name).and_then(|f| int(rec, f)).map(|v| v as u64);
    let caller = pointer("ip").and_then(|ip| k.symbol(ip));
    let (text, rendered) = match fmt.name.as_str() {
        "bprint" => {
            let text = pointer("fmt").and_then(|a| k.format(a));
            let args = field("buf").and_then(|b| rec.get(b.offset..));
            let rendered = match (text, args) {
                (Some(t), Some(args)) => render(t, args, long_size, k, msg).is_ok(),
                _ => false,
            };
            // trace-cmd prints the message without its final newline.
            if msg.ends_with('\n') {
                msg.pop();
            }
            (text, rendered)
        }
        "bputs" => (pointer("str").and_then(|a| k.format(a)), false),
        _ => (None, false),
    };
    Some(KernelMessage {
        rendered,
        text,
        caller,
    })
}

impl EventBatchBuilder {
    /// Append one binary record of event `fmt` (its bytes after the common fields included).
    /// With the kernel's strings (and `sizeof(long)`), a `bprint` record's `buf` is its
    /// rendered message and `fmt` its format, a `bputs` record's `str` its text, and `print`,
    /// `bprint` and `bputs` gain `caller`, the function their `ip` is in (what `trace-cmd
    /// report` prints before the message).
    pub fn append_binary(
        &mut self,
        head: &RowHead<'_>,
        fmt: &EventFormat,
        rec: &[u8],
        strings: Option<(&KernelStrings, usize)>,
    ) {
        use std::fmt::Write;
        self.append_head(head);
        let event = match self.format_ids.get(usize::from(fmt.id)).copied().flatten() {
            Some(e) => e,
            None => {
                let e = self.events.id(&EventName::Plain(&fmt.name));
                let at = usize::from(fmt.id);
                if self.format_ids.len() <= at {
                    self.format_ids.resize(at + 1, None);
                }
                self.format_ids[at] = Some(e);
                e
            }
        };
        self.event_keys.push(event);
        let info = &mut self.events.info[event as usize];
        let mut typed = Typed::default();
        let mut any = false;
        let mut text = std::mem::take(&mut self.text);
        if info.kind == EventKind::SchedSwitch && self.state_letters.is_none() {
            let symbols = fmt.print_symbols();
            self.state_letters = Some(symbols).filter(|s| !s.is_empty());
        }
        let letters = self.state_letters.as_deref();
        let mut msg = std::mem::take(&mut self.message);
        msg.clear();
        let kernel =
            strings.and_then(|(k, long_size)| kernel_message(fmt, rec, k, long_size, &mut msg));
        let mut i = 0;
        let mut digits = itoa::Buffer::new();
        let mut hex_buf = [0u8; 18];
        let ips = &mut self.ip_text;
        let states = &mut self.state_text;
        for_each_field(fmt, letters, rec, |key, value| {
            let value = match (&kernel, key) {
                (Some(m), "buf") if m.rendered => Value::Text(msg.as_str()),
                (Some(m), "fmt" | "str") => m.text.map_or(value, Value::Text),
                _ => value,
            };
            let slot = info.bin_slot(i, key);
            i += 1;
            let promoted = match value {
                Value::Int(v) => typed.set_num(slot, v),
                Value::Pointer(p) => typed.set_num(slot, i128::from(p)),
                Value::Text(t) => typed.set(slot, t),
                Value::Symbol(t) => typed.set(slot, t),
                Value::Addr(ip) => typed.set_addr(slot, ips.text(ip), None),
                Value::Endpoint(ip, port) => typed.set_addr(slot, ips.text(ip), Some(port)),
                Value::TaskState(bits, letters) => {
                    let t = states.text(bits, letters);
                    !t.as_str().is_empty() && typed.set(slot, t.as_str())
                }
                _ => {
                    text.clear();
                    let _ = write!(text, "{value}");
                    typed.set(slot, &text)
                }
            };
            if !promoted {
                self.fields.keys().append_value(key);
                let values = self.fields.values();
                match value {
                    Value::Int(v) if i64::try_from(v).is_ok() => {
                        values.append_value(digits.format(v as i64));
                    }
                    Value::Text(t) | Value::Symbol(t) => values.append_value(t),
                    Value::Pointer(p) => values.append_value(hex(p, &mut hex_buf)),
                    Value::Addr(ip) => values.append_value(ips.text(ip).as_str()),
                    _ => {
                        let _ = write!(values, "{value}");
                        values.append_value("");
                    }
                }
                any = true;
            }
        });
        if let Some(caller) = kernel.and_then(|m| m.caller) {
            self.fields.keys().append_value("caller");
            self.fields.values().append_value(caller);
            any = true;
        }
        self.text = text;
        self.message = msg;
        let _ = self.fields.append(any);
        self.append_typed(&typed);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pointers_print_as_format_hex_does() {
        let mut buf = [0u8; 18];
        for p in [
            0u64,
            1,
            0xf,
            0x10,
            0xdead_beef,
            0xffff_8880_0a1b_2c3d,
            u64::MAX,
        ] {
            assert_eq!(super::hex(p, &mut buf), format!("0x{p:x}"));
        }
    }
}
