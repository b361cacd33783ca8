//! Shared integration-test harness: private MariaDB and etcd servers on free 127.0.0.1 ports,
//! one shared instance of each per test binary, a database per test, and polling helpers.
//!
//! Binaries come from `PATH` (or `/usr/sbin`, `/usr/bin`); a missing one fails the test loudly,
//! naming the Debian package and `scripts/setup.sh`. See `registry` for how servers are cleaned
//! up even when never dropped.

// Shared API: not every case uses every helper.
#![allow(dead_code)]

pub mod bin;
pub mod cluster;
pub mod etcd;
pub mod eventually;
pub mod mariadb;
pub mod ports;
pub mod process;
mod registry;
pub mod rows;
pub mod task;

// The cases' entry points, usable as `crate::harness::X`.
#[allow(unused_imports)]
pub use self::{
    bin::{BinProcess, DM_MASTER, DM_MIGRATE, DM_SYNCER, DM_WORKER, DMCTL},
    etcd::{Etcd, shared_etcd},
    eventually::{eventually, eventually_msg, try_eventually},
    mariadb::{MariaDb, Role, TestDb, fresh_db, shared_downstream, shared_upstream},
    ports::free_port,
    process::pid_running,
    task::{BlockAllowList, Instance, Section, TaskYaml},
};
