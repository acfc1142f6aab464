//! The tables of a dataset, each defined once: its name (the directory in a dataset, the
//! `kreq.table` metadata value and the SQL table name), its Arrow schema and the column its
//! part files are sorted by.

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
};

/// Reports of events the kernel lost.
pub const LOST_EVENTS: Table = Table {
    name: "lost_events",
    schema: crate::lost_events::schema,
    sorted_by: None,
};

/// One row per request (correlation).
pub const REQUESTS: Table = Table {
    name: "requests",
    schema: crate::requests::schema,
    sorted_by: None,
};

/// One row per span (correlation).
pub const SPANS: Table = Table {
    name: "spans",
    schema: crate::spans::schema,
    sorted_by: None,
};

/// One row per link between two spans (correlation).
pub const EDGES: Table = Table {
    name: "edges",
    schema: crate::edges::schema,
    sorted_by: None,
};

/// Every table, in the order datasets list them.
pub const ALL: [Table; 5] = [EVENTS, LOST_EVENTS, REQUESTS, SPANS, EDGES];

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
}
