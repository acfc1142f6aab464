//! `kreq report --html`: one self-contained page (inline CSS, SVG and a few lines of script;
//! nothing is fetched): request counts and lost-event warnings, the latency distribution,
//! a waterfall of one request (one row per span, bars split into on-CPU / runnable / blocked
//! by reason / unknown), and the tables of the text report (slowest requests, breakdown,
//! hotspots, lost events).

use std::fmt::Write as _;
use std::io::Write;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;

use super::escape::esc;
use super::model::{load, Request, Selection, Span};
use super::waterfall::{tree_order, waterfall};
use crate::udf::format_duration;
use crate::{Error, Result};

/// Histogram resolution: bins per factor of ten of request duration.
const BINS_PER_DECADE: i64 = 40;

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct Report {
    /// Page title (the dataset).
    pub title: String,
    /// Requests, incomplete requests, events lost.
    pub counts: (u64, u64, u64),
    /// Latency percentiles p50, p90, p99, max (ns).
    pub percentiles: [i64; 4],
    /// Histogram: (lower bound ns, upper bound ns, requests), log-spaced bins.
    pub histogram: Vec<(i64, i64, u64)>,
    /// The request drawn as a waterfall and its spans in tree order with their depth.
    pub waterfall: Option<(Request, Vec<(Span, usize)>)>,
    /// Titled result tables.
    pub tables: Vec<(String, Vec<RecordBatch>)>,
}

/// Gather the report from a correlated dataset; `request` picks the waterfall's request
/// (default: the slowest), `top` the rows per table.
pub async fn build(
    ctx: &SessionContext,
    title: &str,
    request: Option<u64>,
    top: usize,
) -> Result<Report> {
    let one = |q: &'static str| async move {
        let b = crate::sql(ctx, q).await?;
        Ok::<_, Error>(rows_i64(&b).into_iter().next().unwrap_or_default())
    };
    // The same exact percentiles as the text report.
    let lat = one(crate::report::LATENCY).await?;
    let lost = if ctx.table_exist(kreq_schemas::table::LOST_EVENTS.name)? {
        one("SELECT coalesce(sum(count), 0) FROM lost_events").await?
    } else {
        vec![0]
    };
    let get = |v: &[i64], i: usize| v.get(i).copied().unwrap_or(0);
    // Log-spaced bins, BINS_PER_DECADE per factor of ten, empty ones included.
    let bins = crate::sql(
        ctx,
        &format!(
            "SELECT CAST(floor(log10(greatest(duration_ns, 1)) * {BINS_PER_DECADE}) AS BIGINT)
                    AS b, count(*) AS n
             FROM requests GROUP BY 1 ORDER BY 1"
        ),
    )
    .await?;
    let counts: std::collections::BTreeMap<i64, u64> = rows_i64(&bins)
        .iter()
        .map(|v| (get(v, 0), get(v, 1) as u64))
        .collect();
    let edge = |b: i64| 10f64.powf(b as f64 / BINS_PER_DECADE as f64) as i64;
    let histogram = match (counts.keys().next(), counts.keys().next_back()) {
        (Some(&lo), Some(&hi)) => (lo..=hi)
            .map(|b| (edge(b), edge(b + 1), counts.get(&b).copied().unwrap_or(0)))
            .collect(),
        _ => Vec::new(),
    };
    let id = match request {
        Some(id) => Some(id),
        None => {
            let b = crate::sql(
                ctx,
                "SELECT CAST(request_id AS BIGINT) AS id FROM requests
                 ORDER BY duration_ns DESC, request_id LIMIT 1",
            )
            .await?;
            rows_i64(&b).first().map(|v| get(v, 0) as u64)
        }
    };
    let waterfall = match id {
        None => None,
        Some(id) => {
            let sel = load(
                ctx,
                &Selection {
                    requests: vec![id],
                    ..Selection::default()
                },
            )
            .await?;
            let req = sel
                .requests
                .into_iter()
                .next()
                .ok_or_else(|| Error::Dataset {
                    path: title.into(),
                    msg: format!("no request {id}"),
                })?;
            Some((req, tree_order(sel.spans)))
        }
    };
    let mut tables = Vec::new();
    for (name, q) in crate::report::SECTIONS.iter().skip(1) {
        if name.starts_with("Lost") && !ctx.table_exist(kreq_schemas::table::LOST_EVENTS.name)? {
            continue;
        }
        let b = crate::sql(ctx, &q.replace("{top}", &top.to_string())).await?;
        tables.push(((*name).to_owned(), b));
    }
    Ok(Report {
        title: title.to_owned(),
        counts: (
            get(&lat, 0) as u64,
            get(&lat, 1) as u64,
            get(&lost, 0) as u64,
        ),
        percentiles: [get(&lat, 2), get(&lat, 3), get(&lat, 4), get(&lat, 5)],
        histogram,
        waterfall,
        tables,
    })
}

