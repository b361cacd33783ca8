//! Identities that cross every layer: a task's name, a source's id, and a subtask's key (one
//! task on one source). Below everything else, so that etcd state, the Scheduler, messages and
//! handlers all key subtasks the same way.

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

/// A subtask: task `task` on source `source`. Ordered by task, then source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubtaskKey {
    pub task: TaskName,
    pub source: SourceId,
}

impl SubtaskKey {
    /// The key of `task` on `source`.
    pub fn new(task: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            task: TaskName(task.into()),
            source: SourceId(source.into()),
        }
    }
}

impl fmt::Display for SubtaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.task, self.source)
    }
}
