//! Building `events` record batches from parsed lines.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Array, Int32Builder, MapBuilder, MapFieldNames, StringBuilder,
    UInt8Builder,
};
use arrow::datatypes::{Int32Type, Int64Type, UInt16Type, UInt64Type};
use arrow::record_batch::RecordBatch;
use hashbrown::HashMap;
use kreq_schemas::events;

use crate::binary::decode::{for_each_field, Value};
use crate::binary::format::EventFormat;
use crate::body::EventName;
use crate::formats::{self, Template};
use crate::intern::Interner;
use crate::line::{EventLine, IrqContext};
use crate::promote::{slot_for, EventKind, InlineStr, Slot, Typed};
use crate::sparse::Sparse;

/// Names of the `fields` map's parts, as the events schema declares them.
fn map_names() -> MapFieldNames {
    MapFieldNames {
        entry: "entries".into(),
        key: "keys".into(),
        value: "values".into(),
    }
}

/// What the builder knows about one event name: how to split and promote its fields.
#[derive(Debug)]
struct EventInfo {
    kind: EventKind,
    template: Option<&'static Template>,
    /// Slot of the field seen at each position last time: events of one kind print their
    /// fields in the same order, so this usually saves matching field names.
    slots: Vec<(Box<str>, Slot)>,
    /// The same for binary records, keyed by the address of the format's field name, which
    /// stays put for the whole recording.
    bin_slots: Vec<(usize, Slot)>,
}

const CONTEXTS: [IrqContext; 6] = [
    IrqContext::Task,
    IrqContext::Softirq,
    IrqContext::Hardirq,
    IrqContext::HardirqInSoftirq,
    IrqContext::Nmi,
    IrqContext::NmiInHardirq,
];

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

    /// Slot of field `key` at position `i`, from the cache when the key is the one seen there
    /// last time.
    fn slot(&mut self, i: usize, key: &str) -> Slot {
        if let Some((k, slot)) = self.slots.get(i) {
            if &**k == key {
                return *slot;
            }
        }
        let slot = slot_for(self.kind, key);
        if i < self.slots.len() {
            self.slots[i] = (key.into(), slot);
        } else if i == self.slots.len() {
            self.slots.push((key.into(), slot));
        }
        slot
    }
}

/// Common columns of one row.
#[derive(Debug, Clone, Copy)]
pub struct RowHead<'a> {
    /// Time in ns.
    pub ts_ns: i64,
    /// CPU.
    pub cpu: u16,
    /// Thread id.
    pub tid: i32,
    /// Thread group id, when known.
    pub tgid: Option<i32>,
    /// Task name.
    pub comm: &'a str,
    /// Flags, when known.
    pub flags: Option<crate::line::Flags>,
}

/// Event names: tracefs name interned once, with its promotion kind.
#[derive(Debug, Default)]
struct EventNames {
    names: Interner,
    info: Vec<EventInfo>,
    enter: HashMap<Box<str>, i32>,
    exit: HashMap<Box<str>, i32>,
}

impl EventNames {
    fn id(&mut self, name: &EventName<'_>) -> i32 {
        let (map, short) = match name {
            EventName::Plain(n) => {
                let id = match self.names.get(n) {
                    Some(id) => id,
                    None => self.add(n.to_string()),
                };
                return id;
            }
            EventName::SysEnter(n) => (&self.enter, *n),
            EventName::SysExit(n) => (&self.exit, *n),
        };
        if let Some(&id) = map.get(short) {
            return id;
        }
        let full = name.to_tracefs();
        let id = match self.names.get(&full) {
            Some(id) => id,
            None => self.add(full),
        };
        match name {
            EventName::SysEnter(n) => self.enter.insert((*n).into(), id),
            _ => self.exit.insert(short.into(), id),
        };
        id
    }

    fn add(&mut self, full: String) -> i32 {
        let info = EventInfo {
            kind: EventKind::of(&full),
            template: formats::template(&full),
            slots: Vec::new(),
            bin_slots: Vec::new(),
        };
        let id = self.names.intern(&full);
        self.info.push(info);
        id
    }
}

