//! The error of a run whose input ended early, and its exit status.

/// An input ended early: what was before the cut was written, and kreq exits with
/// [`TruncatedInput::EXIT`] so that scripts can tell it from success and from failure.
#[derive(Debug)]
pub struct TruncatedInput(pub String);

impl TruncatedInput {
    /// Exit status of a run whose input ended early (1 is failure, 2 is a usage error).
    pub const EXIT: u8 = 3;
}

impl std::fmt::Display for TruncatedInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TruncatedInput {}
