//! The single integration-test binary of `dm-rs`.
//!
//! `harness` starts private MariaDB and etcd servers on free 127.0.0.1 ports; `cases` holds the
//! tests, one module per area.

mod cases;
mod harness;
