//! Integration tests of kreq-ingest.
