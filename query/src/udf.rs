//! Functions SQL lacks for traces.
//!
//! | function | example | result |
//! |---|---|---|
//! | `fmt_duration(ns)` | `fmt_duration(1234567)` | `'1.235 ms'` |
//! | `fmt_endpoint(addr, port)` | `fmt_endpoint('::1', 80)` | `'[::1]:80'` |
//! | `field(fields, key)` | `field(fields, 'next_comm')` | that field's text, or null |
//!
//! `fmt_duration` picks ns, µs, ms or s so the number has 1 to 3 integer digits.
//! `field` reads the generic payload map of `events` (the fields not promoted to a column).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray, StringBuilder, UInt16Array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result as DfResult};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Signature, SimpleScalarUDF, Volatility};
use datafusion::prelude::SessionContext;

/// Formats a duration in ns with a unit: `850 ns`, `12.5 µs`, `1.235 ms`, `2.000 s`.
pub fn format_duration(ns: i64) -> String {
    let a = ns.unsigned_abs() as f64;
    let sign = if ns < 0 { "-" } else { "" };
    if a < 1e3 {
        format!("{ns} ns")
    } else if a < 1e6 {
        format!("{sign}{:.1} µs", a / 1e3)
    } else if a < 1e9 {
        format!("{sign}{:.3} ms", a / 1e6)
    } else {
        format!("{sign}{:.3} s", a / 1e9)
    }
}

/// Formats an endpoint: `127.0.0.1:80`, `[::1]:80`.
pub fn format_endpoint(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

fn arrays(args: &[ColumnarValue]) -> DfResult<(Vec<ArrayRef>, usize)> {
    let n = args
        .iter()
        .find_map(|a| match a {
            ColumnarValue::Array(x) => Some(x.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(1);
    let v = args
        .iter()
        .map(|a| a.clone().into_array(n))
        .collect::<DfResult<Vec<_>>>()?;
    Ok((v, n))
}

fn fmt_duration(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let (a, _) = arrays(args)?;
    let ns = cast(&a[0], &DataType::Int64)?;
    let ns: &Int64Array = ns.as_primitive();
    let out: StringArray = ns.iter().map(|v| v.map(format_duration)).collect();
    Ok(ColumnarValue::Array(Arc::new(out)))
}

fn fmt_endpoint(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let (a, n) = arrays(args)?;
    let addr = cast(&a[0], &DataType::Utf8)?;
    let addr = addr.as_string::<i32>();
    let port = cast(&a[1], &DataType::UInt16)?;
    let port: &UInt16Array = port.as_primitive();
    let mut b = StringBuilder::with_capacity(n, n * 16);
    for i in 0..n {
        if addr.is_null(i) || port.is_null(i) {
            b.append_null();
        } else {
            b.append_value(format_endpoint(addr.value(i), port.value(i)));
        }
    }
    Ok(ColumnarValue::Array(Arc::new(b.finish())))
}

fn field(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let (a, n) = arrays(args)?;
    let Some(map) = a[0].as_map_opt() else {
        return exec_err!("field(fields, key): the first argument must be the `fields` map");
    };
    let key = cast(&a[1], &DataType::Utf8)?;
    let key = key.as_string::<i32>();
    let keys = cast(map.keys(), &DataType::Utf8)?;
    let keys = keys.as_string::<i32>();
    let values = cast(map.values(), &DataType::Utf8)?;
    let values = values.as_string::<i32>();
    let offsets = map.value_offsets();
    let mut b = StringBuilder::with_capacity(n, n * 8);
    for i in 0..n {
        if map.is_null(i) || key.is_null(i) {
            b.append_null();
            continue;
        }
        let want = key.value(i);
        let (lo, hi) = (offsets[i] as usize, offsets[i + 1] as usize);
        match (lo..hi).find(|&j| keys.value(j) == want) {
            Some(j) if values.is_valid(j) => b.append_value(values.value(j)),
            _ => b.append_null(),
        }
    }
    Ok(ColumnarValue::Array(Arc::new(b.finish())))
}

fn udf(
    name: &str,
    args: usize,
    ret: DataType,
    fun: fn(&[ColumnarValue]) -> DfResult<ColumnarValue>,
) -> ScalarUDF {
    // Any argument types: each function casts its arguments itself (ports may be UInt16
    // columns or integer literals, durations any integer type).
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        name,
        Signature::any(args, Volatility::Immutable),
        ret,
        Arc::new(fun),
    ))
}

/// kreq's UDFs, for sessions built elsewhere (a cluster's scheduler and executors).
pub fn all() -> Vec<ScalarUDF> {
    vec![
        udf("fmt_duration", 1, DataType::Utf8, fmt_duration),
        udf("fmt_endpoint", 2, DataType::Utf8, fmt_endpoint),
        udf("field", 2, DataType::Utf8, field),
    ]
}

/// Registers the UDFs with a session.
pub fn register(ctx: &SessionContext) {
    for f in all() {
        ctx.register_udf(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(format_duration(850), "850 ns");
        assert_eq!(format_duration(12_500), "12.5 µs");
        assert_eq!(format_duration(1_234_567), "1.235 ms");
        assert_eq!(format_duration(2_000_000_000), "2.000 s");
        assert_eq!(format_duration(-1_500), "-1.5 µs");
    }

    #[test]
    fn v6_endpoints_get_brackets() {
        assert_eq!(format_endpoint("127.0.0.1", 80), "127.0.0.1:80");
        assert_eq!(format_endpoint("::1", 80), "[::1]:80");
    }
}