/// Accumulates events and produces a [`RecordBatch`] in the `events` schema.
#[derive(Debug)]
pub struct EventBatchBuilder {
    ts: Vec<i64>,
    cpu: Vec<u16>,
    tid: Vec<i32>,
    tgid: Int32Builder,
    comm: Interner,
    comm_keys: Vec<i32>,
    irqs_off: BooleanBuilder,
    bh_off: BooleanBuilder,
    need_resched: BooleanBuilder,
    irq_context: Int32Builder,
    preempt_depth: UInt8Builder,
    migrate_disable: UInt8Builder,
    events: EventNames,
    event_keys: Vec<i32>,
    fd: Sparse<Int64Type>,
    count: Sparse<Int64Type>,
    ret: Sparse<Int64Type>,
    prev_tid: Sparse<Int32Type>,
    prev_state: Interner,
    prev_state_keys: Sparse<Int32Type>,
    next_tid: Sparse<Int32Type>,
    wake_tid: Sparse<Int32Type>,
    wake_cpu: Sparse<Int32Type>,
    parent_tid: Sparse<Int32Type>,
    child_tid: Sparse<Int32Type>,
    sk_addr: Sparse<UInt64Type>,
    skb_addr: Sparse<UInt64Type>,
    sock_cookie: Sparse<UInt64Type>,
    length: Sparse<Int64Type>,
    addrs: Interner,
    saddr: Sparse<Int32Type>,
    sport: Sparse<UInt16Type>,
    daddr: Sparse<Int32Type>,
    dport: Sparse<UInt16Type>,
    fields: MapBuilder<StringBuilder, StringBuilder>,
    /// Scratch for rendering binary values.
    text: String,
    /// Task-state letters from the `sched_switch` format, once seen.
    state_letters: Option<Vec<(u64, String)>>,
    /// Event key of each binary format id seen (formats are fixed for one builder).
    format_ids: Vec<Option<i32>>,
    /// Text of each IP address seen in binary records (few distinct, many repeats).
    ip_text: HashMap<std::net::IpAddr, InlineStr>,
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

/// The text of `ip`, formatted once per builder.
fn ip_text(cache: &mut HashMap<std::net::IpAddr, InlineStr>, ip: std::net::IpAddr) -> InlineStr {
    // An IPv6 text is at most 45 bytes, so it always fits.
    *cache
        .entry(ip)
        .or_insert_with(|| InlineStr::new(&ip.to_string()).unwrap_or(InlineStr::EMPTY))
}

impl Default for EventBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBatchBuilder {
    /// An empty builder with room for `rows` rows in its per-row columns, so they do not
    /// grow (and copy) by doubling.
    pub fn with_capacity(rows: usize) -> Self {
        let mut b = Self::new();
        b.reserve(rows);
        b
    }

    /// Make room for `rows` more rows in the per-row columns.
    pub fn reserve(&mut self, rows: usize) {
        self.ts.reserve(rows);
        self.cpu.reserve(rows);
        self.tid.reserve(rows);
        self.comm_keys.reserve(rows);
        self.event_keys.reserve(rows);
        if self.is_empty() {
            self.tgid = Int32Builder::with_capacity(rows);
            self.irqs_off = BooleanBuilder::with_capacity(rows);
            self.bh_off = BooleanBuilder::with_capacity(rows);
            self.need_resched = BooleanBuilder::with_capacity(rows);
            self.irq_context = Int32Builder::with_capacity(rows);
            self.preempt_depth = UInt8Builder::with_capacity(rows);
            self.migrate_disable = UInt8Builder::with_capacity(rows);
            // About 2.5 map entries per event on real captures, keys under 16 bytes, values
            // under 24. Capacity beyond what is written is never touched, so it costs no
            // memory.
            self.fields = MapBuilder::with_capacity(
                Some(map_names()),
                StringBuilder::with_capacity(rows * 3, rows * 3 * 16),
                StringBuilder::with_capacity(rows * 3, rows * 3 * 24),
                rows,
            );
        }
    }

