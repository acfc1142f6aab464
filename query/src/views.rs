//! Analysis views over a correlated dataset, in portable SQL (the DuckDB comparison test runs
//! the very same definitions).
//!
//! | view | one row per | what |
//! |---|---|---|
//! | `hops` | span, plus one per call's network gap | where a request's time went: `self_ns` of each server/internal span (its duration minus its outgoing calls) and, for each call, the time on the wire (call duration minus the callee's server span) |
//! | `request_breakdown` | request and service | self time per service (`(network)` for wire time), split into on-CPU, runnable and blocked by reason |
//! | `slowest_requests` | request, slowest first | duration, span count, completeness and the critical hop (the hop with the most self time) |
//! | `slow_requests` | request in the slowest 1% | at least one request |
//! | `hotspot_threads` | service and thread | self time spent on the slowest 1% of requests, and its share of their total duration |
//! | `hotspot_syscalls` | service, thread, syscall | calls and time inside syscalls made for the slowest 1% of requests (from their span's start: a read that waited for the request to arrive does not count) |
//! | `lost_summary` | CPU and kind of report | lost-event reports, events lost, time range |
//! | `cross_host_calls` | call from one warehouse host to another | the caller's client span matched to the request it started on the callee's host, and the bounds each puts on the two hosts' clock offset (warehouses only) |
//! | `clock_offsets` | pair of hosts | the callee's clock minus the caller's: bounds from every call both ways, their midpoint and half-width (warehouses only) |
//! | `stitched_spans` | span | every span with `global_request_id` (the request of the first host in its chain of calls, for a request another host started) and its times on that host's clock (warehouses only; chains of up to four hosts) |
//!
//! Example: `SELECT service, sum(self_ns) FROM request_breakdown GROUP BY service`.

use datafusion::prelude::SessionContext;

use crate::Result;

/// The views: name and definition.
pub const VIEWS: &[(&str, &str)] = &[
    (
        "hops",
        // The self times are computed by `kreq correlate` (the spans schema defines them).
        "SELECT request_id, span_id,
                CASE WHEN kind = 'client' THEN '(network)' ELSE CAST(comm AS STRING) END
                  AS service,
                tid,
                CASE WHEN kind = 'client' THEN 'network' ELSE CAST(kind AS STRING) END AS kind,
                self_ns, self_cpu_ns AS cpu_ns, self_runnable_ns AS runnable_ns,
                self_blocked_network_ns AS blocked_network_ns,
                self_blocked_disk_ns AS blocked_disk_ns,
                self_blocked_lock_ns AS blocked_lock_ns,
                self_blocked_other_ns AS blocked_other_ns
         FROM spans",
    ),
    (
        "request_breakdown",
        "SELECT request_id, service, count(*) AS hops, sum(self_ns) AS self_ns,
                sum(cpu_ns) AS cpu_ns, sum(runnable_ns) AS runnable_ns,
                sum(blocked_network_ns + blocked_disk_ns + blocked_lock_ns + blocked_other_ns) AS blocked_ns,
                sum(blocked_network_ns) AS blocked_network_ns, sum(blocked_disk_ns) AS blocked_disk_ns,
                sum(blocked_lock_ns) AS blocked_lock_ns, sum(blocked_other_ns) AS blocked_other_ns
         FROM hops GROUP BY request_id, service",
    ),
    (
        "slowest_requests",
        // `kreq correlate` picks the critical hop (requests.critical_span_id).
        "SELECT r.request_id, r.start_ns, r.duration_ns, r.span_count, r.complete,
                h.service AS critical_service, h.tid AS critical_tid, h.self_ns AS critical_self_ns
         FROM requests r
         LEFT JOIN hops h ON h.span_id = r.critical_span_id",
    ),
    (
        "slow_requests",
        "SELECT request_id, duration_ns FROM (
           SELECT request_id, duration_ns,
                  row_number() OVER (ORDER BY duration_ns DESC, request_id) AS pos,
                  count(*) OVER () AS n
           FROM requests) t
         WHERE pos <= greatest(1, n / 100)",
    ),
    (
        "hotspot_threads",
        "SELECT h.service, h.tid, count(DISTINCT h.request_id) AS requests,
                sum(h.self_ns) AS self_ns,
                CAST(sum(h.self_ns) AS DOUBLE) / (SELECT sum(duration_ns) FROM slow_requests) AS share
         FROM hops h JOIN slow_requests s ON s.request_id = h.request_id
         GROUP BY h.service, h.tid",
    ),
    (
        "hotspot_syscalls",
        "SELECT comm AS service, tid, substr(event, 11) AS syscall, count(*) AS calls,
                sum(next_ts - ts_ns) AS total_ns
         FROM (SELECT e.comm, e.tid, e.event, e.ts_ns,
                      lead(e.event) OVER (PARTITION BY e.tid ORDER BY e.ts_ns) AS next_event,
                      lead(e.ts_ns) OVER (PARTITION BY e.tid ORDER BY e.ts_ns) AS next_ts
               FROM events e JOIN spans s ON s.span_id = e.span_id
               WHERE e.request_id IN (SELECT request_id FROM slow_requests)
                 AND e.event LIKE 'sys_%'
                 AND e.ts_ns >= s.start_ns) p
         WHERE event LIKE 'sys_enter_%' AND next_event = concat('sys_exit_', substr(event, 11))
         GROUP BY comm, tid, substr(event, 11)",
    ),
];

