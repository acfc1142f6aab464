//! Reading the `events` parts: only the columns correlation needs, decoded into [`Event`]s.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{
    Array, AsArray, DictionaryArray, Int32Array, Int64Array, RecordBatch, UInt16Array, UInt64Array,
};
use arrow::datatypes::Int32Type;
use kreq_schemas::events as ev;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::event::{Endpoint, Event, Kind, PrevState};
use crate::table::col;
use crate::{Error, Interner, Result};

/// Columns read for correlation.
const COLUMNS: &[&str] = &[
    ev::TS_NS,
    ev::CPU,
    ev::TID,
    ev::TGID,
    ev::COMM,
    ev::IRQ_CONTEXT,
    ev::EVENT,
    ev::FD,
    ev::RET,
    ev::PREV_TID,
    ev::PREV_STATE,
    ev::NEXT_TID,
    ev::WAKE_TID,
    ev::CHILD_TID,
    ev::SK_ADDR,
    ev::LENGTH,
    ev::SADDR,
    ev::SPORT,
    ev::DADDR,
    ev::DPORT,
];

/// Streams the events of one part file as [`Event`]s, batch by batch.
pub(crate) struct PartReader {
    path: PathBuf,
    rows: usize,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
}

impl PartReader {
    pub(crate) fn open(path: &Path) -> Result<PartReader> {
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let pq = |source| Error::Parquet {
            path: path.to_owned(),
            source,
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
        let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        let schema = builder.parquet_schema();
        let mut leaves = Vec::new();
        for name in COLUMNS {
            let idx = (0..schema.num_columns())
                .find(|&i| schema.column(i).path().parts() == [name.to_string()])
                .ok_or_else(|| Error::Dataset {
                    path: path.to_owned(),
                    msg: format!("no column `{name}` in this events part"),
                })?;
            leaves.push(idx);
        }
        let mask = ProjectionMask::leaves(schema, leaves);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .build()
            .map_err(pq)?;
        Ok(PartReader {
            path: path.to_owned(),
            rows,
            reader,
        })
    }

    /// Rows in the part.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The next batch decoded into `out` (cleared first); false at the end of the part.
    pub(crate) fn next_batch(
        &mut self,
        first_row: u64,
        names: &mut Interner,
        out: &mut Vec<Event>,
    ) -> Result<bool> {
        out.clear();
        let Some(batch) = self.reader.next() else {
            return Ok(false);
        };
        let batch = batch.map_err(|source| Error::Arrow {
            path: self.path.clone(),
            source,
        })?;
        decode(&batch, first_row, names, out).map_err(|msg| Error::Dataset {
            path: self.path.clone(),
            msg,
        })?;
        Ok(true)
    }
}

/// Maps each dictionary value through `f` once; rows then index the mapped values.
fn dict_map<T: Copy>(
    b: &RecordBatch,
    name: &str,
    mut f: impl FnMut(&str) -> T,
) -> std::result::Result<(Vec<T>, DictionaryArray<Int32Type>), String> {
    let d = col::<DictionaryArray<Int32Type>>(b, name)?.clone();
    let values = d
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| format!("column `{name}` is not a string dictionary"))?;
    let mapped = (0..values.len()).map(|i| f(values.value(i))).collect();
    Ok((mapped, d))
}

fn at<T: Copy>(map: &[T], d: &DictionaryArray<Int32Type>, i: usize) -> Option<T> {
    if d.is_null(i) {
        return None;
    }
    map.get(d.keys().value(i) as usize).copied()
}

fn opt_i64(a: &Int64Array, i: usize) -> Option<i64> {
    a.is_valid(i).then(|| a.value(i))
}

fn opt_i32(a: &Int32Array, i: usize) -> Option<i32> {
    a.is_valid(i).then(|| a.value(i))
}

pub(crate) fn decode(
    b: &RecordBatch,
    first_row: u64,
    names: &mut Interner,
    out: &mut Vec<Event>,
) -> std::result::Result<(), String> {
    let ts = col::<Int64Array>(b, ev::TS_NS)?;
    let cpu = col::<UInt16Array>(b, ev::CPU)?;
    let tid = col::<Int32Array>(b, ev::TID)?;
    let tgid = col::<Int32Array>(b, ev::TGID)?;
    let (comms, comm) = dict_map(b, ev::COMM, |s| names.intern(s))?;
    let (irqs, irq) = dict_map(b, ev::IRQ_CONTEXT, |s| s != "task")?;
    let (kinds, event) = dict_map(b, ev::EVENT, Kind::classify)?;
    let fd = col::<Int64Array>(b, ev::FD)?;
    let ret = col::<Int64Array>(b, ev::RET)?;
    let prev = col::<Int32Array>(b, ev::PREV_TID)?;
    let (states, state) = dict_map(b, ev::PREV_STATE, PrevState::parse)?;
    let next = col::<Int32Array>(b, ev::NEXT_TID)?;
    let wake = col::<Int32Array>(b, ev::WAKE_TID)?;
    let child = col::<Int32Array>(b, ev::CHILD_TID)?;
    let sk = col::<UInt64Array>(b, ev::SK_ADDR)?;
    let length = col::<Int64Array>(b, ev::LENGTH)?;
    let (saddrs, saddr) = dict_map(b, ev::SADDR, |s| names.intern(s))?;
    let (daddrs, daddr) = dict_map(b, ev::DADDR, |s| names.intern(s))?;
    let sport = col::<UInt16Array>(b, ev::SPORT)?;
    let dport = col::<UInt16Array>(b, ev::DPORT)?;
    let ep = |a: Option<u32>, p: &UInt16Array, i: usize| {
        a.zip(p.is_valid(i).then(|| p.value(i)))
            .map(|(addr, port)| Endpoint { addr, port })
    };
    out.reserve(b.num_rows());
    for i in 0..b.num_rows() {
        let kind = at(&kinds, &event, i).unwrap_or(Kind::Other);
        let mut e = Event::new(first_row + i as u64, ts.value(i), tid.value(i), kind);
        e.cpu = cpu.value(i);
        e.tgid = opt_i32(tgid, i);
        e.comm = at(&comms, &comm, i).unwrap_or(0);
        e.irq = at(&irqs, &irq, i).unwrap_or(false);
        match kind {
            Kind::Enter(_) => e.fd = opt_i64(fd, i),
            Kind::Exit(_) => e.ret = opt_i64(ret, i),
            Kind::Switch => {
                e.prev_tid = opt_i32(prev, i);
                e.next_tid = opt_i32(next, i);
                e.prev_state = at(&states, &state, i);
            }
            Kind::Wakeup => e.wake_tid = opt_i32(wake, i),
            Kind::Fork => e.child_tid = opt_i32(child, i),
            Kind::SockSend
            | Kind::SockRecv
            | Kind::Probe
            | Kind::RcvSpace
            | Kind::Destroy
            | Kind::SetState => {
                e.sk = sk.is_valid(i).then(|| sk.value(i));
                e.length = opt_i64(length, i);
                e.src = ep(at(&saddrs, &saddr, i), sport, i);
                e.dst = ep(at(&daddrs, &daddr, i), dport, i);
            }
            _ => {}
        }
        out.push(e);
    }
    Ok(())
}
