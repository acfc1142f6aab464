//! The group table of one partition: integer key -> group index, and the accumulators.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Int64Array, PrimitiveArray,
    RecordBatch,
};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::*;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::{aggregate_expressions, AggregateExec};
use datafusion::physical_plan::ExecutionPlan;
use hashbrown::HashMap;

/// Keys in `0..DENSE_KEYS` index the lookup table directly (Linux thread ids stay below
/// 2^22). The table is allocated zeroed on first use, so only touched pages cost memory.
const DENSE_KEYS: usize = 1 << 22;

/// Key -> group index. Keys are held as `i64` (unsigned 64-bit keys by their bit pattern).
#[derive(Default)]
struct Lookup {
    /// `group + 1` per key in `0..DENSE_KEYS`, 0 for none; empty until first needed.
    dense: Vec<u32>,
    sparse: HashMap<i64, usize>,
    null_group: Option<usize>,
    /// The key of each group (0 for the null group).
    keys: Vec<i64>,
}

impl Lookup {
    /// The group of key `k`. The hot path is one load from the dense table; a new key or one
    /// outside the dense range takes [`Lookup::insert`].
    #[inline(always)]
    fn group(&mut self, k: i64) -> usize {
        match self.dense.get(k as usize) {
            Some(&g) if g != 0 => g as usize - 1,
            _ => self.insert(k),
        }
    }

    #[cold]
    #[inline(never)]
    fn insert(&mut self, k: i64) -> usize {
        if (k as u64) < DENSE_KEYS as u64 {
            if self.dense.is_empty() {
                self.dense = vec![0; DENSE_KEYS];
            }
            let slot = &mut self.dense[k as usize];
            if *slot == 0 {
                self.keys.push(k);
                *slot = self.keys.len() as u32;
            }
            *slot as usize - 1
        } else {
            let keys = &mut self.keys;
            *self.sparse.entry(k).or_insert_with(|| {
                keys.push(k);
                keys.len() - 1
            })
        }
    }

    fn null(&mut self) -> usize {
        let keys = &mut self.keys;
        *self.null_group.get_or_insert_with(|| {
            keys.push(0);
            keys.len() - 1
        })
    }

    /// Forgets every group, keeping the allocations.
    fn clear(&mut self) {
        for &k in &self.keys {
            if let Some(slot) = usize::try_from(k).ok().and_then(|k| self.dense.get_mut(k)) {
                *slot = 0;
            }
        }
        self.sparse.clear();
        self.null_group = None;
        self.keys.clear();
    }
}

/// One partition's groups and their accumulators.
pub(super) struct Table {
    key: Arc<dyn PhysicalExpr>,
    key_type: DataType,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    schema: SchemaRef,
    lookup: Lookup,
    /// Scratch: the group of each row of the current batch.
    groups: Vec<usize>,
    /// Arrays of constant arguments (`count(*)` counts a literal 1), kept across batches.
    constants: Vec<(ScalarValue, ArrayRef)>,
}

impl Table {
    pub(super) fn new(agg: &AggregateExec) -> Result<Self> {
        let key = Arc::clone(&agg.group_expr().expr()[0].0);
        let key_type = key.data_type(&agg.input_schema())?;
        let aggregates = agg.aggr_expr().to_vec();
        Ok(Self {
            key,
            key_type,
            arguments: aggregate_expressions(&aggregates, agg.mode(), 0)?,
            filters: agg.filter_expr().to_vec(),
            accumulators: accumulators(&aggregates)?,
            aggregates,
            schema: ExecutionPlan::schema(agg),
            lookup: Lookup::default(),
            groups: Vec::new(),
            constants: Vec::new(),
        })
    }

    /// Number of groups held.
    pub(super) fn len(&self) -> usize {
        self.lookup.keys.len()
    }

