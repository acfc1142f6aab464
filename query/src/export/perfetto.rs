//! Chrome trace-event JSON, as opened by the Perfetto UI (ui.perfetto.dev) and
//! `chrome://tracing`.
//!
//! Layout: one process per traced process (`process_name` = comm and pid), one thread track
//! per thread. A thread that serves several requests at once (an event loop) gets extra lanes,
//! named `comm tid (lane k)`, so that slices on each track nest properly as the format
//! requires. Every span is a complete (`X`) slice named `req ID kind` whose args carry the
//! request id, span ids, endpoints, bytes and the on-CPU / runnable / blocked split. Every edge
//! is a flow (`s` then `f` with `bp: "e"`) from its parent slice to its child slice, so the
//! UI draws arrows following the request across threads and processes. Times are µs of the
//! trace clock (`displayTimeUnit: ns`).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde_json::{json, Value};

use super::{Progress, Selected, Span, BLOCKED_REASONS, PROGRESS_EVERY};
use crate::Result;

/// Lanes beyond the first get thread ids `tid + lane << LANE_SHIFT` (pid_max is at most 2^22).
const LANE_SHIFT: u32 = 22;
/// At most this many lanes per thread; more overlapping spans share the last one.
const MAX_LANES: usize = 255;

/// What was written.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    /// Slices (one per span).
    pub slices: u64,
    /// Flow arrows (one per edge).
    pub flows: u64,
    /// Thread tracks, lanes included.
    pub tracks: u64,
}

/// Write `sel` as Chrome trace-event JSON to `out`.
pub fn write(sel: &Selected, out: &mut dyn Write, progress: &dyn Progress) -> Result<Written> {
    let lanes = assign_lanes(&sel.spans);
    let mut w = Written::default();
    out.write_all(b"{\"displayTimeUnit\":\"ns\",\"otherData\":")?;
    serde_json::to_writer(
        &mut *out,
        &json!({
            "producer": "kreq",
            "version": env!("CARGO_PKG_VERSION"),
            "requests": sel.requests.len(),
            "clock": "trace clock, ts in µs",
        }),
    )
    .map_err(std::io::Error::from)?;
    out.write_all(b",\"traceEvents\":[\n")?;
    let mut first = true;
    let mut emit = |out: &mut dyn Write, v: Value| -> Result<()> {
        if !first {
            out.write_all(b",\n")?;
        }
        first = false;
        serde_json::to_writer(&mut *out, &v).map_err(std::io::Error::from)?;
        Ok(())
    };

    // Names of processes and thread tracks.
    let mut procs: BTreeMap<i32, &str> = BTreeMap::new();
    let mut tracks: BTreeMap<(i32, i32), (i32, usize, &str)> = BTreeMap::new();
    for (s, &lane) in sel.spans.iter().zip(&lanes) {
        procs.entry(s.pid).or_insert(&s.comm);
        tracks
            .entry((s.pid, track_tid(s.tid, lane)))
            .or_insert((s.tid, lane, &s.comm));
    }
    for (pid, comm) in &procs {
        emit(
            out,
            json!({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                   "args": {"name": format!("{comm} {pid}")}}),
        )?;
    }
    for ((pid, ttid), (tid, lane, comm)) in &tracks {
        let name = if *lane == 0 {
            format!("{comm} {tid}")
        } else {
            format!("{comm} {tid} (lane {lane})")
        };
        emit(
            out,
            json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": ttid,
                   "args": {"name": name}}),
        )?;
        emit(
            out,
            json!({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": ttid,
                   "args": {"sort_index": i64::from(*tid) * 256 + *lane as i64}}),
        )?;
        w.tracks += 1;
    }

    // Slices.
    let total = sel.spans.len() as u64;
    let mut at: HashMap<u64, (&Span, i32)> = HashMap::with_capacity(sel.spans.len());
    for (i, (s, &lane)) in sel.spans.iter().zip(&lanes).enumerate() {
        let tid = track_tid(s.tid, lane);
        at.insert(s.id, (s, tid));
        emit(out, slice(s, tid))?;
        w.slices += 1;
        if (i as u64 + 1).is_multiple_of(PROGRESS_EVERY) {
            progress.step(i as u64 + 1, total);
        }
    }

    // Flows: from the parent slice when the link was made to the child slice's start.
    for (n, e) in sel.edges.iter().enumerate() {
        let (Some(&(from, from_tid)), Some(&(to, to_tid))) = (at.get(&e.from), at.get(&e.to))
        else {
            continue;
        };
        let name = format!("req {}", e.request);
        let id = n as u64 + 1;
        emit(
            out,
            json!({"ph": "s", "id": id, "cat": "request", "name": name,
                   "pid": from.pid, "tid": from_tid,
                   "ts": us(e.ts_ns.clamp(from.start_ns, from.end_ns)),
                   "args": {"rule": e.rule, "confidence": e.confidence}}),
        )?;
        emit(
            out,
            json!({"ph": "f", "bp": "e", "id": id, "cat": "request", "name": name,
                   "pid": to.pid, "tid": to_tid,
                   "ts": us(e.ts_ns.clamp(to.start_ns, to.end_ns))}),
        )?;
        w.flows += 1;
    }
    out.write_all(b"\n]}\n")?;
    progress.step(total, total);
    Ok(w)
}

