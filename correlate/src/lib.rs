//! Request correlation: labels events with requests and derives spans.
//!
//! Not implemented yet (tracked as issue 4); this crate only reserves its place in the
//! workspace so the dependency direction `schemas <- correlate` is fixed from the start.
#![deny(missing_docs)]