    /// Adds one input batch.
    pub(super) fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let key = self.key.evaluate(batch)?.into_array(rows)?;
        self.groups.clear();
        self.groups.reserve(rows);
        match key.data_type() {
            DataType::Int8 => self.intern(key.as_primitive::<Int8Type>(), |v| v as i64),
            DataType::Int16 => self.intern(key.as_primitive::<Int16Type>(), |v| v as i64),
            DataType::Int32 => self.intern(key.as_primitive::<Int32Type>(), |v| v as i64),
            DataType::Int64 => self.intern(key.as_primitive::<Int64Type>(), |v| v),
            DataType::UInt8 => self.intern(key.as_primitive::<UInt8Type>(), |v| v as i64),
            DataType::UInt16 => self.intern(key.as_primitive::<UInt16Type>(), |v| v as i64),
            DataType::UInt32 => self.intern(key.as_primitive::<UInt32Type>(), |v| v as i64),
            DataType::UInt64 => self.intern(key.as_primitive::<UInt64Type>(), |v| v as i64),
            other => return exec_err!("IntegerGroupsExec: group key of type {other}"),
        }
        let total = self.lookup.keys.len();
        for ((acc, args), filter) in self
            .accumulators
            .iter_mut()
            .zip(&self.arguments)
            .zip(&self.filters)
        {
            let values = args
                .iter()
                .map(|e| match e.evaluate(batch)? {
                    ColumnarValue::Array(a) => Ok(a),
                    ColumnarValue::Scalar(s) => constant(&mut self.constants, s, rows),
                })
                .collect::<Result<Vec<_>>>()?;
            let filter = match filter {
                Some(f) => Some(f.evaluate(batch)?.into_array(rows)?),
                None => None,
            };
            let filter: Option<&BooleanArray> = match &filter {
                Some(f) => match f.as_boolean_opt() {
                    Some(b) => Some(b),
                    None => return exec_err!("aggregate filter of type {}", f.data_type()),
                },
                None => None,
            };
            acc.update_batch(&values, &self.groups, filter, total)?;
        }
        Ok(())
    }

    fn intern<T: ArrowPrimitiveType>(
        &mut self,
        keys: &PrimitiveArray<T>,
        to_key: impl Fn(T::Native) -> i64,
    ) {
        let (lookup, groups) = (&mut self.lookup, &mut self.groups);
        match keys.nulls().filter(|n| n.null_count() > 0) {
            None => groups.extend(keys.values().iter().map(|&v| lookup.group(to_key(v)))),
            Some(nulls) => {
                for (i, &v) in keys.values().iter().enumerate() {
                    let g = if nulls.is_valid(i) {
                        lookup.group(to_key(v))
                    } else {
                        lookup.null()
                    };
                    groups.push(g);
                }
            }
        }
    }

    /// Emits every group's partial state, in batches of at most `batch_size` rows, and starts
    /// afresh.
    pub(super) fn emit(&mut self, batch_size: usize) -> Result<Vec<RecordBatch>> {
        if self.lookup.keys.is_empty() {
            return Ok(Vec::new());
        }
        let n = self.lookup.keys.len();
        let nulls = self.lookup.null_group.map(|g| {
            let mut valid = vec![true; n];
            valid[g] = false;
            NullBuffer::from(valid)
        });
        let keys = Int64Array::new(ScalarBuffer::from(self.lookup.keys.clone()), nulls);
        let mut columns = vec![self.key_column(&keys)?];
        for acc in &mut self.accumulators {
            columns.extend(acc.state(EmitTo::All)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        self.lookup.clear();
        self.accumulators = accumulators(&self.aggregates)?;
        let step = batch_size.max(1);
        Ok((0..n)
            .step_by(step)
            .map(|at| batch.slice(at, step.min(n - at)))
            .collect())
    }

    /// The keys back in the key's own type.
    fn key_column(&self, keys: &Int64Array) -> Result<ArrayRef> {
        Ok(match self.key_type {
            DataType::Int8 => Arc::new(keys.unary::<_, Int8Type>(|v| v as i8)),
            DataType::Int16 => Arc::new(keys.unary::<_, Int16Type>(|v| v as i16)),
            DataType::Int32 => Arc::new(keys.unary::<_, Int32Type>(|v| v as i32)),
            DataType::Int64 => Arc::new(keys.clone()),
            DataType::UInt8 => Arc::new(keys.unary::<_, UInt8Type>(|v| v as u8)),
            DataType::UInt16 => Arc::new(keys.unary::<_, UInt16Type>(|v| v as u16)),
            DataType::UInt32 => Arc::new(keys.unary::<_, UInt32Type>(|v| v as u32)),
            DataType::UInt64 => Arc::new(keys.unary::<_, UInt64Type>(|v| v as u64)),
            ref other => return exec_err!("IntegerGroupsExec: group key of type {other}"),
        })
    }
}

/// `value` repeated `rows` times, a slice of an array made once per distinct constant.
fn constant(
    cache: &mut Vec<(ScalarValue, ArrayRef)>,
    value: ScalarValue,
    rows: usize,
) -> Result<ArrayRef> {
    if let Some((_, a)) = cache.iter().find(|(v, a)| *v == value && a.len() >= rows) {
        return Ok(a.slice(0, rows));
    }
    let a = value.to_array_of_size(rows)?;
    cache.retain(|(v, _)| *v != value);
    cache.push((value, Arc::clone(&a)));
    Ok(a)
}

fn accumulators(
    aggregates: &[Arc<AggregateFunctionExpr>],
) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
    aggregates
        .iter()
        .map(|a| a.create_groups_accumulator())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_get_groups_in_first_seen_order_across_ranges() {
        let mut l = Lookup::default();
        let far = DENSE_KEYS as i64 + 5;
        let got: Vec<usize> = [7, -3, far, 7, far, 0, -3]
            .iter()
            .map(|&k| l.group(k))
            .collect();
        assert_eq!(got, vec![0, 1, 2, 0, 2, 3, 1]);
        assert_eq!(l.null(), 4);
        assert_eq!(l.null(), 4);
        assert_eq!(l.keys, vec![7, -3, far, 0, 0]);
        l.clear();
        assert!(l.keys.is_empty() && l.sparse.is_empty() && l.null_group.is_none());
        assert!(l.dense.iter().all(|&g| g == 0));
        assert_eq!(l.group(0), 0);
    }

    #[test]
    fn constants_are_made_once_and_sliced() {
        let mut cache = Vec::new();
        let a = constant(&mut cache, ScalarValue::Int64(Some(1)), 10).expect("array");
        let b = constant(&mut cache, ScalarValue::Int64(Some(1)), 4).expect("array");
        assert_eq!((a.len(), b.len()), (10, 4));
        assert_eq!(
            a.to_data().buffers()[0].as_ptr(),
            b.to_data().buffers()[0].as_ptr()
        );
        let c = constant(&mut cache, ScalarValue::Int64(Some(2)), 4).expect("array");
        assert_eq!(c.as_primitive::<Int64Type>().value(3), 2);
        assert_eq!(cache.len(), 2);
    }
}
