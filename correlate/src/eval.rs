//! Scoring a correlation against ground truth that the correlator never saw.
//!
//! # Truth format
//! JSON lines, one per request sent, as the testbed (`examples/testbed/testbed.py`) writes them:
//!
//! ```json
//! {"request_id": "fb0b...", "client_tid": 24641, "client_t0": 2634486524344,
//!  "client_t1": 2634497072048, "nginx_pid": 24542, "app_pid": 24544, "app_tid": 24595,
//!  "app_t0": 2634494594773, "app_t1": 2634496703629, "status": 200}
//! ```
//! Times are CLOCK_MONOTONIC ns (record with `--clock mono`); `client_tid` is the load
//! generator thread, `nginx_pid` the front-end worker (single-threaded, so also its tid),
//! `app_pid`/`app_tid` the application thread and `app_t0`/`app_t1` its handler; an optional
//! `worker_tid` is a pool thread the handler handed its backend calls to, whose spans then
//! belong to the request too. Other keys are ignored.
//!
//! # Score
//! A true request is *found* when one correlated request was started by its client thread
//! within its client interval. It is *exact* when that request has a front-end span on
//! `nginx_pid`, an application span on `app_tid` inside the handler interval, at least one
//! backend span, and no span of anything else: every application span is on `app_tid` and
//! overlaps the handler, every other span is a backend server span on a connection whose
//! client end is `app_tid` (taken from the physical thread of the client spans on that
//! connection), and every span lies within the client interval.

use std::collections::HashMap;
use std::path::Path;

use arrow::array::{
    Array, AsArray, DictionaryArray, Int32Array, Int64Array, RecordBatch, UInt16Array, UInt64Array,
};
use arrow::datatypes::Int32Type;
use kreq_schemas::dataset as ds;
use kreq_schemas::{requests as rq, spans as sp};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Tolerance for comparing trace times with the services' own clock readings (text traces
/// have µs resolution).
pub const SLACK_NS: i64 = 2_000;

/// One true request.
#[derive(Debug, Clone, Deserialize)]
pub struct Truth {
    /// Request id the services logged.
    pub request_id: String,
    /// Load-generator thread.
    pub client_tid: i32,
    /// Client start (ns).
    pub client_t0: i64,
    /// Client end (ns).
    pub client_t1: i64,
    /// Front-end worker.
    pub nginx_pid: Option<i32>,
    /// Application process.
    pub app_pid: Option<i32>,
    /// Application thread.
    pub app_tid: Option<i32>,
    /// Handler start (ns).
    pub app_t0: Option<i64>,
    /// Handler end (ns).
    pub app_t1: Option<i64>,
    /// The pool thread the handler handed its backend calls to (testbed `--pool`), if any.
    #[serde(default)]
    pub worker_tid: Option<i32>,
}

/// The score.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    /// True requests in the truth file.
    pub sent: usize,
    /// Requests the correlation found.
    pub correlated: usize,
    /// True requests matched to a correlated request.
    pub found: usize,
    /// True requests reconstructed exactly.
    pub exact: usize,
    /// `exact / sent`.
    pub accuracy: f64,
    /// Found requests that kreq marked complete (no lost events may overlap them).
    pub complete: usize,
    /// Of those, reconstructed exactly.
    pub complete_exact: usize,
    /// Why the others were not exact, with counts.
    pub failures: std::collections::BTreeMap<String, usize>,
    /// A few failing request ids with their reason.
    pub examples: Vec<(String, String)>,
}

/// Reads a truth file.
pub fn read_truth(path: &Path) -> Result<Vec<Truth>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if !line.trim().is_empty() {
            let t: Truth = serde_json::from_str(line).map_err(|e| Error::Truth {
                path: path.to_owned(),
                line: i + 1,
                offset,
                msg: e.to_string(),
            })?;
            out.push(t);
        }
        offset += line.len();
    }
    Ok(out)
}

#[derive(Debug, Clone)]
struct SpanRow {
    tid: i32,
    pid: Option<i32>,
    kind: String,
    start: i64,
    end: i64,
    local: Option<(String, u16)>,
    peer: Option<(String, u16)>,
}

/// A correlation table of `dataset`; an error saying how to make it when it is missing.
fn read_results(dataset: &Path, dir: &str) -> Result<Vec<RecordBatch>> {
    let d = dataset.join(dir);
    if !d.is_dir() {
        return Err(Error::Dataset {
            path: d,
            msg: "no such table; run `kreq correlate` first".into(),
        });
    }
    crate::read_table(&d)
}

