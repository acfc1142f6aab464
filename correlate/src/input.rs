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
    v6: V6Fields,
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
        let v6 = V6Fields::open(path)?;
        Ok(PartReader {
            path: path.to_owned(),
            rows,
            reader,
            v6,
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
        decode(&batch, first_row, names, &mut self.v6, out).map_err(|msg| Error::Dataset {
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
    v6: &mut V6Fields,
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
    let (saddrs, saddr) = dict_map(b, ev::SADDR, |s| names.intern(unmapped(s)))?;
    let (daddrs, daddr) = dict_map(b, ev::DADDR, |s| names.intern(unmapped(s)))?;
    let (placeholders, _) = dict_map(b, ev::SADDR, v4_placeholder)?;
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
                if has_v6_fields(kind) && at(&placeholders, &saddr, i).unwrap_or(false) {
                    if let Some((src, dst)) = v6.next()? {
                        e.src = ep(Some(names.intern(unmapped(&src))), sport, i);
                        e.dst = ep(Some(names.intern(unmapped(&dst))), dport, i);
                    }
                }
            }
            _ => {}
        }
        out.push(e);
    }
    Ok(())
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as the IPv4 endpoint it is: a dual-stack
/// server's `tcp_probe` names its IPv4 peers so (`sockaddr_in6`), while the same socket's
/// `inet_sock_set_state` and `tcp_rcv_space_adjust` name them by their IPv4 fields.
pub(crate) fn unmapped(addr: &str) -> &str {
    match addr.strip_prefix("::ffff:") {
        Some(v4) if v4.parse::<std::net::Ipv4Addr>().is_ok() => v4,
        _ => addr,
    }
}

/// Socket events whose IPv4 address fields are wrong for an IPv6 socket (see [`V6Fields`]).
fn has_v6_fields(kind: Kind) -> bool {
    matches!(kind, Kind::SetState | Kind::RcvSpace | Kind::Destroy)
}

/// The IPv4 `saddr` an IPv6 socket's events carry: unset, or LOOPBACK4_IPV6. A real IPv4
/// connection never has either with a port, so only such rows can need their IPv6 fields.
fn v4_placeholder(saddr: &str) -> bool {
    saddr == "0.0.0.0" || saddr == "127.0.0.6"
}

/// The `saddr_v6`/`daddr_v6` fields (`saddrv6`/`daddrv6` in text) of a part's `AF_INET6`
/// socket events, in row order. The kernel fills the IPv4 `saddr`/`daddr` of
/// `inet_sock_set_state` and `tcp_event_sk` events from `inet_saddr`, which an IPv6 socket
/// leaves `0.0.0.0`, or sets to `127.0.0.6` (LOOPBACK4_IPV6) on `::1`, while `tcp_probe`
/// prints the real address (capture `v6-dualstack`: without these fields 4 of its 10 requests
/// lost their client and one was not found).
///
/// Only those events' rows of the `fields` map are decoded, and of those only rows whose IPv4
/// `saddr` is a placeholder (a row selection from the `event` and `saddr` columns):
/// projecting the map for every row made `kreq correlate` 22% slower on `s2-c4` replicated 20
/// times (median of 5 runs, 1.67 s against 1.37 s), and selecting every socket-state row
/// (5.6% of that capture's events, scattered) cost about as much.
#[derive(Default)]
pub(crate) struct V6Fields {
    reader: Option<parquet::arrow::arrow_reader::ParquetRecordBatchReader>,
    batch: Option<arrow::array::MapArray>,
    pos: usize,
}

impl std::fmt::Debug for V6Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V6Fields").field("pos", &self.pos).finish()
    }
}

