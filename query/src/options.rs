//! kreq's session settings (`kreq.*`), next to DataFusion's own (`datafusion.*`).
//!
//! Each of kreq's optimizer rules can be turned off, in SQL (`SET kreq.top_rows = false`), with
//! `kreq sql --set kreq.top_rows=false`, or through [`crate::tables::open_with`]: an escape hatch
//! should a rule misbehave, and a way to measure what each one buys.

use datafusion::common::extensions_options;
use datafusion::config::{ConfigExtension, ConfigOptions};

extensions_options! {
    /// The `kreq.*` settings.
    pub struct KreqOptions {
        /// GROUP BY on dictionary text columns through integer codes (`kreq_dictionary_groups`).
        pub dictionary_groups: bool, default = true
        /// First-stage GROUP BY on one integer key by direct lookup (`kreq_integer_groups`).
        pub integer_groups: bool, default = true
        /// ORDER BY ... LIMIT over an outer join takes the preserved side's top rows first
        /// (`kreq_top_rows`).
        pub top_rows: bool, default = true
    }
}

impl ConfigExtension for KreqOptions {
    const PREFIX: &'static str = "kreq";
}

/// The `kreq.*` settings of a session (the defaults when it has none).
pub fn of(config: &ConfigOptions) -> KreqOptions {
    config
        .extensions
        .get::<KreqOptions>()
        .cloned()
        .unwrap_or_default()
}
