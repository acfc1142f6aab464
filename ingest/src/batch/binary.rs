//! Appending binary ring-buffer records (`kreq record`, trace.dat) to an events batch.

use super::{EventBatchBuilder, EventInfo, RowHead};

use crate::binary::decode::{for_each_field, Value};
use crate::binary::format::EventFormat;
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

impl EventBatchBuilder {
    /// Append one binary record of event `fmt` (its bytes after the common fields included).
    pub fn append_binary(&mut self, head: &RowHead<'_>, fmt: &EventFormat, rec: &[u8]) {
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
        let mut i = 0;
        let mut digits = itoa::Buffer::new();
        let mut hex_buf = [0u8; 18];
        let ips = &mut self.ip_text;
        let states = &mut self.state_text;
        for_each_field(fmt, letters, rec, |key, value| {
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
        self.text = text;
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