fn c<'a, T: 'static>(b: &'a RecordBatch, n: &str, dataset: &Path) -> Result<&'a T> {
    crate::table::col(b, n).map_err(|msg| Error::Dataset {
        path: dataset.to_owned(),
        msg,
    })
}

fn dict_str(d: &DictionaryArray<Int32Type>, i: usize) -> Option<String> {
    if d.is_null(i) {
        return None;
    }
    let v = d.values().as_string_opt::<i32>()?;
    Some(v.value(d.keys().value(i) as usize).to_owned())
}

/// Scores the correlation stored in `dataset` against `truth`.
pub fn evaluate(dataset: &Path, truth: &[Truth]) -> Result<Score> {
    let mut spans: HashMap<u64, Vec<SpanRow>> = HashMap::new();
    let mut owner: Owners = HashMap::new();
    for b in read_results(dataset, ds::SPANS_DIR)? {
        let req = c::<UInt64Array>(&b, sp::REQUEST_ID, dataset)?;
        let tid = c::<Int32Array>(&b, sp::TID, dataset)?;
        let pid = c::<Int32Array>(&b, sp::PID, dataset)?;
        let kind = c::<DictionaryArray<Int32Type>>(&b, sp::KIND, dataset)?;
        let start = c::<Int64Array>(&b, sp::START_NS, dataset)?;
        let end = c::<Int64Array>(&b, sp::END_NS, dataset)?;
        let la = c::<DictionaryArray<Int32Type>>(&b, sp::LOCAL_ADDR, dataset)?;
        let lp = c::<UInt16Array>(&b, sp::LOCAL_PORT, dataset)?;
        let pa = c::<DictionaryArray<Int32Type>>(&b, sp::PEER_ADDR, dataset)?;
        let pp = c::<UInt16Array>(&b, sp::PEER_PORT, dataset)?;
        for i in 0..b.num_rows() {
            let local = dict_str(la, i).zip(lp.is_valid(i).then(|| lp.value(i)));
            let peer = dict_str(pa, i).zip(pp.is_valid(i).then(|| pp.value(i)));
            let row = SpanRow {
                tid: tid.value(i),
                pid: pid.is_valid(i).then(|| pid.value(i)),
                kind: dict_str(kind, i).unwrap_or_default(),
                start: start.value(i),
                end: end.value(i),
                local,
                peer,
            };
            if row.kind == "client" {
                if let (Some(l), Some(p)) = (row.local.clone(), row.peer.clone()) {
                    owner.insert((l, p), row.tid);
                }
            }
            spans.entry(req.value(i)).or_default().push(row);
        }
    }
    let mut by_client: HashMap<i32, Vec<(i64, u64)>> = HashMap::new();
    let mut complete: HashMap<u64, bool> = HashMap::new();
    let mut correlated = 0;
    for b in read_results(dataset, ds::REQUESTS_DIR)? {
        let id = c::<UInt64Array>(&b, rq::REQUEST_ID, dataset)?;
        let ct = c::<Int32Array>(&b, rq::CLIENT_TID, dataset)?;
        let st = c::<Int64Array>(&b, rq::START_NS, dataset)?;
        let done = c::<arrow::array::BooleanArray>(&b, rq::COMPLETE, dataset)?;
        for i in 0..b.num_rows() {
            correlated += 1;
            complete.insert(id.value(i), done.is_valid(i) && done.value(i));
            if ct.is_valid(i) {
                by_client
                    .entry(ct.value(i))
                    .or_default()
                    .push((st.value(i), id.value(i)));
            }
        }
    }
    let mut score = Score {
        sent: truth.len(),
        correlated,
        ..Default::default()
    };
    for t in truth {
        let cands: Vec<u64> = by_client
            .get(&t.client_tid)
            .map(|v| {
                v.iter()
                    .filter(|(s, _)| *s >= t.client_t0 - SLACK_NS && *s <= t.client_t1 + SLACK_NS)
                    .map(|(_, id)| *id)
                    .collect()
            })
            .unwrap_or_default();
        let verdict = match cands.as_slice() {
            [] => Err("not found".to_owned()),
            [one] => {
                score.found += 1;
                let v = check(t, spans.get(one).map_or(&[][..], |v| v.as_slice()), &owner);
                if complete.get(one).copied().unwrap_or(false) {
                    score.complete += 1;
                    score.complete_exact += usize::from(v.is_ok());
                }
                v
            }
            _ => {
                score.found += 1;
                Err("split into several requests".to_owned())
            }
        };
        match verdict {
            Ok(()) => score.exact += 1,
            Err(why) => {
                *score.failures.entry(why.clone()).or_default() += 1;
                if score.examples.len() < 10 {
                    score.examples.push((t.request_id.clone(), why));
                }
            }
        }
    }
    score.accuracy = if score.sent == 0 {
        0.0
    } else {
        score.exact as f64 / score.sent as f64
    };
    Ok(score)
}

type Owners = HashMap<((String, u16), (String, u16)), i32>;

fn check(t: &Truth, spans: &[SpanRow], owner: &Owners) -> std::result::Result<(), String> {
    let (lo, hi) = (t.client_t0 - SLACK_NS, t.client_t1 + SLACK_NS);
    let (Some(front), Some(app_pid), Some(app_tid), Some(a0), Some(a1)) =
        (t.nginx_pid, t.app_pid, t.app_tid, t.app_t0, t.app_t1)
    else {
        return Err("truth lacks the front end or application hop".into());
    };
    let (a0, a1) = (a0 - SLACK_NS, a1 + SLACK_NS);
    let (mut has_front, mut has_app, mut has_backend) = (false, false, false);
    for s in spans {
        if s.start < lo || s.end > hi {
            return Err("span outside the client interval".into());
        }
        if s.tid == front {
            has_front = true;
        } else if s.pid == Some(app_pid) || s.tid == app_tid {
            let ours = s.tid == app_tid || t.worker_tid == Some(s.tid);
            if !ours || s.end < a0 || s.start > a1 {
                return Err("application span of another request".into());
            }
            has_app |= s.tid == app_tid;
        } else {
            let owned = s.kind == "server"
                && s.local.clone().zip(s.peer.clone()).is_some_and(|(l, p)| {
                    owner
                        .get(&(p, l))
                        .is_some_and(|&o| o == app_tid || t.worker_tid == Some(o))
                });
            if !owned {
                return Err(format!("foreign span ({} on tid {})", s.kind, s.tid));
            }
            has_backend = true;
        }
    }
    match (has_front, has_app, has_backend) {
        (false, _, _) => Err("no front-end span".into()),
        (_, false, _) => Err("no application span".into()),
        (_, _, false) => Err("no backend span".into()),
        _ => Ok(()),
    }
}
