//! OTLP JSON (`TracesData`: `resourceSpans` → `scopeSpans` → `spans`), importable by Jaeger,
//! Tempo or any OTLP backend.
//!
//! One trace per request: the trace id is the dataset salt (high 8 bytes) and the request id
//! (low 8 bytes); span ids are the kreq span id plus one. One resource per process, with
//! `service.name` = process name and `process.pid`. Span attributes: `thread.id`,
//! `thread.name`, `network.local.*` / `network.peer.*`, `kreq.request_id`, `kreq.span.kind`,
//! `kreq.bytes_in` / `kreq.bytes_out`, `kreq.cpu_ns`, `kreq.runnable_ns`, `kreq.blocked_ns`,
//! `kreq.blocked_reason` (the reason with the most blocked time), `kreq.blocked.<reason>_ns`,
//! `kreq.unknown_ns`, and for non-root spans the linking rule and its confidence. Root spans
//! carry `kreq.complete`. Ids are hex and 64-bit integers are strings, as OTLP/JSON specifies.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde_json::{json, Value};

use super::{Progress, Selected, Span, BLOCKED_REASONS, PROGRESS_EVERY};
use crate::Result;

/// How times and ids are mapped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Added to trace-clock ns to get Unix-epoch ns (0 keeps trace-clock times).
    pub epoch_offset_ns: i64,
    /// High 8 bytes of every trace id, so traces of different datasets do not collide.
    pub salt: u64,
}

/// What was written.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    /// Traces (one per request).
    pub traces: u64,
    /// Spans.
    pub spans: u64,
    /// Resources (one per process).
    pub resources: u64,
}

/// The OTLP trace id of a request.
pub fn trace_id(salt: u64, request: u64) -> String {
    format!("{:016x}{:016x}", salt | 1, request)
}

/// The OTLP span id of a kreq span.
pub fn span_id(span: u64) -> String {
    format!("{:016x}", span.wrapping_add(1).max(1))
}

/// Write `sel` as one OTLP/JSON `TracesData` document.
pub fn write(
    sel: &Selected,
    opts: Options,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<Written> {
    let complete: HashMap<u64, bool> = sel.requests.iter().map(|r| (r.id, r.complete)).collect();
    let edge_of: HashMap<u64, (&str, f32)> = sel
        .edges
        .iter()
        .map(|e| (e.to, (e.rule.as_str(), e.confidence)))
        .collect();
    let mut by_process: BTreeMap<(i32, &str), Vec<Value>> = BTreeMap::new();
    let total = sel.spans.len() as u64;
    let mut w = Written {
        traces: sel.requests.len() as u64,
        ..Written::default()
    };
    for (i, s) in sel.spans.iter().enumerate() {
        let link = edge_of.get(&s.id).copied();
        let done = s
            .parent
            .is_none()
            .then(|| complete.get(&s.request).copied());
        by_process
            .entry((s.pid, s.comm.as_str()))
            .or_default()
            .push(span(s, opts, link, done.flatten()));
        w.spans += 1;
        if (i as u64 + 1).is_multiple_of(PROGRESS_EVERY) {
            progress.step(i as u64 + 1, total);
        }
    }
    let resources: Vec<Value> = by_process
        .into_iter()
        .map(|((pid, comm), spans)| {
            json!({
                "resource": {"attributes": [
                    kv("service.name", s(comm)),
                    kv("process.pid", int(i64::from(pid))),
                ]},
                "scopeSpans": [{
                    "scope": {"name": "kreq", "version": env!("CARGO_PKG_VERSION")},
                    "spans": spans,
                }],
            })
        })
        .collect();
    w.resources = resources.len() as u64;
    serde_json::to_writer(&mut *out, &json!({ "resourceSpans": resources }))
        .map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    progress.step(total, total);
    Ok(w)
}

fn kv(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

fn s(v: &str) -> Value {
    json!({ "stringValue": v })
}

fn int(v: i64) -> Value {
    json!({ "intValue": v.to_string() })
}

/// `SPAN_KIND_SERVER` = 2, `CLIENT` = 3, `INTERNAL` = 1.
fn kind(k: &str) -> u8 {
    match k {
        "server" => 2,
        "client" => 3,
        _ => 1,
    }
}

fn span(sp: &Span, opts: Options, link: Option<(&str, f32)>, complete: Option<bool>) -> Value {
    let mut attrs = vec![
        kv("kreq.request_id", int(sp.request as i64)),
        kv("kreq.span.kind", s(&sp.kind)),
        kv("thread.id", int(i64::from(sp.tid))),
        kv("thread.name", s(&sp.comm)),
        kv("kreq.bytes_in", int(sp.bytes_in)),
        kv("kreq.bytes_out", int(sp.bytes_out)),
        kv("kreq.cpu_ns", int(sp.cpu_ns)),
        kv("kreq.runnable_ns", int(sp.runnable_ns)),
        kv("kreq.blocked_ns", int(sp.blocked_ns)),
        kv("kreq.unknown_ns", int(sp.unknown_ns)),
    ];
    for (name, v) in BLOCKED_REASONS.iter().zip(sp.blocked_by) {
        attrs.push(kv(&format!("kreq.blocked.{name}_ns"), int(v)));
    }
    if let Some(r) = sp.main_block_reason() {
        attrs.push(kv("kreq.blocked_reason", s(r)));
    }
    for (prefix, e) in [("network.local", &sp.local), ("network.peer", &sp.peer)] {
        if !e.addr.is_empty() {
            attrs.push(kv(&format!("{prefix}.address"), s(&e.addr)));
        }
        if let Some(p) = e.port {
            attrs.push(kv(&format!("{prefix}.port"), int(i64::from(p))));
        }
    }
    if let Some((rule, conf)) = link {
        attrs.push(kv("kreq.link.rule", s(rule)));
        attrs.push(kv("kreq.link.confidence", json!({"doubleValue": conf})));
    }
    if let Some(c) = complete {
        attrs.push(kv("kreq.complete", json!({ "boolValue": c })));
    }
    let name = match sp.kind.as_str() {
        "server" if !sp.local.is_empty() => format!("{} server {}", sp.comm, sp.local),
        "client" if !sp.peer.is_empty() => format!("{} client → {}", sp.comm, sp.peer),
        k => format!("{} {k}", sp.comm),
    };
    let t = |ns: i64| ns.saturating_add(opts.epoch_offset_ns).max(0).to_string();
    let mut v = json!({
        "traceId": trace_id(opts.salt, sp.request),
        "spanId": span_id(sp.id),
        "name": name,
        "kind": kind(&sp.kind),
        "startTimeUnixNano": t(sp.start_ns),
        "endTimeUnixNano": t(sp.end_ns),
        "attributes": attrs,
    });
    if let (Some(p), Some(o)) = (sp.parent, v.as_object_mut()) {
        o.insert("parentSpanId".into(), span_id(p).into());
    }
    v
}
