//! The dump unit: a consistent, parallel logical dump of the upstream into a directory in
//! dumpling's layout.

pub mod metadata;
