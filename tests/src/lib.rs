//! The integration tests live in `tests/it/` (one binary); this crate has no library code.
