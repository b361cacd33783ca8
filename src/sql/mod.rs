//! SQL text: parsing with a real SQL parser (sqlparser's MySQL dialect), quoting, and the
//! statements dm-rs generates. No actix here.

pub mod checkpoint;
pub mod ddl;
pub mod dml;
pub mod expr;
pub mod filter;
pub mod route;
pub mod schema_tracker;
pub mod sharding_meta;

pub use crate::syntax::{parse_expression, quote_ident, quote_string};