impl V6Fields {
    fn open(path: &Path) -> Result<V6Fields> {
        use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
        let pq = |source| Error::Parquet {
            path: path.to_owned(),
            source,
        };
        let open = || {
            File::open(path).map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(open()?).map_err(pq)?;
        let schema = builder.parquet_schema();
        let leaf = |name: &'static str| -> Vec<usize> {
            (0..schema.num_columns())
                .filter(|&i| schema.column(i).path().parts()[0] == name)
                .collect()
        };
        let fields = leaf(ev::FIELDS);
        if fields.is_empty() {
            return Ok(V6Fields::default());
        }
        let mask = ProjectionMask::leaves(schema, [leaf(ev::EVENT), leaf(ev::SADDR)].concat());
        let events = builder.with_projection(mask).build().map_err(pq)?;
        let mut runs: Vec<RowSelector> = Vec::new();
        let mut any = false;
        for b in events {
            let b = b.map_err(|source| Error::Arrow {
                path: path.to_owned(),
                source,
            })?;
            let (wanted, d) = dict_map(&b, ev::EVENT, |n| has_v6_fields(Kind::classify(n)))
                .map_err(|msg| Error::Dataset {
                    path: path.to_owned(),
                    msg,
                })?;
            let (placeholder, sa) =
                dict_map(&b, ev::SADDR, v4_placeholder).map_err(|msg| Error::Dataset {
                    path: path.to_owned(),
                    msg,
                })?;
            for i in 0..b.num_rows() {
                let w = at(&wanted, &d, i).unwrap_or(false)
                    && at(&placeholder, &sa, i).unwrap_or(false);
                any |= w;
                match runs.last_mut() {
                    Some(r) if r.skip != w => r.row_count += 1,
                    _ => runs.push(if w {
                        RowSelector::select(1)
                    } else {
                        RowSelector::skip(1)
                    }),
                }
            }
        }
        if !any {
            return Ok(V6Fields::default());
        }
        let builder = ParquetRecordBatchReaderBuilder::try_new(open()?).map_err(pq)?;
        let mask = ProjectionMask::leaves(builder.parquet_schema(), fields);
        let reader = builder
            .with_projection(mask)
            .with_row_selection(RowSelection::from(runs))
            .build()
            .map_err(pq)?;
        Ok(V6Fields {
            reader: Some(reader),
            batch: None,
            pos: 0,
        })
    }

    /// The next socket event's IPv6 source and destination, when it is an `AF_INET6` one.
    fn next(&mut self) -> std::result::Result<Option<(String, String)>, String> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        while self.batch.as_ref().is_none_or(|b| self.pos >= b.len()) {
            let Some(b) = reader.next() else {
                return Err("fewer `fields` rows than socket events".to_owned());
            };
            let b = b.map_err(|e| e.to_string())?;
            let m = b
                .column_by_name(ev::FIELDS)
                .and_then(|c| c.as_map_opt().cloned())
                .ok_or("column `fields` is not a map")?;
            self.batch = Some(m);
            self.pos = 0;
        }
        let (m, i) = (self.batch.as_ref().ok_or("no batch")?, self.pos);
        self.pos += 1;
        if m.is_null(i) {
            return Ok(None);
        }
        let (start, end) = (
            m.value_offsets()[i] as usize,
            m.value_offsets()[i + 1] as usize,
        );
        let (Some(keys), Some(values)) = (
            m.keys().as_string_opt::<i32>(),
            m.values().as_string_opt::<i32>(),
        ) else {
            return Err("`fields` is not a map of strings".to_owned());
        };
        let (mut fam, mut src, mut dst) = (None, None, None);
        for j in start..end {
            match keys.value(j) {
                "family" => fam = Some(values.value(j)),
                "saddr_v6" | "saddrv6" => src = Some(values.value(j)),
                "daddr_v6" | "daddrv6" => dst = Some(values.value(j)),
                _ => {}
            }
        }
        Ok(match (fam, src, dst) {
            (Some("AF_INET6"), Some(s), Some(d)) => Some((s.to_owned(), d.to_owned())),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_endpoint() {
        assert_eq!(unmapped("::ffff:127.0.0.1"), "127.0.0.1");
        assert_eq!(unmapped("::1"), "::1");
        assert_eq!(unmapped("::ffff:abcd"), "::ffff:abcd");
        assert_eq!(unmapped("10.0.0.1"), "10.0.0.1");
    }
}
