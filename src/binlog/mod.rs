//! Binlog positions, GTID sets, and (with the syncer) event decoding. No actix here.

pub mod decode;
pub mod event;
pub mod gtid;
pub mod location;
pub mod stream;
pub mod value;
