//! Binlog positions, GTID sets, and (with the syncer) event decoding. No actix here.

pub mod codec;
pub mod decode;
pub mod event;
pub mod gtid;
pub mod json;
pub mod location;
pub mod stream;
pub mod value;
