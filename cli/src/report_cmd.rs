//! `kreq report`: the standard analyses of a correlated dataset, as text.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use datafusion::prelude::SessionContext;
use kreq_query::output::{self, Format};

/// Arguments of `kreq report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A correlated dataset (`kreq correlate` has run).
    pub dataset: PathBuf,
    /// Rows per section.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Write a self-contained HTML page (latency distribution, a request waterfall, the
    /// tables) to this file instead of printing text.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// HTML: the request drawn as a waterfall (default: the slowest).
    #[arg(long)]
    pub request: Option<u64>,
}

/// Runs `kreq report`.
pub fn run(args: ReportArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (ctx, tables) = kreq_query::open(&args.dataset).await?;
        if !tables.iter().any(|t| t == kreq_schemas::table::SPANS.name) {
            bail!(
                "{}: no correlation results; run `kreq correlate {}` first",
                args.dataset.display(),
                args.dataset.display()
            );
        }
        if let Some(path) = &args.html {
            let title = args.dataset.display().to_string();
            let report =
                kreq_query::export::html::build(&ctx, &title, args.request, args.top).await?;
            crate::outfile::with_output(path, |out| {
                kreq_query::export::html::render(&report, out)
            })?;
            let spans = report.waterfall.as_ref().map_or(0, |w| w.1.len());
            eprintln!(
                "wrote {} ({:.1} KB; waterfall of request {} with {spans} spans)",
                path.display(),
                std::fs::metadata(path).map_or(0, |m| m.len()) as f64 / 1e3,
                report.waterfall.as_ref().map_or(0, |w| w.0.id),
            );
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        for (title, q) in kreq_query::report::SECTIONS {
            section(
                &ctx,
                &mut out,
                title,
                &q.replace("{top}", &args.top.to_string()),
            )
            .await?;
        }
        Ok(())
    })
}

async fn section(
    ctx: &SessionContext,
    out: &mut dyn std::io::Write,
    title: &str,
    q: &str,
) -> Result<()> {
    let df = ctx.sql(q).await?;
    let schema = df.schema().inner().clone();
    let batches = df.collect().await?;
    writeln!(out, "\n## {title}")?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        writeln!(out, "(none)")?;
        return Ok(());
    }
    output::write(out, Format::Table, &schema, &batches)?;
    Ok(())
}
