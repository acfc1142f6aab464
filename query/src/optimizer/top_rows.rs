//! "Top k rows" queries over an outer join: keep only the k rows of the preserved side before
//! joining.
//!
//! `ORDER BY r.duration_ns DESC LIMIT 10` over `requests r LEFT JOIN hops h` (the
//! `slowest_requests` view) makes DataFusion 55 join all 1M requests and then keep 10. A left
//! join yields at least one row for every left row, and each output row carries its left
//! row's sort keys, so the first k output rows come from the first k left rows. [`TopRows`]
//! therefore adds `ORDER BY ... LIMIT k` on the preserved side of a left (or right) join when
//! every sort key is a column of that side, reached through projections and aliases only (a
//! filter could drop rows). The sort above stays and still decides the final order.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, JoinType, Result};
use datafusion::logical_expr::logical_plan::{Join, LogicalPlan, Projection, Sort, SubqueryAlias};
use datafusion::logical_expr::{Expr, SortExpr};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The optimizer rule (`kreq_top_rows`); see the module documentation.
#[derive(Debug, Default)]
pub struct TopRows;

impl OptimizerRule for TopRows {
    fn name(&self) -> &str {
        "kreq_top_rows"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Sort(Sort {
            expr,
            input,
            fetch: Some(fetch),
        }) = &plan
        else {
            return Ok(Transformed::no(plan));
        };
        if !crate::options::of(&config.options()).top_rows {
            return Ok(Transformed::no(plan));
        }
        let keys: Option<Vec<Key>> = expr
            .iter()
            .map(|s| match &s.expr {
                Expr::Column(c) => Some((c.clone(), s.asc, s.nulls_first)),
                _ => None,
            })
            .collect();
        let Some(keys) = keys else {
            return Ok(Transformed::no(plan));
        };
        match push(input, &keys, *fetch)? {
            Some(new_input) => Ok(Transformed::yes(LogicalPlan::Sort(Sort {
                expr: expr.clone(),
                input: Arc::new(new_input),
                fetch: Some(*fetch),
            }))),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// A sort key: column, ascending, nulls first.
type Key = (Column, bool, bool);

/// `plan` with the top `fetch` rows by `keys` taken on the preserved side of the join below,
/// or `None` when that is not known to be correct or already done.
fn push(plan: &LogicalPlan, keys: &[Key], fetch: usize) -> Result<Option<LogicalPlan>> {
    match plan {
        LogicalPlan::SubqueryAlias(a) => {
            let Some(inner) = map_keys(plan, keys, |i| {
                let (q, f) = a.input.schema().qualified_field(i);
                Some(Column::new(q.cloned(), f.name()))
            }) else {
                return Ok(None);
            };
            let Some(input) = push(&a.input, &inner, fetch)? else {
                return Ok(None);
            };
            Ok(Some(LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
                Arc::new(input),
                a.alias.clone(),
            )?)))
        }
        LogicalPlan::Projection(p) => {
            let Some(inner) = map_keys(plan, keys, |i| match p.expr.get(i)?.clone().unalias() {
                Expr::Column(c) => Some(c),
                _ => None,
            }) else {
                return Ok(None);
            };
            let Some(input) = push(&p.input, &inner, fetch)? else {
                return Ok(None);
            };
            Ok(Some(LogicalPlan::Projection(
                Projection::try_new_with_schema(
                    p.expr.clone(),
                    Arc::new(input),
                    Arc::clone(&p.schema),
                )?,
            )))
        }
        LogicalPlan::Join(j) => {
            let left = match j.join_type {
                JoinType::Left => true,
                JoinType::Right => false,
                _ => return Ok(None),
            };
            let side = if left { &j.left } else { &j.right };
            if !keys.iter().all(|(c, _, _)| side.schema().has_column(c)) {
                return Ok(None);
            }
            if let LogicalPlan::Sort(Sort { fetch: Some(f), .. }) = side.as_ref() {
                if *f <= fetch {
                    return Ok(None);
                }
            }
            let top = Arc::new(LogicalPlan::Sort(Sort {
                expr: keys
                    .iter()
                    .map(|(c, asc, nulls_first)| {
                        SortExpr::new(Expr::Column(c.clone()), *asc, *nulls_first)
                    })
                    .collect(),
                input: Arc::clone(side),
                fetch: Some(fetch),
            }));
            let mut join: Join = j.clone();
            if left {
                join.left = top;
            } else {
                join.right = top;
            }
            Ok(Some(LogicalPlan::Join(join)))
        }
        _ => Ok(None),
    }
}

/// `keys` (columns of `plan`'s output) as columns of its input, through `of_index` (output
/// position -> input column).
fn map_keys(
    plan: &LogicalPlan,
    keys: &[Key],
    of_index: impl Fn(usize) -> Option<Column>,
) -> Option<Vec<Key>> {
    keys.iter()
        .map(|(c, asc, nulls_first)| {
            let i = plan.schema().index_of_column(c).ok()?;
            Some((of_index(i)?, *asc, *nulls_first))
        })
        .collect()
}
