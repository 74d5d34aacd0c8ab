//! The kinds of site the register keeps: the reference data's catalogue (`einfo-reference`).

pub use einfo_reference::kinds::Kinds;
