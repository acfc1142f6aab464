//! The same analysis views, defined by the same SQL, in DuckDB over the same Parquet files:
//! every result must agree with DataFusion's.

use std::process::Command;

use kreq_query::output::{self, Format};
use kreq_query::views::{LOST_SUMMARY, VIEWS};

/// Analysis queries with a total order, so both engines list rows the same way.
const QUERIES: &[&str] = &[
    "SELECT * FROM request_breakdown ORDER BY request_id, service",
    "SELECT * FROM slowest_requests ORDER BY duration_ns DESC, request_id",
    "SELECT * FROM slow_requests ORDER BY request_id",
    "SELECT * FROM hotspot_threads ORDER BY service, tid",
    "SELECT * FROM hotspot_syscalls ORDER BY service, tid, syscall",
    "SELECT * FROM hops ORDER BY span_id, kind",
    "SELECT * FROM lost_summary ORDER BY cpu, kind",
    "SELECT service, count(DISTINCT request_id) AS requests, sum(self_ns) AS self_ns FROM request_breakdown GROUP BY service ORDER BY service",
];

#[test]
fn analysis_views_agree_with_duckdb() {
    if !super::python_with("duckdb", "analysis_views_agree_with_duckdb") {
        return;
    }
    let ds = super::t0().to_owned();
    let work = ds.with_file_name("duckdb-compare");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("dir");
    super::runtime().block_on(async {
        let (ctx, _) = kreq_query::open(&ds).await.expect("open");
        for (i, q) in QUERIES.iter().enumerate() {
            let df = ctx.sql(q).await.expect(q);
            let schema = df.schema().inner().clone();
            let batches = df.collect().await.expect(q);
            let mut f = std::fs::File::create(work.join(format!("{i}.csv"))).expect("csv");
            output::write(&mut f, Format::Csv, &schema, &batches).expect("write");
        }
    });
    let mut views: Vec<(&str, &str)> = vec![LOST_SUMMARY];
    views.extend_from_slice(VIEWS);
    let spec = serde_json::json!({
        "views": views,
        "queries": QUERIES,
    });
    std::fs::write(work.join("spec.json"), spec.to_string()).expect("spec");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/compare_duckdb.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(&ds)
        .arg(&work)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    eprintln!("{text}");
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains(&format!("{} queries agree", QUERIES.len())),
        "{text}"
    );
}