/// Needs only `lost_events`.
pub const LOST_SUMMARY: (&str, &str) = (
    "lost_summary",
    "SELECT cpu, kind, count(*) AS reports, sum(count) AS events_lost,
            min(ts_ns) AS first_ns, max(ts_ns) AS last_ns
     FROM lost_events GROUP BY cpu, kind",
);

/// Calls that cross hosts of a warehouse. Each host is correlated on its own: the caller's
/// host sees a client span to a peer it did not trace, the callee's host a request that starts
/// at its ingress. The two are one call when their connections mirror each other (the client's
/// local address and port are the server's peer, and the other way round) and they are the
/// same message on it (the k-th call on the connection on both sides). The callee read the
/// request after the caller sent it, and the caller read the reply after the callee sent it:
/// with θ the callee's clock minus the caller's, `received - sent >= θ >= answered - replied`,
/// the bounds NTP takes from one exchange. `clock_offsets` intersects them over every call.
pub const WAREHOUSE_VIEWS: &[(&str, &str)] = &[
    (
        "cross_host_calls",
        "WITH c AS (
            SELECT host, request_id, span_id, start_ns, end_ns,
                   local_addr, local_port, peer_addr, peer_port,
                   row_number() OVER (PARTITION BY host, local_addr, local_port, peer_addr,
                                      peer_port ORDER BY start_ns) AS k
            FROM spans WHERE kind = 'client'),
         s AS (
            SELECT s.host, s.request_id, s.span_id, s.start_ns, s.end_ns,
                   s.local_addr, s.local_port, s.peer_addr, s.peer_port,
                   row_number() OVER (PARTITION BY s.host, s.local_addr, s.local_port,
                                      s.peer_addr, s.peer_port ORDER BY s.start_ns) AS k
            FROM spans s JOIN requests r ON s.span_id = r.root_span_id
            WHERE s.kind = 'server')
         SELECT c.host AS client_host, s.host AS server_host,
                c.request_id AS client_request_id, c.span_id AS client_span_id,
                s.request_id AS server_request_id, s.span_id AS server_span_id,
                c.start_ns AS sent_ns, c.end_ns AS replied_ns,
                s.start_ns AS received_ns, s.end_ns AS answered_ns,
                s.end_ns - c.end_ns AS offset_min_ns,
                s.start_ns - c.start_ns AS offset_max_ns
         FROM c JOIN s
           ON c.local_addr = s.peer_addr AND c.local_port = s.peer_port
          AND c.peer_addr = s.local_addr AND c.peer_port = s.local_port
          AND c.k = s.k AND c.host <> s.host",
    ),
    (
        "clock_offsets",
        "SELECT client_host, server_host, count(*) AS calls,
                max(offset_min_ns) AS offset_min_ns, min(offset_max_ns) AS offset_max_ns,
                CAST((max(offset_min_ns) + min(offset_max_ns)) / 2 AS BIGINT) AS offset_ns,
                CAST((min(offset_max_ns) - max(offset_min_ns)) / 2 AS BIGINT) AS uncertainty_ns
         FROM cross_host_calls GROUP BY client_host, server_host",
    ),
    (
        "stitched_spans",
        // A request started by a call from another host joins the caller's request, whose
        // own caller's, and so on up the chain (x1, x2, x3: up to four hosts, front to back),
        // and its times move onto the first host's clock: each hop's offset (callee minus
        // caller) is taken off in turn. SQL has no loop that every engine runs (Spark's
        // recursive CTEs differ from DataFusion's), hence a fixed depth.
        "SELECT sp.*,
                COALESCE(x3.client_request_id, x2.client_request_id, x1.client_request_id,
                         sp.request_id) AS global_request_id,
                COALESCE(x3.client_host, x2.client_host, x1.client_host, sp.host) AS global_host,
                sp.start_ns - COALESCE(o1.offset_ns, 0) - COALESCE(o2.offset_ns, 0)
                    - COALESCE(o3.offset_ns, 0) AS aligned_start_ns,
                sp.end_ns - COALESCE(o1.offset_ns, 0) - COALESCE(o2.offset_ns, 0)
                    - COALESCE(o3.offset_ns, 0) AS aligned_end_ns
         FROM spans sp
         LEFT JOIN cross_host_calls x1 ON sp.request_id = x1.server_request_id
         LEFT JOIN clock_offsets o1 ON o1.server_host = sp.host AND o1.client_host = x1.client_host
         LEFT JOIN cross_host_calls x2 ON x1.client_request_id = x2.server_request_id
         LEFT JOIN clock_offsets o2
           ON o2.server_host = x1.client_host AND o2.client_host = x2.client_host
         LEFT JOIN cross_host_calls x3 ON x2.client_request_id = x3.server_request_id
         LEFT JOIN clock_offsets o3
           ON o3.server_host = x2.client_host AND o3.client_host = x3.client_host",
    ),
];

/// Registers the views: `lost_summary` when there is a `lost_events` table, the others when
/// the dataset is correlated (`events`, `spans`, `requests`), and [`WAREHOUSE_VIEWS`] when it
/// is a correlated warehouse.
pub async fn register(
    ctx: &SessionContext,
    lost: bool,
    correlated: bool,
    warehouse: bool,
) -> Result<()> {
    let mut views: Vec<(&str, &str)> = Vec::new();
    if lost {
        views.push(LOST_SUMMARY);
    }
    if correlated {
        views.extend_from_slice(VIEWS);
    }
    if correlated && warehouse {
        views.extend_from_slice(WAREHOUSE_VIEWS);
    }
    for (name, sql) in views {
        ctx.sql(&format!("CREATE VIEW {name} AS {sql}")).await?;
    }
    Ok(())
}
