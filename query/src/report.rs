//! The standard analyses of a correlated dataset, shared by `kreq report` (text) and the
//! HTML report.

/// Request count, incomplete requests and exact latency percentiles (nearest rank) in ns:
/// one row with `requests`, `incomplete`, `p50_ns`, `p90_ns`, `p99_ns`, `max_ns`.
macro_rules! latency_sql {
    () => {
        "SELECT count(*) AS requests,
                sum(CASE WHEN complete THEN 0 ELSE 1 END) AS incomplete,
                max(CASE WHEN rn = CAST(ceil(n * 0.50) AS BIGINT) THEN d END) AS p50_ns,
                max(CASE WHEN rn = CAST(ceil(n * 0.90) AS BIGINT) THEN d END) AS p90_ns,
                max(CASE WHEN rn = CAST(ceil(n * 0.99) AS BIGINT) THEN d END) AS p99_ns,
                max(d) AS max_ns
         FROM (SELECT duration_ns AS d, complete,
                      CAST(row_number() OVER (ORDER BY duration_ns) AS BIGINT) AS rn,
                      count(*) OVER () AS n
               FROM requests) t"
    };
}

/// See `latency_sql`: the numbers behind the "Requests" section, unformatted.
pub const LATENCY: &str = latency_sql!();

/// The report's sections: title and query (`{top}` is replaced by the row limit).
pub const SECTIONS: &[(&str, &str)] = &[
    (
        "Requests",
        concat!(
            "SELECT requests, incomplete, fmt_duration(p50_ns) AS p50, fmt_duration(p90_ns) AS p90,
                    fmt_duration(p99_ns) AS p99, fmt_duration(max_ns) AS max FROM (",
            latency_sql!(),
            ") l"
        ),
    ),
    (
        "Slowest requests and their critical hop (the hop with the most self time)",
        "SELECT request_id, fmt_duration(duration_ns) AS duration, span_count AS spans, complete,
                critical_service, critical_tid, fmt_duration(critical_self_ns) AS critical_self
         FROM slowest_requests ORDER BY duration_ns DESC, request_id LIMIT {top}",
    ),
    (
        "Where requests spend their time (mean self time per request, by service and kernel state)",
        "SELECT service, count(DISTINCT request_id) AS requests,
                fmt_duration(CAST(sum(self_ns) / count(DISTINCT request_id) AS BIGINT)) AS mean_self,
                round(100.0 * sum(cpu_ns) / greatest(sum(self_ns), 1), 1) AS cpu_pct,
                round(100.0 * sum(runnable_ns) / greatest(sum(self_ns), 1), 1) AS runnable_pct,
                round(100.0 * sum(blocked_network_ns) / greatest(sum(self_ns), 1), 1) AS net_pct,
                round(100.0 * sum(blocked_disk_ns) / greatest(sum(self_ns), 1), 1) AS disk_pct,
                round(100.0 * sum(blocked_lock_ns) / greatest(sum(self_ns), 1), 1) AS lock_pct,
                round(100.0 * sum(blocked_other_ns) / greatest(sum(self_ns), 1), 1) AS other_pct
         FROM request_breakdown GROUP BY service ORDER BY sum(self_ns) DESC",
    ),
    (
        "Hotspots of the slowest 1%: threads",
        "SELECT service, tid, requests, fmt_duration(self_ns) AS self_time,
                round(100.0 * share, 1) AS share_pct
         FROM hotspot_threads ORDER BY self_ns DESC, service, tid LIMIT {top}",
    ),
    (
        "Hotspots of the slowest 1%: syscalls",
        "SELECT service, tid, syscall, calls, fmt_duration(total_ns) AS time
         FROM hotspot_syscalls ORDER BY total_ns DESC, service, tid, syscall LIMIT {top}",
    ),
    (
        "Lost events",
        "SELECT cpu, kind, reports, events_lost FROM lost_summary ORDER BY cpu, kind",
    ),
];
