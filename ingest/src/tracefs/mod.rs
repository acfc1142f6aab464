//! Live capture from tracefs: private instances, event profiles, the recorder.

pub mod instance;
mod parts;
pub mod profile;
mod reader;
pub mod record;
mod recorder;
pub mod scope;
mod setup;
mod splice;

pub use reader::ReaderStats;
