//! kreq's DataFusion optimizer rules. Each can be turned off by a session setting
//! (`kreq.dictionary_groups`, `kreq.integer_groups`, `kreq.top_rows`; see
//! [`crate::options`]), and the SQL tests run every `.slt` file with them on and off.
//!
//! - [`DictionaryGroups`]: `GROUP BY` on dictionary-encoded text columns groups per-query
//!   integer codes and decodes them back.
//! - [`IntegerGroups`]: the first stage of a `GROUP BY` on one integer key indexes a table
//!   with the key instead of hashing it.
//! - [`TopRows`]: `ORDER BY ... LIMIT k` over an outer join whose sort keys are all the
//!   preserved side's takes that side's top k rows before joining.

mod dictionary_groups;
mod integer_groups;
mod top_rows;

pub(crate) use dictionary_groups::DictionaryGroups;
pub(crate) use integer_groups::IntegerGroups;
pub(crate) use top_rows::TopRows;