/// The rows of all-integer results (nulls as 0; a column that is not an integer reads as 0s).
fn rows_i64(batches: &[RecordBatch]) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<Option<arrow::array::Int64Array>> = b
            .columns()
            .iter()
            .map(|c| {
                let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Int64).ok()?;
                c.as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .cloned()
            })
            .collect();
        for i in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| {
                        c.as_ref()
                            .filter(|a| arrow::array::Array::is_valid(*a, i))
                            .map_or(0, |a| a.value(i))
                    })
                    .collect(),
            );
        }
    }
    out
}

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// Write the page.
pub fn render(r: &Report, out: &mut dyn Write) -> Result<()> {
    let mut h = String::with_capacity(64 << 10);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
         <title>kreq report: {t}</title><style>{STYLE}</style></head><body>\
         <h1>kreq report</h1><p class=\"sub\">{t}</p>",
        t = esc(&r.title)
    );
    let (n, incomplete, lost) = r.counts;
    if lost > 0 {
        let _ = write!(
            h,
            "<div class=\"warn\" id=\"lost-warning\">{lost} events were lost while recording; \
             {incomplete} of {n} requests touch a lost-events interval or never answered and \
             are marked incomplete.</div>"
        );
    } else if incomplete > 0 {
        let _ = write!(
            h,
            "<div class=\"warn\" id=\"incomplete-warning\">{incomplete} of {n} requests are \
             incomplete (no response seen).</div>"
        );
    }
    let [p50, p90, p99, max] = r.percentiles;
    let _ = write!(
        h,
        "<section><h2>Latency distribution</h2><p class=\"stats\">{n} requests · p50 {} · \
         p90 {} · p99 {} · max {}</p>",
        format_duration(p50),
        format_duration(p90),
        format_duration(p99),
        format_duration(max)
    );
    histogram(&mut h, &r.histogram);
    h.push_str("</section>");
    if let Some((req, spans)) = &r.waterfall {
        waterfall(&mut h, req, spans);
    }
    for (title, batches) in &r.tables {
        let _ = write!(h, "<section><h2>{}</h2>", esc(title));
        table(&mut h, batches)?;
        h.push_str("</section>");
    }
    let _ = writeln!(h, "<script>{SCRIPT}</script></body></html>");
    out.write_all(h.as_bytes())?;
    Ok(())
}

fn histogram(h: &mut String, bins: &[(i64, i64, u64)]) {
    let max = bins.iter().map(|b| b.2).max().unwrap_or(0).max(1) as f64;
    // About eight labels along the axis.
    let label_every = bins.len().div_ceil(8).max(1);
    let (w, ht, bw) = (900.0, 160.0, 900.0 / bins.len().max(1) as f64);
    let _ = write!(
        h,
        "<svg class=\"hist\" viewBox=\"0 0 {w} {}\" width=\"{w}\" height=\"{}\">",
        ht + 40.0,
        ht + 40.0
    );
    for (i, (lo, hi, c)) in bins.iter().enumerate() {
        let bh = (*c as f64 / max * ht).max(1.0);
        let x = i as f64 * bw;
        let _ = write!(
            h,
            "<rect class=\"bin\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\">\
             <title>{} – {}: {c} requests</title></rect>",
            ht - bh,
            (bw - 1.0).max(0.5),
            format_duration(*lo),
            format_duration(*hi),
        );
        if i % label_every == 0 {
            let _ = write!(
                h,
                "<text x=\"{x:.1}\" y=\"{}\" class=\"tick\">{}</text>",
                ht + 14.0,
                esc(&format_duration(*lo))
            );
        }
    }
    h.push_str("</svg>");
}

fn table(h: &mut String, batches: &[RecordBatch]) -> Result<()> {
    let Some(first) = batches.first() else {
        h.push_str("<p>(none)</p>");
        return Ok(());
    };
    if batches.iter().all(|b| b.num_rows() == 0) {
        h.push_str("<p>(none)</p>");
        return Ok(());
    }
    h.push_str("<table><thead><tr>");
    for f in first.schema().fields() {
        let _ = write!(h, "<th>{}</th>", esc(f.name()));
    }
    h.push_str("</tr></thead><tbody>");
    let opts = FormatOptions::default().with_null("");
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for i in 0..b.num_rows() {
            h.push_str("<tr>");
            for f in &fmts {
                let _ = write!(h, "<td>{}</td>", esc(&f.value(i).to_string()));
            }
            h.push_str("</tr>");
        }
    }
    h.push_str("</tbody></table>");
    Ok(())
}
