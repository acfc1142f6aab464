//! Request correlation: labels every event with the request it served and derives the
//! `spans`, `requests` and `edges` tables.
//!
//! [`Engine`] is a streaming pass over time-ordered [`Event`]s; [`dataset::correlate`] runs it
//! over a dataset on disk and writes the results; [`eval`] scores a result against ground truth.
#![deny(missing_docs)]

mod addresses;
pub mod dataset;
mod engine;
mod error;
pub mod eval;
pub mod event;
pub mod ingress;
mod input;
mod intern;
mod link;
mod losses;
pub mod model;
mod output;
pub mod sched;
pub mod socket;
pub mod stream;
pub mod summary;
mod table;

pub use engine::{Config, Engine, LabelSink, Stats};
pub use error::{Error, Result};
pub use event::{Endpoint, Event, Kind, PrevState, Sys, Tuple};
pub use intern::Interner;
pub use stream::Tag;
pub use table::read_table;
#[cfg(test)]
mod rules_tests;
