//! Turning a builder's columns into an `events` record batch.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array};
use arrow::record_batch::RecordBatch;
use kreq_schemas::events;

use super::{EventBatchBuilder, CONTEXTS};
use crate::intern::Interner;

impl EventBatchBuilder {
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
            Arc::new(self.op.finish(n)),
            Arc::new(self.utime.finish(n)),
            Arc::new(self.fields.finish()),
            // Filled by `kreq correlate`.
            arrow::array::new_null_array(&arrow::datatypes::DataType::UInt64, n),
            arrow::array::new_null_array(&arrow::datatypes::DataType::UInt64, n),
        ];
        RecordBatch::try_new(events::schema(), columns)
    }
}
