//! Runs every `tests/slt/*.slt` file against the `s1-c1` fixture.
//!
//! `KREQ_SLT_UPDATE=1 cargo test -p kreq-query --test it slt::sqllogictest_files` rewrites the
//! files' expected results with what kreq answers (then review the diff): correlation changes
//! move the fixture's labels, and hand-editing hundreds of result lines invites typos.

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SqlError(String);

struct Kreq {
    ctx: SessionContext,
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, SqlError> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SqlError(e.to_string()))?;
        for r in 0..b.num_rows() {
            out.push(
                fmts.iter()
                    .zip(b.columns())
                    .map(|(f, c)| {
                        let s = f.value(r).to_string();
                        if s.is_empty() && c.is_valid(r) {
                            "(empty)".to_owned()
                        } else {
                            s
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl AsyncDB for Kreq {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let err = |e: datafusion::error::DataFusionError| SqlError(e.to_string());
        let df = self.ctx.sql(sql).await.map_err(err)?;
        let types = df
            .schema()
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect::<Vec<_>>();
        let is_statement = sql.trim_start().to_ascii_uppercase().starts_with("CREATE");
        let batches = df.collect().await.map_err(err)?;
        if is_statement {
            return Ok(DBOutput::StatementComplete(0));
        }
        Ok(DBOutput::Rows {
            types,
            rows: rows(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "kreq-datafusion"
    }
}

#[test]
fn sqllogictest_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("slt dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let ds = super::s1().to_owned();
    // Every file also runs with kreq's optimizer rules off: they must not change a result.
    let off: Vec<(String, String)> = ["dictionary_groups", "integer_groups", "top_rows"]
        .iter()
        .map(|r| (format!("kreq.{r}"), "false".to_owned()))
        .collect();
    let update = std::env::var_os("KREQ_SLT_UPDATE").is_some_and(|v| v == "1");
    super::runtime().block_on(async move {
        if update {
            for f in &files {
                let (ctx, _) = kreq_query::open_with(&ds, &[]).await.expect("open fixture");
                let mut runner = sqllogictest::Runner::new(move || {
                    let ctx = ctx.clone();
                    async move { Ok(Kreq { ctx }) }
                });
                runner
                    .update_test_file(
                        f,
                        " ",
                        sqllogictest::default_validator,
                        sqllogictest::default_normalizer,
                        sqllogictest::default_column_validator,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            }
        }
        for settings in [&[][..], &off[..]] {
            for f in &files {
                let (ctx, _) = kreq_query::open_with(&ds, settings)
                    .await
                    .expect("open fixture");
                let mut runner = sqllogictest::Runner::new(move || {
                    let ctx = ctx.clone();
                    async move { Ok(Kreq { ctx }) }
                });
                runner
                    .run_file_async(f)
                    .await
                    .unwrap_or_else(|e| panic!("{} {settings:?}: {e}", f.display()));
            }
        }
    });
}

/// The logical plan of `sql` as text.
async fn logical_plan(ctx: &SessionContext, sql: &str) -> String {
    let df = ctx.sql(sql).await.expect("plan");
    format!(
        "{}",
        df.into_optimized_plan().expect("optimize").display_indent()
    )
}

/// `dictionary_groups.slt` checks the results; this checks they came from the rewritten plan.
#[test]
fn dictionary_group_keys_are_grouped_as_codes() {
    let ds = super::s1().to_owned();
    super::runtime().block_on(async move {
        let (ctx, _) = kreq_query::open(&ds).await.expect("open fixture");
        let plan = logical_plan(
            &ctx,
            "SELECT comm, tid, count(*) FROM events GROUP BY comm, tid",
        )
        .await;
        assert!(
            plan.contains("groupBy=[[kreq_dict_code(events.comm) AS __kreq_code_0, events.tid]]")
                && plan.contains("kreq_dict_text(__kreq_code_0) AS comm"),
            "{plan}"
        );
        // Integer keys and grouping sets are DataFusion's own.
        for sql in [
            "SELECT tid, count(*) FROM events GROUP BY tid",
            "SELECT comm, count(*) FROM events GROUP BY ROLLUP (comm)",
        ] {
            let plan = logical_plan(&ctx, sql).await;
            assert!(!plan.contains("kreq_dict_code"), "{sql}: {plan}");
        }
    });
}

/// The physical plan of `sql` as text.
async fn physical_plan(ctx: &SessionContext, sql: &str) -> String {
    let df = ctx.sql(sql).await.expect("plan");
    let plan = df.create_physical_plan().await.expect("physical plan");
    format!(
        "{}",
        datafusion::physical_plan::displayable(plan.as_ref()).indent(false)
    )
}

/// `integer_groups.slt` checks the results; this checks which plans take the direct lookup.
#[test]
fn integer_group_keys_take_the_direct_lookup() {
    let ds = super::s1().to_owned();
    super::runtime().block_on(async move {
        let (ctx, _) = kreq_query::open(&ds).await.expect("open fixture");
        for sql in [
            "SELECT tid, count(*) FROM events GROUP BY tid",
            "SELECT cpu, sum(length) FROM events GROUP BY cpu",
            // Dictionary text keys group as integer codes, so they take it too.
            "SELECT event, count(*) FROM events GROUP BY event",
        ] {
            let plan = physical_plan(&ctx, sql).await;
            assert!(
                plan.contains("IntegerGroupsExec: AggregateExec: mode=Partial"),
                "{sql}: {plan}"
            );
        }
        // Two keys, a float key and grouping sets are DataFusion's own.
        for sql in [
            "SELECT tid, cpu, count(*) FROM events GROUP BY tid, cpu",
            "SELECT CAST(tid AS DOUBLE) AS t, count(*) FROM events GROUP BY t",
            "SELECT tid, count(*) FROM events GROUP BY ROLLUP (tid)",
        ] {
            let plan = physical_plan(&ctx, sql).await;
            assert!(!plan.contains("IntegerGroupsExec"), "{sql}: {plan}");
        }
    });
}

/// `top_rows.slt` checks the results; this checks where the top rows are taken.
#[test]
fn top_rows_are_taken_below_outer_joins_only_when_correct() {
    let ds = super::s1().to_owned();
    super::runtime().block_on(async move {
        let (ctx, _) = kreq_query::open(&ds).await.expect("open fixture");
        let pushed = "Left Join: r.critical_span_id = h.span_id\n        Sort: r.duration_ns DESC NULLS FIRST, r.request_id ASC NULLS LAST, fetch=10";
        let plan = logical_plan(
            &ctx,
            "SELECT * FROM slowest_requests ORDER BY duration_ns DESC, request_id LIMIT 10",
        )
        .await;
        assert!(plan.contains(pushed), "{plan}");
        for sql in [
            // A key of the other side.
            "SELECT r.request_id FROM requests r LEFT JOIN spans s ON s.span_id = r.critical_span_id \
             ORDER BY s.duration_ns DESC LIMIT 3",
            // An inner join.
            "SELECT r.request_id FROM requests r JOIN spans s ON s.span_id = r.critical_span_id \
             ORDER BY r.duration_ns DESC LIMIT 3",
            // A filter between the sort and the join.
            "SELECT r.request_id FROM requests r LEFT JOIN spans s ON s.span_id = r.critical_span_id \
             WHERE s.kind = 'server' ORDER BY r.duration_ns DESC LIMIT 3",
        ] {
            let plan = logical_plan(&ctx, sql).await;
            assert_eq!(plan.matches("fetch=").count(), 1, "{sql}: {plan}");
        }
    });
}

/// Each kreq rule can be turned off, by `open_with` settings or by SQL `SET`.
#[test]
fn kreq_rules_can_be_turned_off() {
    let ds = super::s1().to_owned();
    super::runtime().block_on(async move {
        let off = [("kreq.integer_groups".to_owned(), "false".to_owned())];
        let (ctx, _) = kreq_query::open_with(&ds, &off).await.expect("open");
        let sql = "SELECT tid, count(*) FROM events GROUP BY tid";
        assert!(!physical_plan(&ctx, sql).await.contains("IntegerGroupsExec"));
        let (ctx, _) = kreq_query::open(&ds).await.expect("open");
        assert!(physical_plan(&ctx, sql).await.contains("IntegerGroupsExec"));
        for set in [
            "SET kreq.dictionary_groups = false",
            "SET kreq.top_rows = false",
        ] {
            ctx.sql(set).await.expect(set).collect().await.expect(set);
        }
        let plan = logical_plan(&ctx, "SELECT comm, count(*) FROM events GROUP BY comm").await;
        assert!(!plan.contains("kreq_dict_code"), "{plan}");
        let plan = logical_plan(
            &ctx,
            "SELECT * FROM slowest_requests ORDER BY duration_ns DESC, request_id LIMIT 10",
        )
        .await;
        assert_eq!(plan.matches("fetch=").count(), 1, "{plan}");
        assert!(
            kreq_query::open_with(&ds, &[("kreq.nope".into(), "1".into())])
                .await
                .is_err()
        );
    });
}
