//! SQL over kreq datasets with DataFusion.
//!
//! Not implemented yet (tracked as issue 5); DataFusion is not a dependency until then, to keep
//! the build light.
#![deny(missing_docs)]
