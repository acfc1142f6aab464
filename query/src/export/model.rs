//! The requests, spans and edges an export covers, read through SQL.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::prelude::SessionContext;
use kreq_schemas::table;

use crate::{Error, Result};

/// Which requests to export. Criteria combine: a window keeps requests that start inside it,
/// `slowest` then keeps the N longest of those; explicit ids are always included.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// These request ids.
    pub requests: Vec<u64>,
    /// The N slowest requests (after the window).
    pub slowest: Option<usize>,
    /// Requests starting in `[from, to)` (trace clock ns).
    pub window: Option<(i64, i64)>,
}

/// One request (a row of `requests`).
#[derive(Debug, Clone)]
pub struct Request {
    /// Request id.
    pub id: u64,
    /// Root (ingress server) span.
    pub root_span: u64,
    /// Client and server endpoints as `addr:port` (empty when unknown).
    pub client: String,
    /// Server endpoint.
    pub server: String,
    /// Start, end (trace clock ns).
    pub start_ns: i64,
    /// End (trace clock ns).
    pub end_ns: i64,
    /// Whether a response was seen.
    pub responded: bool,
    /// False when lost events touch it or it never answered.
    pub complete: bool,
    /// Lowest confidence of its edges.
    pub min_confidence: f32,
}

/// One span (a row of `spans`), time parts in ns.
#[derive(Debug, Clone)]
pub struct Span {
    /// Request id.
    pub request: u64,
    /// Span id.
    pub id: u64,
    /// Parent span, none for the root.
    pub parent: Option<u64>,
    /// `server`, `client` or `internal`.
    pub kind: String,
    /// Thread and process.
    pub tid: i32,
    /// Process id (the tid when the trace had no tgid).
    pub pid: i32,
    /// Process name.
    pub comm: String,
    /// Start and end (trace clock ns).
    pub start_ns: i64,
    /// End.
    pub end_ns: i64,
    /// Local endpoint of its connection.
    pub local: Endpoint,
    /// Peer endpoint of its connection.
    pub peer: Endpoint,
    /// Bytes received and sent.
    pub bytes_in: i64,
    /// Bytes sent.
    pub bytes_out: i64,
    /// On-CPU, runnable, blocked (all reasons) time.
    pub cpu_ns: i64,
    /// Runnable (waiting for a CPU).
    pub runnable_ns: i64,
    /// Blocked, all reasons.
    pub blocked_ns: i64,
    /// Blocked by reason: network, disk, lock, other.
    pub blocked_by: [i64; 4],
    /// Time the thread's state was unknown.
    pub unknown_ns: i64,
}

/// An address and port; both empty for spans without a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// IP address as text, empty when unknown.
    pub addr: String,
    /// Port, when known.
    pub port: Option<u16>,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            None => f.write_str(&self.addr),
            Some(p) => f.write_str(&crate::udf::format_endpoint(&self.addr, p)),
        }
    }
}

impl Endpoint {
    /// True when neither address nor port is known.
    pub fn is_empty(&self) -> bool {
        self.addr.is_empty() && self.port.is_none()
    }
}

/// Names of [`Span::blocked_by`]'s entries.
pub const BLOCKED_REASONS: [&str; 4] = ["network", "disk", "lock", "other"];

impl Span {
    /// Duration in ns.
    pub fn duration_ns(&self) -> i64 {
        self.end_ns - self.start_ns
    }

    /// The reason that accounts for most blocked time, if any time was blocked.
    pub fn main_block_reason(&self) -> Option<&'static str> {
        let (i, v) = self
            .blocked_by
            .iter()
            .enumerate()
            .max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)))?;
        (*v > 0).then_some(BLOCKED_REASONS[i])
    }
}

/// A causal link between two spans of a request (a row of `edges`).
#[derive(Debug, Clone)]
pub struct Edge {
    /// Request id.
    pub request: u64,
    /// From span.
    pub from: u64,
    /// To span.
    pub to: u64,
    /// Rule that made it.
    pub rule: String,
    /// Confidence of the rule.
    pub confidence: f32,
    /// When the link was made.
    pub ts_ns: i64,
}

/// The selected requests with their spans and edges, each sorted by time.
#[derive(Debug, Clone, Default)]
pub struct Selected {
    /// Requests by start time.
    pub requests: Vec<Request>,
    /// Spans by request, then start time.
    pub spans: Vec<Span>,
    /// Edges by request, then time.
    pub edges: Vec<Edge>,
}

