//! Binary ftrace data: format files, ring-buffer pages, record fields, trace.dat files.

mod comms;
mod datfile;
pub mod decode;
pub mod format;
pub mod merge;
pub mod page;
pub mod stats;
mod streams;
pub mod tracedat;
mod tracedat_v6;
