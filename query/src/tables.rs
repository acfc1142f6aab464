//! Registering a dataset's tables with their declared schemas.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{col, SessionConfig, SessionContext};
use kreq_schemas::dataset as ds;
use kreq_schemas::table::{self, Table, Upgrade, CORRELATED};
use kreq_schemas::warehouse as wh;

use crate::optimizer::{DictionaryGroups, IntegerGroups, TopRows};
use crate::options::KreqOptions;
use crate::ordering::SchemaOrderedParquet;
use crate::{udf, views, Error, Result};

/// Session settings kreq sets unless a `DATAFUSION_*` variable does: statistics, page-index
/// and row-filter pruning of the Parquet scans, and joins on kreq's ids by direct index.
///
/// Span and request ids are small integers handed out in order, so a join on them can index
/// an array by key ("perfect hash join") instead of hashing, when the build side's keys fill
/// at least a tenth of their range (DataFusion's default asks 15%; `critical_span_id` of 1M
/// requests fills 12.5% of the span ids). All 1M requests joined to their critical hop: 253
/// -> 132 ms on 2 cores. The array costs at most 40 bytes per build row.
const DEFAULTS: &[(&str, &str)] = &[
    ("datafusion.execution.parquet.pruning", "true"),
    ("datafusion.execution.parquet.enable_page_index", "true"),
    ("datafusion.execution.parquet.pushdown_filters", "true"),
    ("datafusion.execution.parquet.reorder_filters", "true"),
    (
        "datafusion.execution.perfect_hash_join_min_key_density",
        "0.1",
    ),
];

/// Added on 4 or fewer cores: joining against a hash table built once from the whole smaller
/// side beats hash-partitioning both sides (the slowest-requests view: 270 vs 390 ms on 1M
/// requests, 2 cores). DataFusion's default cut-over (128k rows, 1 MB) suits many cores.
const FEW_CORE_DEFAULTS: &[(&str, &str)] = &[
    (
        "datafusion.optimizer.hash_join_single_partition_threshold",
        "536870912",
    ),
    (
        "datafusion.optimizer.hash_join_single_partition_threshold_rows",
        "8388608",
    ),
];

/// Whether any partition below a warehouse table holds a part.
fn has_parts_below(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok()).any(|e| {
            let p = e.path();
            p.is_dir() && (has_parts(&p) || has_parts_below(&p))
        })
    })
}

fn has_parts(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "parquet"))
    })
}

/// A session over the dataset at `path`: its tables, the UDFs and, when the dataset is
/// correlated, the analysis views. Returns the session and the names of the tables found.
pub async fn open(path: &Path) -> Result<(SessionContext, Vec<String>)> {
    open_with(path, &[]).await
}

/// [`open`] with session settings (`datafusion.*` or `kreq.*` keys, see [`crate::options`])
/// applied over kreq's defaults.
pub async fn open_with(
    path: &Path,
    settings: &[(String, String)],
) -> Result<(SessionContext, Vec<String>)> {
    open_session(path, settings, None).await
}

/// Turns a session's state into one whose plans run elsewhere (a cluster's scheduler).
pub type Remote<'a> = &'a dyn Fn(SessionState) -> datafusion::error::Result<SessionState>;

/// [`open_with`] for a session whose plans `remote` sends to a cluster (`kreq-cluster`).
///
/// What a cluster cannot decode stays out: the tables use DataFusion's own `ParquetFormat`
/// (protobuf knows no other), and kreq's optimizer rules are left off, since
/// `DictionaryGroups`' functions hold one query's codes in this process's memory. Both only
/// change speed: `SchemaOrderedParquet` guards against file sort orders that kreq wrote
/// before schema 4, and such datasets are refused here.
pub async fn open_remote(
    path: &Path,
    settings: &[(String, String)],
    remote: Remote<'_>,
) -> Result<(SessionContext, Vec<String>)> {
    open_session(path, settings, Some(remote)).await
}