/// Load the selected requests from a session opened with [`crate::open`]. Errors when the
/// dataset has no correlation results.
pub async fn load(ctx: &SessionContext, sel: &Selection) -> Result<Selected> {
    for t in [table::REQUESTS, table::SPANS, table::EDGES].map(|t| t.name) {
        if !ctx.table_exist(t)? {
            return Err(Error::Export(format!(
                "no `{t}` table: the dataset has no correlation results; run `kreq correlate` first"
            )));
        }
    }
    let requests = rows(
        ctx,
        &format!(
            "SELECT request_id, root_span_id,
                    coalesce(fmt_endpoint(client_addr, client_port), ''),
                    coalesce(fmt_endpoint(server_addr, server_port), ''),
                    start_ns, end_ns, responded, complete, min_confidence
             FROM requests {} ORDER BY start_ns, request_id",
            where_clause(sel)
        ),
        request_row,
    )
    .await?;
    // Spans and edges of the requests just read: their ids as a table, so the selection
    // (a sort for --slowest) is evaluated once; no filter when everything is exported.
    let everything = sel.requests.is_empty() && sel.slowest.is_none() && sel.window.is_none();
    let filter = if everything {
        String::new()
    } else {
        let ids = UInt64Array::from_iter_values(requests.iter().map(|r| r.id));
        let batch = RecordBatch::try_from_iter([("request_id", Arc::new(ids) as ArrayRef)])?;
        ctx.register_batch(SELECTED, batch)?;
        format!("WHERE request_id IN (SELECT request_id FROM {SELECTED})")
    };
    let read = async {
        let spans = rows(
            ctx,
            &format!(
                "SELECT request_id, span_id, parent_span_id, CAST(kind AS VARCHAR), tid,
                        coalesce(pid, tid), coalesce(CAST(comm AS VARCHAR), ''), start_ns, end_ns,
                        coalesce(CAST(local_addr AS VARCHAR), ''), local_port,
                        coalesce(CAST(peer_addr AS VARCHAR), ''), peer_port,
                        bytes_in, bytes_out, cpu_ns, runnable_ns, blocked_ns, blocked_network_ns,
                        blocked_disk_ns, blocked_lock_ns, blocked_other_ns, unknown_ns
                 FROM spans {filter} ORDER BY request_id, start_ns, span_id"
            ),
            span_row,
        )
        .await?;
        let edges = rows(
            ctx,
            &format!(
                "SELECT request_id, from_span, to_span, CAST(rule AS VARCHAR), confidence, ts_ns
                 FROM edges {filter} ORDER BY request_id, ts_ns, to_span"
            ),
            edge_row,
        )
        .await?;
        Ok::<_, Error>((spans, edges))
    };
    let read = read.await;
    if !everything {
        ctx.deregister_table(SELECTED)?;
    }
    let (spans, edges) = read?;
    Ok(Selected {
        requests,
        spans,
        edges,
    })
}

/// Session table holding the selected request ids while an export reads spans and edges.
const SELECTED: &str = "kreq_export_selected";

/// The `WHERE` clause of `requests` for a selection (empty for everything).
fn where_clause(sel: &Selection) -> String {
    let mut inner = Vec::new();
    if let Some((from, to)) = sel.window {
        inner.push(format!("start_ns >= {from} AND start_ns < {to}"));
    }
    if inner.is_empty() && sel.slowest.is_none() && sel.requests.is_empty() {
        return String::new();
    }
    let mut q = if inner.is_empty() {
        "TRUE".to_owned()
    } else {
        inner.join(" AND ")
    };
    if let Some(n) = sel.slowest {
        q = format!(
            "request_id IN (SELECT request_id FROM requests WHERE {q}
                            ORDER BY duration_ns DESC, request_id LIMIT {n})"
        );
    }
    if !sel.requests.is_empty() {
        let ids: Vec<String> = sel.requests.iter().map(u64::to_string).collect();
        let ids = ids.join(",");
        q = if sel.slowest.is_none() && sel.window.is_none() {
            format!("request_id IN ({ids})")
        } else {
            format!("({q}) OR request_id IN ({ids})")
        };
    }
    format!("WHERE {q}")
}

/// Collect a query's rows through `f`, which reads row `i` of a batch.
async fn rows<T>(
    ctx: &SessionContext,
    q: &str,
    f: impl Fn(&RecordBatch, usize) -> Option<T>,
) -> Result<Vec<T>> {
    let batches = crate::sql(ctx, q).await?;
    let mut out = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            out.push(f(b, i).ok_or_else(|| {
                Error::Arrow(arrow::error::ArrowError::SchemaError(format!(
                    "unexpected column types in export query: {:?}",
                    b.schema()
                )))
            })?);
        }
    }
    Ok(out)
}

