//! Grouping by dictionary-encoded text (`event`, `comm`, `prev_state`, addresses) through
//! integer codes.
//!
//! DataFusion 55 groups a dictionary column through its generic row format: every row's string
//! is encoded and compared. [`DictionaryGroups`] rewrites `GROUP BY d`, for each group key `d`
//! of kreq's dictionary type, into `GROUP BY kreq_dict_code(d)`: a per-query integer per distinct
//! string, worked out once per dictionary (a few dozen strings) and then gathered per row, so the
//! aggregate groups plain integers. A projection above decodes the codes back to the same
//! dictionary type and column names, so results and plans above are unchanged.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, DictionaryArray, Int32Array, StringArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Int32Type};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{exec_err, Column, Result, ScalarValue};
use datafusion::logical_expr::logical_plan::{Aggregate, LogicalPlan, Projection};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The dictionary type kreq's schemas use for repeated text.
fn is_text_dictionary(t: &DataType) -> bool {
    matches!(t, DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8)
}

/// Dictionaries seen recently, at most this many: enough for one column chunk per partition.
const RECENT: usize = 8;

/// The codes of one rewritten aggregate: code `i` stands for `strings[i]`.
#[derive(Debug, Default)]
struct Codes {
    strings: Vec<String>,
    index: HashMap<String, i32>,
    /// Recent dictionaries: identity of the value array, the array itself (holding it keeps
    /// its buffers alive, so their addresses identify it), and the code of each value (-1 for
    /// a null value).
    recent: Vec<(Identity, ArrayRef, Arc<[i32]>)>,
}

/// Length, offset and buffer addresses and lengths of an array.
type Identity = (usize, usize, Vec<(usize, usize)>);

fn identity(a: &ArrayRef) -> Identity {
    let d = a.to_data();
    let buffers = d.buffers().iter().map(|b| (b.as_ptr() as usize, b.len()));
    (d.len(), d.offset(), buffers.collect())
}

impl Codes {
    /// The code of each value of `values` (a dictionary's value array).
    fn of_values(&mut self, values: &ArrayRef) -> Result<Arc<[i32]>> {
        let id = identity(values);
        if let Some((_, _, codes)) = self.recent.iter().find(|(i, _, _)| *i == id) {
            return Ok(codes.clone());
        }
        let Some(strings) = values.as_string_opt::<i32>() else {
            return exec_err!(
                "kreq_dict_code: dictionary values are {}",
                values.data_type()
            );
        };
        let codes: Arc<[i32]> = strings
            .iter()
            .map(|s| match s {
                None => -1,
                Some(s) => match self.index.get(s) {
                    Some(&c) => c,
                    None => {
                        let c = self.strings.len() as i32;
                        self.strings.push(s.to_owned());
                        self.index.insert(s.to_owned(), c);
                        c
                    }
                },
            })
            .collect();
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        self.recent.push((id, values.clone(), codes.clone()));
        Ok(codes)
    }
}

/// Shared by the encoding and decoding function of one rewrite.
#[derive(Debug, Default, Clone)]
struct SharedCodes(Arc<Mutex<Codes>>);

impl SharedCodes {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Codes>> {
        self.0
            .lock()
            .or_else(|_| exec_err!("kreq dictionary codes: a thread panicked"))
    }

    fn encode(&self, dict: &DictionaryArray<Int32Type>) -> Result<Int32Array> {
        let codes = self.lock()?.of_values(dict.values())?;
        let keys = dict.keys();
        let out: Vec<i32> = keys
            .values()
            .iter()
            .map(|&k| {
                usize::try_from(k)
                    .ok()
                    .and_then(|k| codes.get(k))
                    .map_or(-1, |&c| c)
            })
            .collect();
        // A row is null when its key is null or its value is.
        let nulls = (keys.null_count() > 0 || out.contains(&-1)).then(|| {
            NullBuffer::from_iter(
                out.iter()
                    .enumerate()
                    .map(|(i, &c)| c >= 0 && keys.is_valid(i)),
            )
        });
        Ok(Int32Array::new(out.into(), nulls))
    }

    fn decode(&self, codes: &Int32Array) -> Result<DictionaryArray<Int32Type>> {
        let values = StringArray::from_iter_values(self.lock()?.strings.iter());
        Ok(DictionaryArray::try_new(codes.clone(), Arc::new(values))?)
    }
}

impl PartialEq for SharedCodes {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for SharedCodes {}
impl Hash for SharedCodes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

/// `kreq_dict_code(d)` (encode) or `kreq_dict_text(c)` (decode), for one rewrite.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DictCodeUdf {
    decode: bool,
    codes: SharedCodes,
    signature: Signature,
}

