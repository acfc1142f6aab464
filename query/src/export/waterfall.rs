//! The waterfall of one request in `kreq report --html`: its spans depth-first from the root,
//! one SVG row each, bars split into on-CPU / runnable / blocked by reason / unknown time,
//! followed by the same figures as a table.

use std::fmt::Write as _;

use super::escape::esc;
use super::model::{Request, Span};
use crate::udf::format_duration;

/// Spans depth-first from the root (children by start time), with their depth.
pub(super) fn tree_order(spans: Vec<Span>) -> Vec<(Span, usize)> {
    let ids: std::collections::HashSet<u64> = spans.iter().map(|s| s.id).collect();
    let mut kids: std::collections::HashMap<Option<u64>, Vec<usize>> = Default::default();
    for (i, s) in spans.iter().enumerate() {
        // A parent outside the request (should not happen) makes the span a root.
        let p = s.parent.filter(|p| ids.contains(p));
        kids.entry(p).or_default().push(i);
    }
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    let mut seen = vec![false; spans.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let roots = kids.get(&None).cloned().unwrap_or_default();
    // Spans in a parent cycle (should not happen) are still drawn, as roots.
    for start in roots.into_iter().chain(0..spans.len()) {
        stack.push((start, 0));
        while let Some((i, d)) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            order.push((i, d));
            if let Some(k) = kids.get(&Some(spans[i].id)) {
                stack.extend(k.iter().rev().map(|&c| (c, d + 1)));
            }
        }
    }
    let mut slots: Vec<Option<Span>> = spans.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|(i, d)| slots[i].take().map(|s| (s, d)))
        .collect()
}

/// The colour classes of a span bar, in drawing order, with their ns.
fn parts(s: &Span) -> [(&'static str, i64); 7] {
    [
        ("cpu", s.cpu_ns),
        ("runnable", s.runnable_ns),
        ("net", s.blocked_by[0]),
        ("disk", s.blocked_by[1]),
        ("lock", s.blocked_by[2]),
        ("other", s.blocked_by[3]),
        ("unknown", s.unknown_ns),
    ]
}

/// Draw the waterfall of `req` with its spans in tree order.
pub(super) fn waterfall(h: &mut String, req: &Request, spans: &[(Span, usize)]) {
    let t0 = spans
        .iter()
        .map(|(s, _)| s.start_ns)
        .min()
        .unwrap_or(req.start_ns)
        .min(req.start_ns);
    let t1 = spans
        .iter()
        .map(|(s, _)| s.end_ns)
        .max()
        .unwrap_or(req.end_ns)
        .max(req.end_ns);
    let span_ns = (t1 - t0).max(1) as f64;
    let (label_w, bar_w, row_h) = (330.0, 640.0, 22.0);
    let height = row_h * spans.len() as f64 + 30.0;
    let _ = write!(
        h,
        "<section><h2>Request {} waterfall</h2><p class=\"stats\">{} → {} · {} · {} spans{}\
         </p><p class=\"sub\">Rows are spans (indented under their parent); each bar is split \
         by the share of its time on CPU, runnable and blocked.</p><div class=\"legend\">",
        req.id,
        esc(&req.client),
        esc(&req.server),
        format_duration(req.end_ns - req.start_ns),
        spans.len(),
        if req.complete { "" } else { " · incomplete" }
    );
    for (c, label) in [
        ("cpu", "on CPU"),
        ("runnable", "runnable"),
        ("net", "blocked: network"),
        ("disk", "blocked: disk"),
        ("lock", "blocked: lock"),
        ("other", "blocked: other"),
        ("unknown", "unknown"),
    ] {
        let _ = write!(h, "<span class=\"key {c}\"></span>{label} ");
    }
    let _ = write!(
        h,
        "</div><svg class=\"waterfall\" data-request=\"{}\" viewBox=\"0 0 {} {height}\" \
         width=\"{}\" height=\"{height}\">",
        req.id,
        label_w + bar_w + 10.0,
        label_w + bar_w + 10.0
    );
    for (i, (s, depth)) in spans.iter().enumerate() {
        let y = i as f64 * row_h;
        let x = label_w + (s.start_ns - t0) as f64 / span_ns * bar_w;
        let w = ((s.end_ns - s.start_ns) as f64 / span_ns * bar_w).max(1.0);
        let endpoint = match s.kind.as_str() {
            "client" => format!(" → {}", s.peer),
            "server" if !s.local.is_empty() => format!(" {}", s.local),
            _ => String::new(),
        };
        let label = format!("{} {} {}{}", s.comm, s.tid, s.kind, endpoint);
        let _ = write!(
            h,
            "<g class=\"span-row\" data-span-id=\"{}\" data-kind=\"{}\">\
             <text class=\"label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            s.id,
            esc(&s.kind),
            4.0 + *depth as f64 * 12.0,
            y + 15.0,
            esc(&label)
        );
        let total: i64 = parts(s).iter().map(|p| p.1).sum::<i64>().max(1);
        let mut px = x;
        for (class, ns) in parts(s) {
            if ns <= 0 {
                continue;
            }
            let pw = ns as f64 / total as f64 * w;
            let _ = write!(
                h,
                "<rect class=\"{class}\" x=\"{px:.2}\" y=\"{:.1}\" width=\"{pw:.2}\" \
                 height=\"{:.1}\"></rect>",
                y + 3.0,
                row_h - 6.0
            );
            px += pw;
        }
        let _ = write!(
            h,
            "<rect class=\"outline\" x=\"{x:.2}\" y=\"{:.1}\" width=\"{w:.2}\" height=\"{:.1}\">\
             <title>{} · {} · cpu {} · runnable {} · blocked {} (network {}, disk {}, lock {}, \
             other {}) · unknown {} · in {} B, out {} B</title></rect></g>",
            y + 3.0,
            row_h - 6.0,
            esc(&label),
            format_duration(s.duration_ns()),
            format_duration(s.cpu_ns),
            format_duration(s.runnable_ns),
            format_duration(s.blocked_ns),
            format_duration(s.blocked_by[0]),
            format_duration(s.blocked_by[1]),
            format_duration(s.blocked_by[2]),
            format_duration(s.blocked_by[3]),
            format_duration(s.unknown_ns),
            s.bytes_in,
            s.bytes_out
        );
    }
    let _ = write!(
        h,
        "<text class=\"tick\" x=\"{label_w}\" y=\"{:.1}\">0</text>\
         <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></svg>\
         <p class=\"detail\" id=\"span-detail\">Click a row for its details.</p></section>",
        height - 8.0,
        label_w + bar_w,
        height - 8.0,
        format_duration(t1 - t0)
    );
}
