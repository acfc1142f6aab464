//! Reading the `events` parts: only the columns correlation needs, decoded into [`Event`]s.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{
    Array, AsArray, BooleanArray, DictionaryArray, Int32Array, Int64Array, RecordBatch,
    UInt16Array, UInt64Array,
};
use arrow::datatypes::Int32Type;
use kreq_schemas::events as ev;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use crate::event::{Endpoint, Event, Kind, PrevState, Sys};
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

/// Columns read when the part has them: schema 6 added `op` and `utime`, and events of older
/// schemas correlate without what they tell (see [`Event::signal_wait`]); `need_resched`
/// is nullable (traces that do not give the flag).
const OPTIONAL_COLUMNS: &[&str] = &[ev::OP, ev::UTIME, ev::NEED_RESCHED];

/// Streams the events of one part file as [`Event`]s, batch by batch.
pub(crate) struct PartReader {
    path: PathBuf,
    rows: usize,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    side: SideFields,
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
        // The footer is parsed once; the side readers of [`SideFields`] reuse it.
        let meta = ArrowReaderMetadata::load(&file, Default::default()).map_err(pq)?;
        let side = SideFields::open(path, &file, &meta)?;
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta);
        let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        let schema = builder.parquet_schema();
        let leaf = |name: &str| {
            (0..schema.num_columns()).find(|&i| schema.column(i).path().parts() == [name])
        };
        let mut leaves = Vec::new();
        for name in COLUMNS {
            let idx = leaf(name).ok_or_else(|| Error::Dataset {
                path: path.to_owned(),
                msg: format!("no column `{name}` in this events part"),
            })?;
            leaves.push(idx);
        }
        leaves.extend(OPTIONAL_COLUMNS.iter().filter_map(|name| leaf(name)));

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
            side,
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
        decode(&batch, first_row, names, &mut self.side, out).map_err(|msg| Error::Dataset {
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
    side: &mut SideFields,
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
    let has = |name: &'static str| b.column_by_name(name).is_some().then_some(name);
    let op = has(ev::OP).map(|n| col::<Int64Array>(b, n)).transpose()?;
    let utime = has(ev::UTIME)
        .map(|n| col::<UInt64Array>(b, n))
        .transpose()?;
    let resched = has(ev::NEED_RESCHED)
        .map(|n| col::<BooleanArray>(b, n))
        .transpose()?;
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
            Kind::Enter(sys) => {
                e.fd = opt_i64(fd, i);
                if sys == Sys::Futex {
                    e.signal_wait = match (op, utime) {
                        (Some(op), Some(utime)) => untimed_signal_wait(
                            opt_i64(op, i),
                            utime.is_valid(i).then(|| utime.value(i)),
                        ),
                        _ if side.selects(kind, None, false) => side.next()?.signal_wait(),
                        _ => false,
                    };
                }
            }
            Kind::Exit(_) => {
                e.ret = opt_i64(ret, i);
                e.need_resched = resched.is_some_and(|r| r.is_valid(i) && r.value(i));
            }
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
                let placeholder = at(&placeholders, &saddr, i).unwrap_or(false);
                if side.selects(kind, e.sk, placeholder) {
                    let f = side.next()?;
                    match (f.family.as_deref(), f.saddr_v6, f.daddr_v6) {
                        (Some("AF_INET6"), Some(src), Some(dst)) if has_v6_fields(kind) => {
                            e.src = ep(Some(names.intern(unmapped(&src))), sport, i);
                            e.dst = ep(Some(names.intern(unmapped(&dst))), dport, i);
                        }
                        (Some("AF_UNIX" | "1" | "0x1"), ..) if is_sock_length(kind) => {
                            if let Some(sk) = e.sk {
                                let (end, peer) = unix_ends(sk, names);
                                e.src = Some(end);
                                e.dst = Some(peer);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        out.push(e);
    }
    Ok(())
}

/// A futex wait with no timeout on glibc's realtime clock (`FUTEX_WAIT_BITSET |
/// FUTEX_CLOCK_REALTIME`, `utime` 0): how glibc's `sem_wait` and a `pthread_cond_wait` on a
/// default condition variable block, and so CPython's `Lock.acquire()` and a pool worker's
/// `queue.get()`. Mutexes wait with `FUTEX_WAIT`; timed waits (CPython's GIL) pass a `utime`.
fn untimed_signal_wait(op: Option<i64>, utime: Option<u64>) -> bool {
    const CMD_MASK: i64 = 127;
    const WAIT_BITSET: i64 = 9;
    const CLOCK_REALTIME: i64 = 256;
    op.is_some_and(|op| op & CMD_MASK == WAIT_BITSET && op & CLOCK_REALTIME != 0)
        && utime == Some(0)
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

/// Socket events whose IPv4 address fields are wrong for an IPv6 socket (see [`SideFields`]).
fn has_v6_fields(kind: Kind) -> bool {
    matches!(kind, Kind::SetState | Kind::RcvSpace | Kind::Destroy)
}

/// `sock_send_length`/`sock_recv_length`: they fire for sockets of every family.
fn is_sock_length(kind: Kind) -> bool {
    matches!(kind, Kind::SockSend | Kind::SockRecv)
}

/// `sys_enter_futex`, whose `op` and `utime` tell an untimed signal wait.
fn is_futex(kind: Kind) -> bool {
    kind == Kind::Enter(Sys::Futex)
}

/// Events that name a socket address with its TCP connection.
fn is_tcp(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Probe | Kind::RcvSpace | Kind::SetState | Kind::Destroy
    )
}

/// The two endpoints kreq names a unix stream socket `sk` by, since the kernel names no
/// address: the socket itself (`unix:SK`, port 65535) and whichever socket turns out to be
/// its peer (`unix:SK-peer`, port 1). The ports make the first side seen sending a client
/// by [`crate::socket::role_from_ports`] when no `connect` or `accept` says otherwise.
pub(crate) fn unix_ends(sk: u64, names: &mut Interner) -> (Endpoint, Endpoint) {
    (
        Endpoint {
            addr: names.intern(&format!("unix:{sk:x}")),
            port: 65535,
        },
        Endpoint {
            addr: names.intern(&format!("unix:{sk:x}-peer")),
            port: 1,
        },
    )
}

/// The IPv4 `saddr` an IPv6 socket's events carry: unset, or LOOPBACK4_IPV6. A real IPv4
/// connection never has either with a port, so only such rows can need their IPv6 fields.
fn v4_placeholder(saddr: &str) -> bool {
    saddr == "0.0.0.0" || saddr == "127.0.0.6"
}

/// The few `fields` map entries correlation reads, for the rows that need them, in row order:
///
/// - `saddr_v6`/`daddr_v6` (`saddrv6`/`daddrv6` in text) of `AF_INET6` socket events. The
///   kernel fills the IPv4 `saddr`/`daddr` of `inet_sock_set_state` and `tcp_event_sk` events
///   from `inet_saddr`, which an IPv6 socket leaves `0.0.0.0`, or sets to `127.0.0.6`
///   (LOOPBACK4_IPV6) on `::1`, while `tcp_probe` prints the real address (capture
///   `v6-dualstack`: without these fields 4 of its 10 requests lost their client and one was
///   not found).
/// - `family` of `sock_*_length` events on sockets that no TCP event of the part names: a unix
///   stream socket has no addresses at all, only its socket address (see
///   [`crate::link`]'s unix sockets).
///
/// Only those rows of the `fields` map are decoded (a row selection from the `event`, `saddr`
/// and `sk_addr` columns): projecting the map for every row made `kreq correlate` 22% slower
/// on `s2-c4` replicated 20 times (median of 5 runs, 1.67 s against 1.37 s), and selecting
/// every socket-state row (5.6% of that capture's events, scattered) cost about as much.
#[derive(Default)]
pub(crate) struct SideFields {
    reader: Option<parquet::arrow::arrow_reader::ParquetRecordBatchReader>,
    batch: Option<arrow::array::MapArray>,
    pos: usize,
    /// Socket addresses the part's TCP events name: their `sock_*_length` rows are TCP.
    tcp: hashbrown::HashSet<u64>,
    /// The part is of schema 5 or older, whose futex `op` and `utime` are in the map.
    futex: bool,
}

/// The fields of a selected row that correlation reads.
#[derive(Debug, Default)]
pub(crate) struct Side {
    family: Option<String>,
    saddr_v6: Option<String>,
    daddr_v6: Option<String>,
    op: Option<String>,
    utime: Option<String>,
}

impl Side {
    /// A futex wait of an older part's map (see [`untimed_signal_wait`]).
    fn signal_wait(&self) -> bool {
        // Decimal from binary records, `0x%08lx` from trace_pipe text.
        let int = |v: Option<&str>| {
            v.and_then(|v| match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => v.parse().ok(),
            })
        };
        let op = int(self.op.as_deref()).and_then(|o| i64::try_from(o).ok());
        untimed_signal_wait(op, int(self.utime.as_deref()))
    }
}

impl std::fmt::Debug for SideFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideFields")
            .field("pos", &self.pos)
            .finish()
    }
}

impl SideFields {
    /// The side reader of the part at `path` (open as `file`, its footer read as `meta`).
    fn open(path: &Path, file: &File, meta: &ArrowReaderMetadata) -> Result<SideFields> {
        use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
        let pq = |source| Error::Parquet {
            path: path.to_owned(),
            source,
        };
        let reopen = || {
            file.try_clone()
                .map(|f| ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta.clone()))
                .map_err(|source| Error::Io {
                    path: path.to_owned(),
                    source,
                })
        };
        let builder = reopen()?;
        let schema = builder.parquet_schema();
        let leaf = |name: &'static str| -> Vec<usize> {
            (0..schema.num_columns())
                .filter(|&i| schema.column(i).path().parts()[0] == name)
                .collect()
        };
        let fields = leaf(ev::FIELDS);
        if fields.is_empty() {
            return Ok(SideFields::default());
        }
        let futex = leaf(ev::OP).is_empty();
        let mask = ProjectionMask::leaves(
            schema,
            [leaf(ev::EVENT), leaf(ev::SADDR), leaf(ev::SK_ADDR)].concat(),
        );
        let events = builder.with_projection(mask).build().map_err(pq)?;
        // The rows that may be selected (their number, kind, socket address and whether their
        // `saddr` is an IPv4 placeholder), and the sockets TCP events name.
        let mut candidates: Vec<(usize, Kind, Option<u64>, bool)> = Vec::new();
        let mut row = 0;
        let mut tcp = hashbrown::HashSet::new();
        for b in events {
            let b = b.map_err(|source| Error::Arrow {
                path: path.to_owned(),
                source,
            })?;
            let bad = |msg| Error::Dataset {
                path: path.to_owned(),
                msg,
            };
            let (kinds, d) = dict_map(&b, ev::EVENT, Kind::classify).map_err(bad)?;
            let (placeholder, sa) = dict_map(&b, ev::SADDR, v4_placeholder).map_err(bad)?;
            let sk = col::<UInt64Array>(&b, ev::SK_ADDR).map_err(bad)?;
            for i in 0..b.num_rows() {
                let kind = at(&kinds, &d, i).unwrap_or(Kind::Other);
                let s = sk.is_valid(i).then(|| sk.value(i));
                if is_tcp(kind) {
                    tcp.extend(s);
                }
                if has_v6_fields(kind) || is_sock_length(kind) || (futex && is_futex(kind)) {
                    let placeholder = at(&placeholder, &sa, i).unwrap_or(false);
                    candidates.push((row + i, kind, s, placeholder));
                }
            }
            row += b.num_rows();
        }
        let mut side = SideFields {
            tcp,
            futex,
            ..SideFields::default()
        };
        // Skip and select runs over the whole part.
        let mut runs: Vec<RowSelector> = Vec::new();
        let mut next = 0;
        for &(i, kind, sk, placeholder) in &candidates {
            if !side.selects(kind, sk, placeholder) {
                continue;
            }
            if i > next {
                runs.push(RowSelector::skip(i - next));
            }
            match runs.last_mut() {
                Some(r) if !r.skip && i == next => r.row_count += 1,
                _ => runs.push(RowSelector::select(1)),
            }
            next = i + 1;
        }
        if runs.is_empty() {
            return Ok(side);
        }
        if row > next {
            runs.push(RowSelector::skip(row - next));
        }
        let builder = reopen()?;
        let mask = ProjectionMask::leaves(builder.parquet_schema(), fields);
        let reader = builder
            .with_projection(mask)
            .with_row_selection(RowSelection::from(runs))
            .build()
            .map_err(pq)?;
        side.reader = Some(reader);
        Ok(side)
    }

    /// Whether the row of an event of `kind` on socket `sk` is one whose fields are read: a
    /// TCP event of an IPv6 socket (its IPv4 `saddr` a placeholder), or a `sock_*_length` of
    /// a socket no TCP event of the part names (a unix socket, or a TCP one that was quiet);
    /// in a part of schema 5 or older, a futex call (see [`Event::signal_wait`]).
    fn selects(&self, kind: Kind, sk: Option<u64>, placeholder: bool) -> bool {
        (self.futex && is_futex(kind))
            || (has_v6_fields(kind) && placeholder)
            || (is_sock_length(kind) && sk.is_some_and(|s| !self.tcp.contains(&s)))
    }

    /// The next selected row's fields.
    fn next(&mut self) -> std::result::Result<Side, String> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(Side::default());
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
            return Ok(Side::default());
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
        let mut side = Side::default();
        for j in start..end {
            let v = || Some(values.value(j).to_owned());
            match keys.value(j) {
                "family" => side.family = v(),
                "saddr_v6" | "saddrv6" => side.saddr_v6 = v(),
                "daddr_v6" | "daddrv6" => side.daddr_v6 = v(),
                "op" => side.op = v(),
                "utime" => side.utime = v(),
                _ => {}
            }
        }
        Ok(side)
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

    #[test]
    fn an_untimed_signal_wait_is_a_realtime_bitset_wait_with_no_timeout() {
        // glibc's `sem_wait` in a CPython pool worker (`grpc` model): op 393 =
        // FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME.
        assert!(untimed_signal_wait(Some(393), Some(0)));
        // A shared (not private) semaphore.
        assert!(untimed_signal_wait(Some(265), Some(0)));
        // CPython's GIL: a timed wait; the same op with a timeout.
        assert!(!untimed_signal_wait(Some(137), Some(0x7ffc_1234)));
        assert!(!untimed_signal_wait(Some(393), Some(0x7ffc_1234)));
        // FUTEX_WAIT_PRIVATE (a mutex, Go's runtime) and FUTEX_WAKE_PRIVATE.
        assert!(!untimed_signal_wait(Some(128), Some(0)));
        assert!(!untimed_signal_wait(Some(129), Some(0)));
        // Events of schema 5 have no `op`.
        assert!(!untimed_signal_wait(None, None));
        // Their map: decimal from binary records, `0x%08lx` from trace_pipe text.
        let side = |op: &str, utime: &str| Side {
            op: Some(op.to_owned()),
            utime: Some(utime.to_owned()),
            ..Side::default()
        };
        assert!(side("393", "0").signal_wait());
        assert!(side("0x00000189", "0x00000000").signal_wait());
        assert!(!side("0x00000089", "0x7ffc1234").signal_wait());
        assert!(!Side::default().signal_wait());
    }
}