    /// An empty builder.
    pub fn new() -> Self {
        Self {
            ts: Vec::new(),
            cpu: Vec::new(),
            tid: Vec::new(),
            tgid: Int32Builder::new(),
            comm: Interner::default(),
            comm_keys: Vec::new(),
            irqs_off: BooleanBuilder::new(),
            bh_off: BooleanBuilder::new(),
            need_resched: BooleanBuilder::new(),
            irq_context: Int32Builder::new(),
            preempt_depth: UInt8Builder::new(),
            migrate_disable: UInt8Builder::new(),
            events: EventNames::default(),
            event_keys: Vec::new(),
            fd: Sparse::default(),
            count: Sparse::default(),
            ret: Sparse::default(),
            prev_tid: Sparse::default(),
            prev_state: Interner::default(),
            prev_state_keys: Sparse::default(),
            next_tid: Sparse::default(),
            wake_tid: Sparse::default(),
            wake_cpu: Sparse::default(),
            parent_tid: Sparse::default(),
            child_tid: Sparse::default(),
            sk_addr: Sparse::default(),
            skb_addr: Sparse::default(),
            sock_cookie: Sparse::default(),
            length: Sparse::default(),
            addrs: Interner::default(),
            saddr: Sparse::default(),
            sport: Sparse::default(),
            daddr: Sparse::default(),
            dport: Sparse::default(),
            fields: MapBuilder::new(
                Some(map_names()),
                StringBuilder::new(),
                StringBuilder::new(),
            ),
            text: String::new(),
            state_letters: None,
            format_ids: Vec::new(),
            ip_text: HashMap::new(),
        }
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True when no row was appended.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Append one event. `scratch` is a reusable buffer for its fields.
    pub fn append<'a>(&mut self, ev: &EventLine<'a>, scratch: &mut Vec<(&'a str, &'a str)>) {
        self.append_head(&RowHead {
            ts_ns: ev.ts_ns,
            cpu: ev.cpu,
            tid: ev.tid,
            tgid: ev.tgid,
            comm: ev.comm,
            flags: ev.flags,
        });
        let event = self.events.id(&ev.body.name);
        self.event_keys.push(event);
        let info = &mut self.events.info[event as usize];

        scratch.clear();
        ev.body.fields_with(info.template, scratch);
        let mut typed = Typed::default();
        let mut any = false;
        for (i, &(k, v)) in scratch.iter().enumerate() {
            let slot = info.slot(i, k);
            if !typed.set(slot, v) {
                self.fields.keys().append_value(k);
                self.fields.values().append_value(v);
                any = true;
            }
        }
        // Appending an entry list cannot fail: keys and values were appended in pairs.
        let _ = self.fields.append(any);
        self.append_typed(&typed);
    }

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
        let ip_cache = &mut self.ip_text;
        for_each_field(fmt, letters, rec, |key, value| {
            let slot = info.bin_slot(i, key);
            i += 1;
            let promoted = match value {
                Value::Int(v) => typed.set_num(slot, v),
                Value::Pointer(p) => typed.set_num(slot, i128::from(p)),
                Value::Text(t) => typed.set(slot, t),
                Value::Symbol(t) => typed.set(slot, t),
                Value::Addr(ip) => typed.set_addr(slot, ip_text(ip_cache, ip), None),
                Value::Endpoint(ip, port) => {
                    typed.set_addr(slot, ip_text(ip_cache, ip), Some(port))
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
                    Value::Addr(ip) => values.append_value(ip_text(ip_cache, ip).as_str()),
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

    fn append_head(&mut self, h: &RowHead<'_>) {
        self.ts.push(h.ts_ns);
        self.cpu.push(h.cpu);
        self.tid.push(h.tid);
        self.tgid.append_option(h.tgid);
        let comm = self.comm.intern(h.comm);
        self.comm_keys.push(comm);
        match h.flags {
            Some(f) => {
                self.irqs_off.append_value(f.irqs_off);
                self.bh_off.append_value(f.bh_off);
                self.need_resched.append_value(f.need_resched);
                let ctx = CONTEXTS.iter().position(|c| *c == f.context).unwrap_or(0);
                self.irq_context.append_value(ctx as i32);
                self.preempt_depth.append_value(f.preempt_depth);
                self.migrate_disable.append_option(f.migrate_disable);
            }
            None => {
                self.irqs_off.append_null();
                self.bh_off.append_null();
                self.need_resched.append_null();
                self.irq_context.append_null();
                self.preempt_depth.append_null();
                self.migrate_disable.append_null();
            }
        }
    }

    fn append_typed(&mut self, t: &Typed) {
        let row = self.ts.len() - 1;
        self.fd.set(row, t.fd);
        self.count.set(row, t.count);
        self.ret.set(row, t.ret);
        self.prev_tid.set(row, t.prev_tid);
        let state = t.prev_state.map(|s| self.prev_state.intern(s.as_str()));
        self.prev_state_keys.set(row, state);
        self.next_tid.set(row, t.next_tid);
        self.wake_tid.set(row, t.wake_tid);
        self.wake_cpu.set(row, t.wake_cpu);
        self.parent_tid.set(row, t.parent_tid);
        self.child_tid.set(row, t.child_tid);
        self.sk_addr.set(row, t.sk_addr);
        self.skb_addr.set(row, t.skb_addr);
        self.sock_cookie.set(row, t.sock_cookie);
        self.length.set(row, t.length);
        let s = t.saddr.map(|a| self.addrs.intern(a.as_str()));
        self.saddr.set(row, s);
        self.sport.set(row, t.sport);
        let d = t.daddr.map(|a| self.addrs.intern(a.as_str()));
        self.daddr.set(row, d);
        self.dport.set(row, t.dport);
    }

    /// Timestamps appended so far, in input order.
    pub fn timestamps(&self) -> &[i64] {
        &self.ts
    }

    /// Finish into a batch with [`kreq_schemas::events::schema`].
    pub fn finish(mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        self.take_batch()
    }

    /// The rows appended so far as a batch with [`kreq_schemas::events::schema`]; the builder
    /// is then empty but keeps its dictionaries and per-event caches for the next batch.
    pub fn take_batch(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let n = self.ts.len();
        let mut ctx = Interner::default();
        for c in CONTEXTS {
            ctx.intern(c.as_str());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(arrow::array::Int64Array::from(std::mem::take(&mut self.ts))),
            Arc::new(arrow::array::UInt16Array::from(std::mem::take(
                &mut self.cpu,
            ))),
            Arc::new(Int32Array::from(std::mem::take(&mut self.tid))),
            Arc::new(self.tgid.finish()),
            self.comm
                .dictionary(Int32Array::from(std::mem::take(&mut self.comm_keys)))?,
            Arc::new(self.irqs_off.finish()),
            Arc::new(self.bh_off.finish()),
            Arc::new(self.need_resched.finish()),
            ctx.dictionary(self.irq_context.finish())?,
            Arc::new(self.preempt_depth.finish()),
            Arc::new(self.migrate_disable.finish()),
            self.events
                .names
                .dictionary(Int32Array::from(std::mem::take(&mut self.event_keys)))?,
            Arc::new(self.fd.finish(n)),
            Arc::new(self.count.finish(n)),
            Arc::new(self.ret.finish(n)),
            Arc::new(self.prev_tid.finish(n)),
            self.prev_state.dictionary(self.prev_state_keys.finish(n))?,
            Arc::new(self.next_tid.finish(n)),
            Arc::new(self.wake_tid.finish(n)),
            Arc::new(self.wake_cpu.finish(n)),
            Arc::new(self.parent_tid.finish(n)),
            Arc::new(self.child_tid.finish(n)),
            Arc::new(self.sk_addr.finish(n)),
            Arc::new(self.skb_addr.finish(n)),
            Arc::new(self.sock_cookie.finish(n)),
            Arc::new(self.length.finish(n)),
            self.addrs.dictionary(self.saddr.finish(n))?,
            Arc::new(self.sport.finish(n)),
            self.addrs.dictionary(self.daddr.finish(n))?,
            Arc::new(self.dport.finish(n)),
            Arc::new(self.fields.finish()),
            // Filled by `kreq correlate`.
            arrow::array::new_null_array(&arrow::datatypes::DataType::UInt64, n),
            arrow::array::new_null_array(&arrow::datatypes::DataType::UInt64, n),
        ];
        for s in [
            &mut self.fd,
            &mut self.count,
            &mut self.ret,
            &mut self.length,
        ] {
            s.clear();
        }
        for s in [
            &mut self.prev_tid,
            &mut self.prev_state_keys,
            &mut self.next_tid,
            &mut self.wake_tid,
            &mut self.wake_cpu,
            &mut self.parent_tid,
            &mut self.child_tid,
            &mut self.saddr,
            &mut self.daddr,
        ] {
            s.clear();
        }
        for s in [&mut self.sk_addr, &mut self.skb_addr, &mut self.sock_cookie] {
            s.clear();
        }
        for s in [&mut self.sport, &mut self.dport] {
            s.clear();
        }
        RecordBatch::try_new(events::schema(), columns)
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
