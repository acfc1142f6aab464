//! Nearly time-ordered batches -> batches in time order, without parsing a part twice.
//!
//! `trace_pipe` text is in time order except for rare late lines: an event whose timestamp was
//! taken before an event another CPU printed first (10 in 5.8M lines of a testbed capture,
//! 3 µs to 1.7 ms late, 1 to 95 lines behind). One batch is held back; rows of the held batch that no later row can
//! precede are released, the rest are merged with the next batch. Only a row older than rows
//! already released, or a held-back backlog beyond [`MAX_HELD_ROWS`], makes the caller fall
//! back to sorting the whole part. The output equals a stable sort of the part by time.

use arrow::compute::concat_batches;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::text::chunk::{sorted_by_time, times};

/// Rows held back at most; beyond this the input is too far out of order to stream.
pub const MAX_HELD_ROWS: usize = 4 * crate::rows::BATCH_ROWS;

/// Why a batch could not be put in order.
#[derive(Debug)]
pub enum Unordered {
    /// A row is older than rows already released, or too many rows are held back.
    TooLate,
    /// Sorting or merging failed.
    Arrow(ArrowError),
}

/// Releases rows in time order from nearly ordered batches (see the module docs).
#[derive(Debug, Default)]
pub struct Reorder {
    held: Option<RecordBatch>,
    /// Time of the last row released.
    released: Option<i64>,
}

impl Reorder {
    /// Add the next batch of the part; returns the rows that now precede every row still to
    /// come (None when there are none yet).
    pub fn push(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>, Unordered> {
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        let batch = sorted_by_time(batch).map_err(Unordered::Arrow)?;
        // Every events batch has its times first; without them, leave the order to the
        // whole-part sort.
        let Some(&first) = times(&batch).first() else {
            return Err(Unordered::TooLate);
        };
        if self.released.is_some_and(|r| first < r) {
            return Err(Unordered::TooLate);
        }
        let Some(held) = self.held.take() else {
            self.held = Some(batch);
            return Ok(None);
        };
        let cut = times(&held).partition_point(|&t| t <= first);
        let out = held.slice(0, cut);
        let rest = held.slice(cut, held.num_rows() - cut);
        self.held = Some(if rest.num_rows() == 0 {
            batch
        } else {
            let merged =
                concat_batches(&batch.schema(), [&rest, &batch]).map_err(Unordered::Arrow)?;
            if merged.num_rows() > MAX_HELD_ROWS {
                return Err(Unordered::TooLate);
            }
            sorted_by_time(merged).map_err(Unordered::Arrow)?
        });
        if let Some(&last) = times(&out).last() {
            self.released = Some(last);
        }
        Ok((out.num_rows() > 0).then_some(out))
    }

    /// The rows still held, once the part has no more.
    pub fn finish(&mut self) -> Option<RecordBatch> {
        self.held.take().filter(|b| b.num_rows() > 0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, UInt32Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// Batches of `(ts, input position)` rows, `size` rows each.
    fn batches(ts: &[i64], size: usize) -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts_ns", DataType::Int64, false),
            Field::new("pos", DataType::UInt32, false),
        ]));
        ts.chunks(size)
            .enumerate()
            .map(|(k, c)| {
                let pos: Vec<u32> = (0..c.len()).map(|i| (k * size + i) as u32).collect();
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from(c.to_vec())),
                        Arc::new(UInt32Array::from(pos)),
                    ],
                )
                .expect("batch")
            })
            .collect()
    }

    /// `(ts, input position)` of every row released, or None when the input fell back.
    fn run(ts: &[i64], size: usize) -> Option<Vec<(i64, u32)>> {
        let mut r = Reorder::default();
        let mut out = Vec::new();
        let mut take = |b: RecordBatch| {
            let pos = b
                .column(1)
                .as_any()
                .downcast_ref::<UInt32Array>()
                .expect("pos");
            out.extend(times(&b).iter().copied().zip(pos.values().iter().copied()));
        };
        for b in batches(ts, size) {
            match r.push(b) {
                Ok(Some(b)) => take(b),
                Ok(None) => {}
                Err(Unordered::TooLate) => return None,
                Err(Unordered::Arrow(e)) => panic!("{e}"),
            }
        }
        if let Some(b) = r.finish() {
            take(b);
        }
        Some(out)
    }

    fn stable_sort(ts: &[i64]) -> Vec<(i64, u32)> {
        let mut v: Vec<(i64, u32)> = ts.iter().copied().zip(0..).collect();
        v.sort_by_key(|&(t, _)| t);
        v
    }

    #[test]
    fn late_rows_within_reach_come_out_as_a_stable_sort() {
        // In order, with late rows inside a batch, across one batch boundary, and ties.
        let mut ts: Vec<i64> = (0..100).map(|i| i * 10).collect();
        ts[13] = 95; // late within its batch of 8
        ts[16] = 145; // batch 3 starts with a row older than the end of batch 2
        ts[40] = 390; // a tie with the row before it in the input order
        ts[41] = 390;
        for size in [2, 3, 8, 16, 100] {
            assert_eq!(run(&ts, size), Some(stable_sort(&ts)), "batches of {size}");
        }
        // In batches of one row, row 13 comes two batches after rows later than it that were
        // already released: beyond reach.
        assert_eq!(run(&ts, 1), None);
    }

    #[test]
    fn rows_older_than_rows_released_fall_back() {
        // 16 rows in order, then one older than the first batch: it was released already.
        let mut ts: Vec<i64> = (0..32).map(|i| i * 10).collect();
        ts[20] = 5;
        assert_eq!(run(&ts, 8), None);
        // With the whole input in one batch it is simply sorted.
        assert_eq!(run(&ts, 32), Some(stable_sort(&ts)));
    }

    #[test]
    fn random_nearly_sorted_input_comes_out_sorted_or_falls_back() {
        // A small LCG: times rising by 0-9 with a few rows moved back by up to 40, in batches
        // of 1 to 64 rows. Whatever streams must be the stable sort; input in a single batch
        // always streams, and most inputs do.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rand = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        let mut streamed = 0;
        for _ in 0..300 {
            let len = 1 + rand(400) as usize;
            let mut t = 0i64;
            let mut ts: Vec<i64> = (0..len)
                .map(|_| {
                    t += rand(10) as i64;
                    t
                })
                .collect();
            for _ in 0..rand(6) {
                let i = rand(len as u64) as usize;
                ts[i] -= rand(40) as i64;
            }
            let size = 1 + rand(64) as usize;
            match run(&ts, size) {
                Some(out) => {
                    assert_eq!(out, stable_sort(&ts), "batches of {size}: {ts:?}");
                    streamed += 1;
                }
                None => assert!(size < len, "one batch always streams"),
            }
        }
        assert!(streamed > 150, "{streamed} of 300 streamed");
    }

    #[test]
    fn a_backlog_beyond_the_limit_falls_back() {
        // Descending input: nothing can be released, so the held rows grow until the limit.
        let ts: Vec<i64> = (0..(MAX_HELD_ROWS as i64 + 100)).rev().collect();
        assert_eq!(run(&ts, 1000), None);
        let few: Vec<i64> = (0..3000).rev().collect();
        assert_eq!(run(&few, 1000), Some(stable_sort(&few)));
    }
}