async fn open_session(
    path: &Path,
    settings: &[(String, String)],
    remote: Option<Remote<'_>>,
) -> Result<(SessionContext, Vec<String>)> {
    let warehouse = wh::is_warehouse(path);
    if !warehouse && !path.join(ds::MANIFEST).exists() {
        return Err(Error::Dataset {
            path: path.to_owned(),
            msg:
                "not a kreq dataset (no kreq.json); create one with `kreq ingest` or `kreq record`"
                    .into(),
        });
    }
    // Correlation results of an older schema may lack columns this kreq reads (`Table::upgrade`).
    // A warehouse is of this kreq's schema (`kreq_warehouse` refuses another).
    let manifest = match warehouse {
        true => ds::Manifest::default(),
        false => ds::Manifest::read(path)?,
    };
    let version: u32 = manifest.schema_version.parse().unwrap_or(0);
    let stale = manifest.correlation.is_some().then(|| {
        CORRELATED.iter().find_map(|t| match t.upgrade(version) {
            Upgrade::Rewrite(by) => Some(by),
            Upgrade::None => None,
        })
    });
    if remote.is_some() && !warehouse && version < 4 {
        return Err(Error::Dataset {
            path: path.to_owned(),
            msg: format!(
                "written by an older kreq (schema {}), whose files declare sort orders they \
                 lack; a cluster reads them as declared, so ingest it again to query it there",
                manifest.schema_version
            ),
        });
    }
    if let Some(Some(by)) = stale {
        return Err(Error::Dataset {
            path: path.to_owned(),
            msg: format!(
                "correlated by an older kreq (schema {}); run `{by} {}` again",
                manifest.schema_version,
                path.display()
            ),
        });
    }
    // DATAFUSION_* environment variables tune the session (e.g. DATAFUSION_EXECUTION_BATCH_SIZE);
    // kreq's own defaults below apply where the environment says nothing.
    let mut config = SessionConfig::from_env()?
        .with_information_schema(true)
        .with_option_extension(KreqOptions::default());
    let opts = config.options_mut();
    let few_cores = opts.execution.target_partitions <= 4;
    let defaults = DEFAULTS
        .iter()
        .chain(few_cores.then_some(FEW_CORE_DEFAULTS).into_iter().flatten());
    for (key, value) in defaults {
        if std::env::var_os(key.to_uppercase().replace('.', "_")).is_none() {
            opts.set(key, value)?;
        }
    }
    for (key, value) in settings {
        opts.set(key, value)?;
    }
    let builder = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features();
    let ctx = match remote {
        None => {
            let state = builder
                .with_physical_optimizer_rule(Arc::new(IntegerGroups))
                .build();
            let ctx = SessionContext::new_with_state(state);
            ctx.add_optimizer_rule(Arc::new(DictionaryGroups));
            ctx.add_optimizer_rule(Arc::new(TopRows));
            ctx
        }
        Some(remote) => SessionContext::new_with_state(remote(builder.build())?),
    };
    udf::register(&ctx);
    let mut found = Vec::new();
    // Every table a dataset can have; their SQL names are their names.
    for t in table::ALL {
        // A warehouse's table is a symlink into its current snapshot: resolving it here pins
        // the session to that snapshot.
        let dir = t.dir(path);
        let present = match warehouse {
            true => has_parts_below(&dir),
            false => has_parts(&dir),
        };
        if !present {
            continue;
        }
        let url = ListingTableUrl::parse(format!("{}/", dir.canonicalize()?.display()))?;
        let format: Arc<dyn FileFormat> = match remote {
            None => Arc::new(SchemaOrderedParquet::default()),
            Some(_) => Arc::new(ParquetFormat::default()),
        };
        let mut listing = ListingOptions::new(format).with_file_extension(".parquet");
        if warehouse {
            // Hive partitions: `host=H/date=D/`, pruned by filters on these columns.
            listing = listing.with_table_partition_cols(vec![
                (wh::HOST.to_owned(), DataType::Utf8),
                (wh::DATE.to_owned(), DataType::Utf8),
            ]);
        }
        if let Some(key) = t.sorted_by {
            // The writers sort these parts (events by time).
            listing = listing.with_file_sort_order(vec![vec![col(key).sort(true, false)]]);
        }
        let cfg = ListingTableConfig::new(url)
            .with_listing_options(listing)
            .with_schema(t.schema());
        let listed = ListingTable::try_new(cfg)?;
        ctx.register_table(t.name, Arc::new(listed))?;
        found.push(t.name.to_owned());
    }
    let has = |t: Table| found.iter().any(|f| f == t.name);
    let correlated = has(table::SPANS) && has(table::REQUESTS) && has(table::EVENTS);
    let lost = has(table::LOST_EVENTS);
    views::register(&ctx, lost, correlated, warehouse).await?;
    Ok((ctx, found))
}
