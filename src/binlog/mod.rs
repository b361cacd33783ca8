//! Binlog positions, GTID sets, and (with the syncer) event decoding. No actix here.

pub mod gtid;