fn track_tid(tid: i32, lane: usize) -> i32 {
    if lane == 0 {
        tid
    } else {
        tid.wrapping_add((lane as i32) << LANE_SHIFT)
    }
}

/// Microseconds with ns precision (the format's unit).
fn us(ns: i64) -> f64 {
    ns as f64 / 1000.0
}

fn slice(s: &Span, tid: i32) -> Value {
    let mut blocked = serde_json::Map::new();
    for (name, v) in BLOCKED_REASONS.iter().zip(s.blocked_by) {
        blocked.insert(format!("blocked_{name}_ns"), v.into());
    }
    let mut args = json!({
        "request_id": s.request,
        "span_id": s.id,
        "parent_span_id": s.parent,
        "kind": s.kind,
        "tid": s.tid,
        "local": s.local.to_string(),
        "peer": s.peer.to_string(),
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "cpu_ns": s.cpu_ns,
        "runnable_ns": s.runnable_ns,
        "blocked_ns": s.blocked_ns,
        "unknown_ns": s.unknown_ns,
    });
    if let Some(a) = args.as_object_mut() {
        a.extend(blocked);
    }
    json!({
        "ph": "X", "cat": s.kind, "name": format!("req {} {}", s.request, s.kind),
        "pid": s.pid, "tid": tid, "ts": us(s.start_ns), "dur": us(s.duration_ns()),
        "args": args,
    })
}

/// For each span (in `spans` order) the lane of its thread: the first lane whose slices all
/// end before it starts or contain it entirely, so that slices on a lane nest.
fn assign_lanes(spans: &[Span]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    // Longer first at equal starts, so an enclosing span is placed before what it encloses.
    order.sort_by_key(|&i| (spans[i].start_ns, std::cmp::Reverse(spans[i].end_ns)));
    // Per thread, per lane: the stack of open slice ends.
    let mut open: HashMap<i32, Vec<Vec<i64>>> = HashMap::new();
    let mut lane_of = vec![0; spans.len()];
    for i in order {
        let s = &spans[i];
        let lanes = open.entry(s.tid).or_default();
        let mut chosen = None;
        for (k, stack) in lanes.iter_mut().enumerate() {
            while stack.last().is_some_and(|&end| end <= s.start_ns) {
                stack.pop();
            }
            if stack.last().is_none_or(|&end| s.end_ns <= end) {
                chosen = Some(k);
                break;
            }
        }
        let k = match chosen {
            Some(k) => k,
            None if lanes.len() < MAX_LANES => {
                lanes.push(Vec::new());
                lanes.len() - 1
            }
            None => lanes.len() - 1,
        };
        lanes[k].push(s.end_ns);
        lane_of[i] = k;
    }
    lane_of
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Endpoint;

    fn span(id: u64, tid: i32, start: i64, end: i64) -> Span {
        Span {
            request: id,
            id,
            parent: None,
            kind: "server".into(),
            tid,
            pid: tid,
            comm: "t".into(),
            start_ns: start,
            end_ns: end,
            local: Endpoint::default(),
            peer: Endpoint::default(),
            bytes_in: 0,
            bytes_out: 0,
            cpu_ns: end - start,
            runnable_ns: 0,
            blocked_ns: 0,
            blocked_by: [0; 4],
            unknown_ns: 0,
        }
    }

    #[test]
    fn nested_spans_share_a_lane_and_overlapping_ones_do_not() {
        let spans = [
            span(1, 7, 0, 100),
            span(2, 7, 10, 50),   // inside 1: same lane
            span(3, 7, 40, 120),  // overlaps 1 and 2 partially: lane 1
            span(4, 7, 100, 130), // after 1 ended, but 3 (lane 1) is still open: lane 0
            span(5, 8, 40, 120),  // another thread: its own lane 0
        ];
        assert_eq!(assign_lanes(&spans), [0, 0, 1, 0, 0]);
        assert_eq!(track_tid(7, 1), 7 + (1 << 22));
    }
}
