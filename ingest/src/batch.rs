//! Building `events` record batches from parsed lines (and, in `batch/binary.rs`, from binary
//! ring-buffer records).

mod arrays;
mod binary;
mod texts;

use arrow::array::{
    BooleanBuilder, Int32Builder, MapBuilder, MapFieldNames, StringBuilder, UInt8Builder,
};
use arrow::datatypes::{Int32Type, Int64Type, UInt16Type, UInt64Type};
use hashbrown::HashMap;

use crate::intern::Interner;
use crate::promote::{slot_for, EventKind, Slot, Typed};
use crate::rows::IrqContext;
use crate::sparse::Sparse;
use crate::text::body::EventName;
use crate::text::formats::{self, Template};
use crate::text::line::EventLine;

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
    pub flags: Option<crate::rows::Flags>,
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

/// Accumulates events and produces a [`RecordBatch`](arrow::record_batch::RecordBatch) in the `events` schema.
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
    op: Sparse<Int64Type>,
    utime: Sparse<UInt64Type>,
    fields: MapBuilder<StringBuilder, StringBuilder>,
    /// Scratch for rendering binary values.
    text: String,
    /// Scratch for a `bprint` message.
    message: String,
    /// Task-state letters from the `sched_switch` format, once seen.
    state_letters: Option<Vec<(u64, String)>>,
    /// Event key of each binary format id seen (formats are fixed for one builder).
    format_ids: Vec<Option<i32>>,
    /// Text of each IP address seen in binary records (few distinct, many repeats).
    ip_text: texts::IpTexts,
    /// Text of each `prev_state` value seen in binary records.
    state_text: texts::StateTexts,
}

impl Default for EventBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBatchBuilder {
    /// Make room for `rows` more rows in the per-row columns, so they do not grow (and copy)
    /// by doubling.
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
            op: Sparse::default(),
            utime: Sparse::default(),
            fields: MapBuilder::new(
                Some(map_names()),
                StringBuilder::new(),
                StringBuilder::new(),
            ),
            text: String::new(),
            message: String::new(),
            state_letters: None,
            format_ids: Vec::new(),
            ip_text: texts::IpTexts::default(),
            state_text: texts::StateTexts::default(),
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

    pub(crate) fn append_head(&mut self, h: &RowHead<'_>) {
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

    pub(crate) fn append_typed(&mut self, t: &Typed) {
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
        self.op.set(row, t.op);
        self.utime.set(row, t.utime);
    }
}
