//! Typed messages between actors, grouped by the actor that receives them. Cross-process
//! payloads (etcd values, master↔worker HTTP) are serde types; in-process messages may hold
//! addresses and are never serialized.

pub mod master;
pub mod rpc;
pub mod syncer;
pub mod worker;

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }
    };
}

name_type!(
    /// A task's `name`.
    TaskName
);
name_type!(
    /// A source's `source-id`.
    SourceId
);
name_type!(
    /// A worker's `name`.
    WorkerName
);
