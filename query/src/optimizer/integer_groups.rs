//! First-stage aggregation over one integer group key by direct lookup.
//!
//! DataFusion 55 finds each row's group through a hash table (`GroupValuesPrimitive`): a hash
//! and a probe per row, 42% of `GROUP BY tid` over 52M events. Trace keys are small
//! non-negative integers (thread ids, CPUs, ports, the codes of [`super::dictionary_groups`]),
//! so [`IntegerGroups`] replaces each partial `AggregateExec` with one integer key by an
//! [`IntegerGroupsExec`] that indexes a table by the key itself (keys outside
//! `0..DENSE_KEYS` go through a hash map). It feeds DataFusion's own group accumulators and
//! emits the same partial state, so the final aggregate above is unchanged. Partial state can
//! be emitted at any time, so after [`MAX_GROUPS`] groups it is flushed and memory stays
//! bounded.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{exec_err, Result};
use datafusion::config::ConfigOptions;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet, RecordOutput,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties,
    ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::StreamExt;

mod table;
use table::Table;

/// Groups held before the partial state is emitted and the table starts afresh.
pub const MAX_GROUPS: usize = 1 << 20;

/// The physical optimizer rule (`kreq_integer_groups`).
#[derive(Debug, Default)]
pub struct IntegerGroups;

impl PhysicalOptimizerRule for IntegerGroups {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !crate::options::of(config).integer_groups {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(agg) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            if !eligible(agg)? {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(
                Arc::new(IntegerGroupsExec::new(agg.clone())) as _,
            ))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "kreq_integer_groups"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A partial aggregate on raw rows with one plain integer key, no ordering, limit or dynamic
/// filter, whose aggregates all have group accumulators.
fn eligible(agg: &AggregateExec) -> Result<bool> {
    let group = agg.group_expr();
    if *agg.mode() != AggregateMode::Partial
        || !group.is_single()
        || group.expr().len() != 1
        || agg.limit_options().is_some()
        || !agg.dynamic_expressions_produced().is_empty()
        || *agg.input_order_mode() != InputOrderMode::Linear
    {
        return Ok(false);
    }
    let key_type = group.expr()[0].0.data_type(&agg.input_schema())?;
    Ok(key_type.is_integer()
        && agg
            .aggr_expr()
            .iter()
            .all(|a| a.groups_accumulator_supported() && a.order_bys().is_empty()))
}

/// A partial `AggregateExec` computed by direct lookup of its integer key.
#[derive(Debug)]
pub struct IntegerGroupsExec {
    agg: AggregateExec,
    metrics: ExecutionPlanMetricsSet,
}

impl IntegerGroupsExec {
    /// Computes `agg` (which [`IntegerGroups`] found eligible) by direct lookup.
    pub fn new(agg: AggregateExec) -> Self {
        Self {
            agg,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for IntegerGroupsExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "IntegerGroupsExec: ")?;
        self.agg.fmt_as(t, f)
    }
}

impl ExecutionPlan for IntegerGroupsExec {
    fn name(&self) -> &str {
        "IntegerGroupsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.agg.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.agg.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.agg.apply_expressions(f)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let agg = Arc::new(self.agg.clone()).replace_children(children, options)?;
        match agg.downcast_ref::<AggregateExec>() {
            Some(a) => Ok(Arc::new(Self::new(a.clone()))),
            None => exec_err!("IntegerGroupsExec: the rebuilt aggregate is not an AggregateExec"),
        }
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        use datafusion::physical_plan::ChildrenPropertiesMode;
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let run = Run {
            input: self.agg.input().execute(partition, Arc::clone(&context))?,
            table: Table::new(&self.agg)?,
            out: Vec::new(),
            done: false,
            metrics: BaselineMetrics::new(&self.metrics, partition),
            batch_size: context.session_config().batch_size(),
        };
        let stream = futures::stream::unfold(run, Run::next);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One partition's run: the input, the table, batches ready to go out.
struct Run {
    input: SendableRecordBatchStream,
    table: Table,
    out: Vec<RecordBatch>,
    done: bool,
    metrics: BaselineMetrics,
    batch_size: usize,
}

impl Run {
    /// The next output batch: partial state, emitted when the table is full or the input ends.
    async fn next(mut self) -> Option<(Result<RecordBatch>, Self)> {
        loop {
            if let Some(b) = self.out.pop() {
                return Some((Ok(b.record_output(&self.metrics)), self));
            }
            if self.done {
                return None;
            }
            let next = self.input.next().await;
            let timer = self.metrics.elapsed_compute().timer();
            let step = match next {
                Some(Ok(batch)) => self.table.update(&batch).and_then(|()| {
                    if self.table.len() >= MAX_GROUPS {
                        self.table.emit(self.batch_size)
                    } else {
                        Ok(Vec::new())
                    }
                }),
                Some(Err(e)) => Err(e),
                None => {
                    self.done = true;
                    self.table.emit(self.batch_size)
                }
            };
            timer.done();
            match step {
                Ok(batches) => self.out = batches.into_iter().rev().collect(),
                Err(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
            }
        }
    }
}