impl DictCodeUdf {
    fn udf(decode: bool, codes: SharedCodes) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            decode,
            codes,
            signature: Signature::any(1, Volatility::Immutable),
        })
    }

    fn apply(&self, a: &ArrayRef) -> Result<ArrayRef> {
        Ok(if self.decode {
            let Some(c) = a.as_primitive_opt::<Int32Type>() else {
                return exec_err!("kreq_dict_text: codes are {}", a.data_type());
            };
            Arc::new(self.codes.decode(c)?)
        } else {
            let Some(d) = a.as_dictionary_opt::<Int32Type>() else {
                return exec_err!("kreq_dict_code: argument is {}", a.data_type());
            };
            Arc::new(self.codes.encode(d)?)
        })
    }
}

impl ScalarUDFImpl for DictCodeUdf {
    fn name(&self) -> &str {
        if self.decode {
            "kreq_dict_text"
        } else {
            "kreq_dict_code"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(if self.decode {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        } else {
            DataType::Int32
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        match arg {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(self.apply(a)?)),
            ColumnarValue::Scalar(s) => {
                let out = self.apply(&s.to_array_of_size(1)?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            }
        }
    }
}

/// The optimizer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct DictionaryGroups;

impl OptimizerRule for DictionaryGroups {
    fn name(&self) -> &str {
        "kreq_dictionary_groups"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(agg) = &plan else {
            return Ok(Transformed::no(plan));
        };
        if !crate::options::of(&config.options()).dictionary_groups {
            return Ok(Transformed::no(plan));
        }
        let input = agg.input.schema();
        let is_dict: Vec<bool> = agg
            .group_expr
            .iter()
            .map(|e| e.get_type(input).is_ok_and(|t| is_text_dictionary(&t)))
            .collect();
        let grouping_sets = agg
            .group_expr
            .iter()
            .any(|e| matches!(e, Expr::GroupingSet(_)));
        if grouping_sets || !is_dict.contains(&true) {
            return Ok(Transformed::no(plan));
        }
        let codes = SharedCodes::default();
        let (encode, decode) = (
            DictCodeUdf::udf(false, codes.clone()),
            DictCodeUdf::udf(true, codes),
        );
        let group: Vec<Expr> = agg
            .group_expr
            .iter()
            .zip(&is_dict)
            .enumerate()
            .map(|(i, (e, &d))| match d {
                true => encode
                    .call(vec![e.clone()])
                    .alias(format!("__kreq_code_{i}")),
                false => e.clone(),
            })
            .collect();
        let coded = Aggregate::try_new(agg.input.clone(), group, agg.aggr_expr.clone())?;
        let coded_schema = coded.schema.clone();
        let exprs = agg
            .schema
            .iter()
            .enumerate()
            .map(|(i, (q, f))| {
                let (cq, cf) = coded_schema.qualified_field(i);
                let c = Expr::Column(Column::new(cq.cloned(), cf.name()));
                let e = match is_dict.get(i) {
                    Some(true) => decode.call(vec![c]),
                    _ => c,
                };
                e.alias_qualified(q.cloned(), f.name())
            })
            .collect();
        let decoded = Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(coded)))?;
        Ok(Transformed::yes(LogicalPlan::Projection(decoded)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(keys: Vec<Option<i32>>, values: Vec<Option<&str>>) -> DictionaryArray<Int32Type> {
        DictionaryArray::try_new(Int32Array::from(keys), Arc::new(StringArray::from(values)))
            .expect("dictionary")
    }

    #[test]
    fn equal_strings_get_one_code_across_dictionaries() {
        let codes = SharedCodes::default();
        let a = dict(
            vec![Some(0), Some(1), Some(0)],
            vec![Some("nginx"), Some("redis")],
        );
        let b = dict(vec![Some(1), Some(0)], vec![Some("redis"), Some("nginx")]);
        let ca = codes.encode(&a).expect("encode");
        let cb = codes.encode(&b).expect("encode");
        assert_eq!(ca.values().to_vec(), vec![0, 1, 0]);
        assert_eq!(cb.values().to_vec(), vec![0, 1]);
        let back = codes.decode(&cb).expect("decode");
        let text: Vec<_> = back
            .downcast_dict::<StringArray>()
            .expect("utf8")
            .into_iter()
            .collect();
        assert_eq!(text, vec![Some("nginx"), Some("redis")]);
    }

    #[test]
    fn null_keys_and_null_values_encode_as_null() {
        let codes = SharedCodes::default();
        // Key 7 is out of range but sits under a null key, which Arrow allows.
        let keys = Int32Array::new(vec![0, 7, 1].into(), Some(vec![true, false, true].into()));
        let values = Arc::new(StringArray::from(vec![Some("R"), None]));
        let d = DictionaryArray::try_new(keys, values).expect("dictionary");
        let c = codes.encode(&d).expect("encode");
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![Some(0), None, None]);
        let back = codes.decode(&c).expect("decode");
        assert_eq!(back.null_count(), 2);
    }

    #[test]
    fn a_dictionary_seen_again_is_looked_up_once() {
        let codes = SharedCodes::default();
        let d = dict(vec![Some(0)], vec![Some("sched_switch")]);
        codes.encode(&d).expect("encode");
        codes.encode(&d.slice(0, 1)).expect("encode");
        assert_eq!(codes.lock().expect("lock").recent.len(), 1);
    }
}