fn u64_at(b: &RecordBatch, c: usize, i: usize) -> Option<u64> {
    b.column(c)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .map(|a| a.value(i))
}

fn i64_at(b: &RecordBatch, c: usize, i: usize) -> Option<i64> {
    let a = b.column(c);
    if let Some(a) = a.as_any().downcast_ref::<Int64Array>() {
        return Some(if a.is_null(i) { 0 } else { a.value(i) });
    }
    if let Some(a) = a.as_any().downcast_ref::<UInt64Array>() {
        return Some(if a.is_null(i) { 0 } else { a.value(i) as i64 });
    }
    if let Some(a) = a.as_any().downcast_ref::<UInt32Array>() {
        return Some(if a.is_null(i) {
            0
        } else {
            i64::from(a.value(i))
        });
    }
    a.as_any().downcast_ref::<Int32Array>().map(|a| {
        if a.is_null(i) {
            0
        } else {
            i64::from(a.value(i))
        }
    })
}

fn str_at(b: &RecordBatch, c: usize, i: usize) -> Option<String> {
    let a = b.column(c);
    if let Some(a) = a.as_any().downcast_ref::<StringArray>() {
        return Some(a.value(i).to_owned());
    }
    a.as_string_view_opt().map(|a| a.value(i).to_owned())
}

fn f32_at(b: &RecordBatch, c: usize, i: usize) -> Option<f32> {
    b.column(c)
        .as_any()
        .downcast_ref::<Float32Array>()
        .map(|a| a.value(i))
}

fn bool_at(b: &RecordBatch, c: usize, i: usize) -> Option<bool> {
    b.column(c)
        .as_any()
        .downcast_ref::<BooleanArray>()
        .map(|a| a.value(i))
}

fn request_row(b: &RecordBatch, i: usize) -> Option<Request> {
    Some(Request {
        id: u64_at(b, 0, i)?,
        root_span: u64_at(b, 1, i)?,
        client: str_at(b, 2, i)?,
        server: str_at(b, 3, i)?,
        start_ns: i64_at(b, 4, i)?,
        end_ns: i64_at(b, 5, i)?,
        responded: bool_at(b, 6, i)?,
        complete: bool_at(b, 7, i)?,
        min_confidence: f32_at(b, 8, i)?,
    })
}

fn span_row(b: &RecordBatch, i: usize) -> Option<Span> {
    let parent = b.column(2).as_any().downcast_ref::<UInt64Array>()?;
    let port = |c: usize| {
        let a = b.column(c).as_any().downcast_ref::<UInt16Array>()?;
        Some((!a.is_null(i)).then(|| a.value(i)))
    };
    Some(Span {
        request: u64_at(b, 0, i)?,
        id: u64_at(b, 1, i)?,
        parent: (!parent.is_null(i)).then(|| parent.value(i)),
        kind: str_at(b, 3, i)?,
        tid: i64_at(b, 4, i)? as i32,
        pid: i64_at(b, 5, i)? as i32,
        comm: str_at(b, 6, i)?,
        start_ns: i64_at(b, 7, i)?,
        end_ns: i64_at(b, 8, i)?,
        local: Endpoint {
            addr: str_at(b, 9, i)?,
            port: port(10)?,
        },
        peer: Endpoint {
            addr: str_at(b, 11, i)?,
            port: port(12)?,
        },
        bytes_in: i64_at(b, 13, i)?,
        bytes_out: i64_at(b, 14, i)?,
        cpu_ns: i64_at(b, 15, i)?,
        runnable_ns: i64_at(b, 16, i)?,
        blocked_ns: i64_at(b, 17, i)?,
        blocked_by: [
            i64_at(b, 18, i)?,
            i64_at(b, 19, i)?,
            i64_at(b, 20, i)?,
            i64_at(b, 21, i)?,
        ],
        unknown_ns: i64_at(b, 22, i)?,
    })
}

fn edge_row(b: &RecordBatch, i: usize) -> Option<Edge> {
    Some(Edge {
        request: u64_at(b, 0, i)?,
        from: u64_at(b, 1, i)?,
        to: u64_at(b, 2, i)?,
        rule: str_at(b, 3, i)?,
        confidence: f32_at(b, 4, i)?,
        ts_ns: i64_at(b, 5, i)?,
    })
}
