//! Live capture from tracefs: private instances, event profiles, the recorder.

pub mod instance;
pub mod profile;
pub mod record;
