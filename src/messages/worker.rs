//! Messages to the dm-worker's actors.

use actix::Message;
use serde::{Deserialize, Serialize};

/// What the worker last saw of one master.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MasterReachability {
    pub addr: String,
    pub reachable: bool,
    /// The master's `/status` `name`, when reachable.
    pub name: Option<String>,
    pub last_error: Option<String>,
}

/// HTTP handler → MasterProbeActor: the reachability of every `join` master.
#[derive(Debug, Message)]
#[rtype(result = "Vec<MasterReachability>")]
pub struct QueryMasters;
