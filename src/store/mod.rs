//! Where control-plane state lives: etcd. No actix here.

pub mod etcd;
