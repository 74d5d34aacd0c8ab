//! Reference data the centre publishes and provincial nodes apply, with the one parser of each
//! kind that both sides use: the violation catalogue (with the coordinating agencies) and the
//! indicator catalogue; and the kinds of site the register keeps. The working-day calendar lives
//! in `einfo-domain`.
#![forbid(unsafe_code)]

pub mod catalogue;
pub mod indicators;
pub mod kinds;
pub mod report;
