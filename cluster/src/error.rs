//! Errors of the cluster crate.

/// What can go wrong starting a cluster process or a session on one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cluster address that is not `df://HOST[:PORT]`.
    #[error("not a cluster address: {url:?} ({why}); give df://HOST:PORT")]
    Url {
        /// The address as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Ballista's scheduler or executor failed to start or stopped with an error.
    #[error("Ballista {what}")]
    Ballista {
        /// Which process and step.
        what: &'static str,
        /// Ballista's error.
        #[source]
        source: ballista_core::error::BallistaError,
    },
    /// DataFusion refused a session setting.
    #[error("session")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;
