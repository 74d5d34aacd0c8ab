//! einfo's domain values, each a newtype with one fallible constructor ("parse, don't
//! validate"): jurisdictions under a province scheme, tax codes, domain names, display names,
//! accent-free search keys and the working-day calendar. No I/O, no tonic, no database.
#![forbid(unsafe_code)]

pub mod calendar;
pub mod domain_name;
pub mod jurisdiction;
pub mod tax_code;
pub mod text;

pub use calendar::{CalendarError, WorkingCalendar};
pub use domain_name::{DomainName, DomainNameError, registrable_of};
pub use jurisdiction::{Jurisdiction, Province, ProvinceCode, Scheme};
pub use tax_code::{TaxCode, TaxCodeError};
pub use text::{DisplayName, FreeText, Lines, TextError, fold, matches_query};
