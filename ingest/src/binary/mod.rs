//! Binary ftrace data: format files, ring-buffer pages, record fields, trace.dat files.

mod comms;
pub mod decode;
pub mod format;
pub mod merge;
pub mod page;
pub mod printk;
pub mod source;
pub mod stats;
mod streams;
