//! Integration tests of the kreq binary.
