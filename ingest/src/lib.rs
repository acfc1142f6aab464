//! Decoding ftrace output into kreq's `events` table and writing it as zstd Parquet.
//!
//! The parsers take bytes and return rows; they do no I/O. [`pipeline::ingest`] adds reading,
//! chunking, threads and the dataset writer.
//!
//! ```
//! use kreq_ingest::text::line::{parse_line, Line};
//! let l = "          <idle>-0       [001] d..2.  2628.158669: sched_switch: prev_comm=swapper/1 \
//!          prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=opt cgu.02 next_pid=7 next_prio=120";
//! let Line::Event(ev) = parse_line(l) else { panic!("not an event") };
//! let mut fields = Vec::new();
//! ev.body.fields(&mut fields);
//! assert!(fields.contains(&("next_comm", "opt cgu.02")));
//! ```
#![deny(missing_docs)]

pub mod batch;
pub mod binary;
pub mod dataset;
mod error;
pub mod input;
mod intern;
pub mod options;
pub mod pipeline;
mod promote;
pub mod rows;
mod sparse;
mod summary;
pub mod text;
pub mod tracedat;
mod worker;
pub mod wrapped;

pub use error::{Error, Result};
pub use options::{IngestOptions, IngestReport, NoProgress, Progress};
pub use pipeline::ingest;
