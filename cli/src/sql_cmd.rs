//! `kreq sql`: one query, or an interactive shell.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use datafusion::prelude::SessionContext;
use kreq_query::output::{self, Format};

/// Arguments of `kreq sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Dataset directory.
    pub dataset: PathBuf,
    /// The query; without one, an interactive shell starts.
    pub query: Option<String>,
    /// table, csv, ndjson or parquet (default: table on a terminal, csv otherwise).
    #[arg(long)]
    pub format: Option<Format>,
    /// Write the result here instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Run the query this many times and print each run's time to standard error.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Session setting KEY=VALUE, repeatable: DataFusion's (`datafusion.execution.batch_size=32768`)
    /// or kreq's (`kreq.integer_groups=false`; see README "kreq sql").
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
    /// Print the analysis views' definitions as JSON `[[name, sql], ...]` (to define them in
    /// another engine, such as DuckDB) and exit.
    #[arg(long)]
    pub views_json: bool,
    /// Plan and run on the Ballista cluster whose scheduler is at df://HOST:PORT (`kreq
    /// cluster`; cargo feature `cluster`). Its executors must read the dataset at this path.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs `kreq sql`.
pub fn run(args: SqlArgs) -> Result<()> {
    if args.views_json {
        let mut v = vec![kreq_query::views::LOST_SUMMARY];
        v.extend_from_slice(kreq_query::views::VIEWS);
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    let rt = runtime()?;
    rt.block_on(async {
        let (ctx, tables) = open(&args).await?;
        let done = match &args.query {
            Some(q) => one(&ctx, q, &args).await,
            None => shell(&ctx, &tables, &args).await,
        };
        match &args.cluster {
            Some(url) => done.with_context(|| format!("on the Ballista cluster at {url}")),
            None => done,
        }
    })
}

async fn open(args: &SqlArgs) -> Result<(SessionContext, Vec<String>)> {
    let Some(url) = &args.cluster else {
        return Ok(kreq_query::open_with(&args.dataset, &args.settings).await?);
    };
    #[cfg(feature = "cluster")]
    {
        let remote = kreq_cluster::remote(url)?;
        Ok(kreq_query::open_remote(&args.dataset, &args.settings, &remote).await?)
    }
    #[cfg(not(feature = "cluster"))]
    {
        anyhow::bail!("--cluster {url}: {}", crate::cluster_cmd::NOT_BUILT)
    }
}

fn default_format(to_file: bool) -> Format {
    if !to_file && std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Csv
    }
}

async fn one(ctx: &SessionContext, q: &str, args: &SqlArgs) -> Result<()> {
    let format = args
        .format
        .unwrap_or_else(|| default_format(args.output.is_some()));
    if format == Format::Parquet && args.output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "--format parquet writes binary: give --output FILE or redirect standard output"
        );
    }
    let mut batches = Vec::new();
    let mut schema = None;
    for i in 0..args.repeat.max(1) {
        let t0 = Instant::now();
        let df = ctx.sql(q).await?;
        schema = Some(df.schema().inner().clone());
        batches = df.collect().await?;
        if args.repeat > 1 {
            eprintln!("run {}: {:.1} ms", i + 1, t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let schema = schema.context("no query ran")?;
    match &args.output {
        Some(path) => {
            crate::outfile::with_output(path, |f| output::write(f, format, &schema, &batches))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            output::write(&mut out, format, &schema, &batches)?;
            out.flush()?;
        }
    }
    Ok(())
}

const HELP: &str = "\
Statements end with `;` and may span lines. Commands:
  .tables          tables and views of this dataset
  .schema NAME     columns and types of a table or view
  .format FORMAT   table, csv or ndjson for the following results
  .help            this text
  .quit            leave (or Ctrl-D)
Tables: events, lost_events, requests, spans, edges. Views: hops, request_breakdown,
slowest_requests, slow_requests, hotspot_threads, hotspot_syscalls, lost_summary.
Functions: fmt_duration(ns), fmt_endpoint(addr, port), field(fields, 'key').";

async fn shell(ctx: &SessionContext, tables: &[String], args: &SqlArgs) -> Result<()> {
    let mut rl = rustyline::DefaultEditor::new()?;
    let history = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".kreq_history");
    let _ = rl.load_history(&history);
    let mut format = args.format.unwrap_or(Format::Table);
    eprintln!(
        "kreq sql on {} ({}); .help for help",
        args.dataset.display(),
        tables.join(", ")
    );
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() { "kreq> " } else { "  ...> " };
        let line = match rl.readline(prompt) {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                buf.clear();
                continue;
            }
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if buf.is_empty() && trimmed.starts_with('.') {
            let _ = rl.add_history_entry(trimmed);
            let mut parts = trimmed.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some(".quit" | ".exit"), _) => break,
                (Some(".help"), _) => println!("{HELP}"),
                (Some(".tables"), _) => {
                    let q = "SELECT table_name, table_type FROM information_schema.tables \
                             WHERE table_schema = 'public' ORDER BY table_type, table_name";
                    print_result(ctx, q, Format::Table).await;
                }
                (Some(".schema"), Some(name)) => {
                    let q = format!(
                        "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                         WHERE table_name = '{}' ORDER BY ordinal_position",
                        name.replace('\'', "''")
                    );
                    print_result(ctx, &q, Format::Table).await;
                }
                (Some(".format"), Some(f)) => match f.parse::<Format>() {
                    Ok(Format::Parquet) => {
                        eprintln!("parquet is for files: use kreq sql DATASET QUERY -o FILE")
                    }
                    Ok(f) => format = f,
                    Err(e) => eprintln!("{e}"),
                },
                _ => eprintln!("unknown command {trimmed:?}; .help lists them"),
            }
            continue;
        }
        buf.push_str(&line);
        buf.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let stmt = std::mem::take(&mut buf);
        let _ = rl.add_history_entry(stmt.trim());
        let t0 = Instant::now();
        print_result(ctx, stmt.trim().trim_end_matches(';'), format).await;
        eprintln!("({:.1} ms)", t0.elapsed().as_secs_f64() * 1e3);
    }
    let _ = rl.save_history(&history);
    Ok(())
}

async fn print_result(ctx: &SessionContext, q: &str, format: Format) {
    let res = async {
        let df = ctx.sql(q).await?;
        let schema = df.schema().inner().clone();
        let batches = df.collect().await?;
        let mut out = std::io::stdout().lock();
        output::write(&mut out, format, &schema, &batches)?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = res {
        eprintln!("error: {e:#}");
    }
}
