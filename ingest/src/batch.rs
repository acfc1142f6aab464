//! Building `events` record batches from parsed lines.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Array, Int32Builder, Int64Builder, MapBuilder, MapFieldNames,
    StringBuilder, UInt16Builder, UInt64Builder, UInt8Builder,
};
use arrow::record_batch::RecordBatch;
use hashbrown::HashMap;
use kreq_schemas::events;

use crate::body::EventName;
use crate::intern::Interner;
use crate::line::{EventLine, IrqContext};
use crate::promote::{EventKind, Typed};

const CONTEXTS: [IrqContext; 6] = [
    IrqContext::Task,
    IrqContext::Softirq,
    IrqContext::Hardirq,
    IrqContext::HardirqInSoftirq,
    IrqContext::Nmi,
    IrqContext::NmiInHardirq,
];

/// Event names: tracefs name interned once, with its promotion kind.
#[derive(Debug, Default)]
struct EventNames {
    names: Interner,
    kinds: Vec<EventKind>,
    enter: HashMap<Box<str>, i32>,
    exit: HashMap<Box<str>, i32>,
}

impl EventNames {
    fn id(&mut self, name: &EventName<'_>) -> (i32, EventKind) {
        let (map, short) = match name {
            EventName::Plain(n) => {
                let id = match self.names.get(n) {
                    Some(id) => id,
                    None => self.add(n.to_string()),
                };
                return (id, self.kinds[id as usize]);
            }
            EventName::SysEnter(n) => (&self.enter, *n),
            EventName::SysExit(n) => (&self.exit, *n),
        };
        if let Some(&id) = map.get(short) {
            return (id, self.kinds[id as usize]);
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
        (id, self.kinds[id as usize])
    }

    fn add(&mut self, full: String) -> i32 {
        let kind = EventKind::of(&full);
        let id = self.names.push_new(full);
        self.kinds.push(kind);
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
    fd: Int64Builder,
    count: Int64Builder,
    ret: Int64Builder,
    prev_tid: Int32Builder,
    prev_state: Interner,
    prev_state_keys: Int32Builder,
    next_tid: Int32Builder,
    wake_tid: Int32Builder,
    wake_cpu: Int32Builder,
    parent_tid: Int32Builder,
    child_tid: Int32Builder,
    sk_addr: UInt64Builder,
    skb_addr: UInt64Builder,
    sock_cookie: UInt64Builder,
    length: Int64Builder,
    addrs: Interner,
    saddr: Int32Builder,
    sport: UInt16Builder,
    daddr: Int32Builder,
    dport: UInt16Builder,
    fields: MapBuilder<StringBuilder, StringBuilder>,
}

impl Default for EventBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        let names = MapFieldNames {
            entry: "entries".into(),
            key: "keys".into(),
            value: "values".into(),
        };
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
            fd: Int64Builder::new(),
            count: Int64Builder::new(),
            ret: Int64Builder::new(),
            prev_tid: Int32Builder::new(),
            prev_state: Interner::default(),
            prev_state_keys: Int32Builder::new(),
            next_tid: Int32Builder::new(),
            wake_tid: Int32Builder::new(),
            wake_cpu: Int32Builder::new(),
            parent_tid: Int32Builder::new(),
            child_tid: Int32Builder::new(),
            sk_addr: UInt64Builder::new(),
            skb_addr: UInt64Builder::new(),
            sock_cookie: UInt64Builder::new(),
            length: Int64Builder::new(),
            addrs: Interner::default(),
            saddr: Int32Builder::new(),
            sport: UInt16Builder::new(),
            daddr: Int32Builder::new(),
            dport: UInt16Builder::new(),
            fields: MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new()),
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
        self.ts.push(ev.ts_ns);
        self.cpu.push(ev.cpu);
        self.tid.push(ev.tid);
        self.tgid.append_option(ev.tgid);
        let comm = self.comm.intern(ev.comm);
        self.comm_keys.push(comm);
        match ev.flags {
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
        let (event, kind) = self.events.id(&ev.body.name);
        self.event_keys.push(event);

        scratch.clear();
        ev.body.fields(scratch);
        let mut typed = Typed::default();
        let mut any = false;
        for &(k, v) in scratch.iter() {
            if !typed.promote(kind, k, v) {
                self.fields.keys().append_value(k);
                self.fields.values().append_value(v);
                any = true;
            }
        }
        // Appending an entry list cannot fail: keys and values were appended in pairs.
        let _ = self.fields.append(any);
        self.append_typed(&typed);
    }

    fn append_typed(&mut self, t: &Typed<'_>) {
        self.fd.append_option(t.fd);
        self.count.append_option(t.count);
        self.ret.append_option(t.ret);
        self.prev_tid.append_option(t.prev_tid);
        let state = t.prev_state.map(|s| self.prev_state.intern(s));
        self.prev_state_keys.append_option(state);
        self.next_tid.append_option(t.next_tid);
        self.wake_tid.append_option(t.wake_tid);
        self.wake_cpu.append_option(t.wake_cpu);
        self.parent_tid.append_option(t.parent_tid);
        self.child_tid.append_option(t.child_tid);
        self.sk_addr.append_option(t.sk_addr);
        self.skb_addr.append_option(t.skb_addr);
        self.sock_cookie.append_option(t.sock_cookie);
        self.length.append_option(t.length);
        let s = t.saddr.map(|a| self.addrs.intern(a));
        self.saddr.append_option(s);
        self.sport.append_option(t.sport);
        let d = t.daddr.map(|a| self.addrs.intern(a));
        self.daddr.append_option(d);
        self.dport.append_option(t.dport);
    }

    /// Timestamps appended so far, in input order.
    pub fn timestamps(&self) -> &[i64] {
        &self.ts
    }

    /// Finish into a batch with [`kreq_schemas::events::schema`].
    pub fn finish(mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut ctx = Interner::default();
        for c in CONTEXTS {
            ctx.intern(c.as_str());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(arrow::array::Int64Array::from(self.ts)),
            Arc::new(arrow::array::UInt16Array::from(self.cpu)),
            Arc::new(Int32Array::from(self.tid)),
            Arc::new(self.tgid.finish()),
            self.comm.dictionary(Int32Array::from(self.comm_keys))?,
            Arc::new(self.irqs_off.finish()),
            Arc::new(self.bh_off.finish()),
            Arc::new(self.need_resched.finish()),
            ctx.dictionary(self.irq_context.finish())?,
            Arc::new(self.preempt_depth.finish()),
            Arc::new(self.migrate_disable.finish()),
            self.events
                .names
                .dictionary(Int32Array::from(self.event_keys))?,
            Arc::new(self.fd.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.ret.finish()),
            Arc::new(self.prev_tid.finish()),
            self.prev_state.dictionary(self.prev_state_keys.finish())?,
            Arc::new(self.next_tid.finish()),
            Arc::new(self.wake_tid.finish()),
            Arc::new(self.wake_cpu.finish()),
            Arc::new(self.parent_tid.finish()),
            Arc::new(self.child_tid.finish()),
            Arc::new(self.sk_addr.finish()),
            Arc::new(self.skb_addr.finish()),
            Arc::new(self.sock_cookie.finish()),
            Arc::new(self.length.finish()),
            self.addrs.dictionary(self.saddr.finish())?,
            Arc::new(self.sport.finish()),
            self.addrs.dictionary(self.daddr.finish())?,
            Arc::new(self.dport.finish()),
            Arc::new(self.fields.finish()),
        ];
        RecordBatch::try_new(events::schema(), columns)
    }
}
