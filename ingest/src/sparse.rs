//! Columns that most rows leave null, filled by row number instead of per-row appends.

use arrow::array::BooleanBufferBuilder;
use arrow::array::{ArrowPrimitiveType, PrimitiveArray};
use arrow::buffer::{NullBuffer, ScalarBuffer};

/// Values of a mostly-null column, stored only for the rows that have one.
#[derive(Debug)]
pub(crate) struct Sparse<T: ArrowPrimitiveType> {
    rows: Vec<u32>,
    values: Vec<T::Native>,
}

impl<T: ArrowPrimitiveType> Default for Sparse<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<T: ArrowPrimitiveType> Sparse<T> {
    /// Set row `row` (rows must come in increasing order).
    pub(crate) fn set(&mut self, row: usize, v: Option<T::Native>) {
        if let Some(v) = v {
            self.rows.push(row as u32);
            self.values.push(v);
        }
    }

    /// The dense array of `len` rows; the column is then empty again (keeping its memory).
    pub(crate) fn finish(&mut self, len: usize) -> PrimitiveArray<T> {
        let mut values = vec![T::Native::default(); len];
        let mut valid = BooleanBufferBuilder::new(len);
        valid.append_n(len, false);
        for (&r, &v) in self.rows.iter().zip(&self.values) {
            values[r as usize] = v;
            valid.set_bit(r as usize, true);
        }
        self.rows.clear();
        self.values.clear();
        let nulls = NullBuffer::new(valid.finish());
        PrimitiveArray::new(ScalarBuffer::from(values), Some(nulls))
    }
}
