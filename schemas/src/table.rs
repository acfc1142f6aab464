//! The tables of a dataset, each defined once: its name (the directory in a dataset, the
//! `kreq.table` metadata value and the SQL table name), its Arrow schema, the column its
//! part files are sorted by, and which older schema versions of it this kreq still reads.

use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;

/// One table of a dataset.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The table's name: its directory in a dataset, its `kreq.table` metadata value and its
    /// SQL name.
    pub name: &'static str,
    schema: fn() -> SchemaRef,
    /// The column every part file is sorted by, which its Parquet metadata then declares
    /// (readers such as DataFusion trust it to skip sorts, so a table whose order is not
    /// guaranteed declares none).
    pub sorted_by: Option<&'static str>,
    /// The oldest [`crate::SCHEMA_VERSION`] whose files of this table this kreq reads: older
    /// ones lack columns it needs and must be written again (see [`Table::upgrade`]).
    pub readable_since: u32,
    /// The command that writes the table again.
    pub rewritten_by: &'static str,
}

/// What a dataset of an older schema version needs before this kreq reads a table of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// The files read as they are (columns kreq added since read as their defaults).
    None,
    /// The table must be written again by this command (`kreq correlate`, `kreq ingest`).
    Rewrite(&'static str),
}

impl Table {
    /// The table's Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        (self.schema)()
    }

    /// The table's directory in the dataset at `dataset`.
    pub fn dir(&self, dataset: &Path) -> PathBuf {
        dataset.join(self.name)
    }

    /// What files of this table written with schema `version` (the manifest's
    /// `schema_version`; 0 when it does not parse) need before they can be read.
    pub fn upgrade(&self, version: u32) -> Upgrade {
        if version < self.readable_since {
            Upgrade::Rewrite(self.rewritten_by)
        } else {
            Upgrade::None
        }
    }

    /// The table called `name`.
    pub fn named(name: &str) -> Option<Table> {
        ALL.iter().copied().find(|t| t.name == name)
    }
}

/// Kernel events, one row per event (ingest, record; labelled by correlation).
pub const EVENTS: Table = Table {
    name: "events",
    schema: crate::events::schema,
    sorted_by: Some(crate::events::TS_NS),
    readable_since: 1,
    rewritten_by: "kreq ingest",
};

/// Reports of events the kernel lost.
pub const LOST_EVENTS: Table = Table {
    name: "lost_events",
    schema: crate::lost_events::schema,
    sorted_by: None,
    readable_since: 1,
    rewritten_by: "kreq ingest",
};

/// One row per request (correlation).
pub const REQUESTS: Table = Table {
    name: "requests",
    schema: crate::requests::schema,
    sorted_by: None,
    // Schema 3 added the spans' self times; requests and edges of older correlations come
    // from the same run and are rewritten with them.
    readable_since: 3,
    rewritten_by: "kreq correlate",
};

/// One row per span (correlation).
pub const SPANS: Table = Table {
    name: "spans",
    schema: crate::spans::schema,
    sorted_by: None,
    // Schema 5 added `end_tid`.
    readable_since: 5,
    rewritten_by: "kreq correlate",
};

/// One row per link between two spans (correlation).
pub const EDGES: Table = Table {
    name: "edges",
    schema: crate::edges::schema,
    sorted_by: None,
    readable_since: 3,
    rewritten_by: "kreq correlate",
};

/// Every table, in the order datasets list them.
pub const ALL: [Table; 5] = [EVENTS, LOST_EVENTS, REQUESTS, SPANS, EDGES];

/// The tables `kreq correlate` writes.
pub const CORRELATED: [Table; 3] = [REQUESTS, SPANS, EDGES];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_found_by_name_and_has_its_schema() {
        for t in ALL {
            assert_eq!(Table::named(t.name).map(|n| n.name), Some(t.name));
            assert!(!t.schema().fields().is_empty(), "{}", t.name);
        }
        assert!(Table::named("nope").is_none());
        assert_eq!(EVENTS.dir(Path::new("/ds")), Path::new("/ds/events"));
    }

    #[test]
    fn correlation_results_older_than_their_newest_column_are_correlated_again() {
        let current: u32 = crate::SCHEMA_VERSION.parse().expect("version");
        for t in CORRELATED {
            let old = t.upgrade(2);
            assert_eq!(old, Upgrade::Rewrite("kreq correlate"), "{}", t.name);
            assert_eq!(t.upgrade(current), Upgrade::None, "{}", t.name);
        }
        assert_eq!(REQUESTS.upgrade(3), Upgrade::None);
        assert_eq!(SPANS.upgrade(4), Upgrade::Rewrite("kreq correlate"));
        assert_eq!(EVENTS.upgrade(1), Upgrade::None);
    }
}
