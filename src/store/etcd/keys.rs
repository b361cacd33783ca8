//! DM's etcd key catalogue. Every dynamic segment is hex-encoded (as DM's `common.go` does),
//! so names with `/` or other bytes never break the hierarchy; a prefix ends with `/` for
//! prefix reads and watches. Build keys only through these functions.

/// Election key of the dm-master leader.
pub const MASTER_LEADER: &str = "/dm-master/leader";
/// Cluster version.
pub const CLUSTER_VERSION: &str = "/dm-cluster/version";
/// Cluster id.
pub const CLUSTER_ID: &str = "/dm-cluster/id";
/// Worker registrations: worker → `{name, addr}`.
pub const WORKER_REGISTER: &str = "/dm-worker/r/";
/// Worker keepalives (leased): worker → `{worker-name, join-time}`.
pub const WORKER_KEEPALIVE: &str = "/dm-worker/a/";
/// Source configs: source → SourceConfig.
pub const UPSTREAM_CONFIG: &str = "/dm-master/v2/upstream/config/";
/// Bindings: worker → `{source, worker}`.
pub const BOUND_WORKER: &str = "/dm-master/bound-worker/";
/// Last binding of each worker (never deleted; bind preference).
pub const LAST_BOUND_WORKER: &str = "/dm-master/last-bound-worker/";
/// Relay assignment: worker → source.
pub const RELAY_WORKER: &str = "/dm-master/relay-worker/";
/// Relay expected stage: source → `{expect, source}`.
pub const RELAY_STAGE: &str = "/dm-master/v2/stage/relay/";
/// Subtask configs: (source, task) → SubTaskConfig TOML.
pub const SUBTASK_CONFIG: &str = "/dm-master/upstream/subtask/";
/// Subtask expected stages: (source, task) → `{expect, source, task}`.
pub const SUBTASK_STAGE: &str = "/dm-master/stage/subtask/";
/// Validator expected stages.
pub const VALIDATOR_STAGE: &str = "/dm-master/stage/validator/";
/// Load-task pinning: (task, source) → worker.
pub const LOAD_TASK: &str = "/dm-master/load-task/";
/// Task start arguments: (task, source) → `{start_time, safe_mode_duration, wait_time_on_stop}`.
pub const TASK_CLI_ARGS: &str = "/dm-master/task-cli-args/";
/// OpenAPI task templates: task → Task.
pub const OPENAPI_TASK_TEMPLATE: &str = "/dm-master/openapi-task-template/";
/// Pessimistic shard DDL infos: (task, source).
pub const SHARDDDL_PESSIMISM_INFO: &str = "/dm-master/shardddl-pessimism/info/";
/// Pessimistic shard DDL operations: (task, source).
pub const SHARDDDL_PESSIMISM_OPERATION: &str = "/dm-master/shardddl-pessimism/operation/";
/// Optimistic source tables: (task, source).
pub const SHARDDDL_OPTIMISM_SOURCE_TABLES: &str = "/dm-master/shardddl-optimism/source-tables/";
/// Optimistic infos: (task, source, up-schema, up-table).
pub const SHARDDDL_OPTIMISM_INFO: &str = "/dm-master/shardddl-optimism/info/";
/// Optimistic operations: (task, source, up-schema, up-table).
pub const SHARDDDL_OPTIMISM_OPERATION: &str = "/dm-master/shardddl-optimism/operation/";
/// Optimistic partially dropped columns: (lock-id, column, source, up-schema, up-table).
pub const SHARDDDL_OPTIMISM_DROPPED_COLUMNS: &str = "/dm-master/shardddl-optimism/dropped-columns/";

/// `prefix` followed by the hex encoding of each segment, `/`-joined.
pub fn key(prefix: &str, segments: &[&str]) -> String {
    let mut k = String::from(prefix);
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            k.push('/');
        }
        k.push_str(&hex::encode(s.as_bytes()));
    }
    k
}

/// Like [`key`] but ending with `/`, to read or watch everything below the segments.
pub fn prefix(prefix: &str, segments: &[&str]) -> String {
    let mut k = key(prefix, segments);
    if !segments.is_empty() {
        k.push('/');
    }
    k
}

/// Decodes the hex segments after `prefix`; `None` when `full` is not below `prefix` or a
/// segment is not hex UTF-8.
pub fn decode(prefix: &str, full: &str) -> Option<Vec<String>> {
    let rest = full.strip_prefix(prefix)?;
    rest.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| hex::decode(s).ok().and_then(|b| String::from_utf8(b).ok()))
        .collect()
}

/// `/dm-master/stage/subtask/<source>/<task>`.
pub fn subtask_stage(source: &str, task: &str) -> String {
    key(SUBTASK_STAGE, &[source, task])
}

/// `/dm-master/upstream/subtask/<source>/<task>`.
pub fn subtask_config(source: &str, task: &str) -> String {
    key(SUBTASK_CONFIG, &[source, task])
}

/// `/dm-master/v2/upstream/config/<source>`.
pub fn source_config(source: &str) -> String {
    key(UPSTREAM_CONFIG, &[source])
}

/// `/dm-worker/a/<worker>`.
pub fn worker_keepalive(worker: &str) -> String {
    key(WORKER_KEEPALIVE, &[worker])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hex_segments() {
        assert_eq!(
            subtask_stage("mysql-01", "t/1"),
            "/dm-master/stage/subtask/6d7973716c2d3031/742f31"
        );
        assert_eq!(
            prefix(SUBTASK_STAGE, &["a"]),
            "/dm-master/stage/subtask/61/"
        );
        assert_eq!(prefix(SUBTASK_STAGE, &[]), SUBTASK_STAGE);
        let k = subtask_config("src", "task name");
        assert_eq!(decode(SUBTASK_CONFIG, &k).unwrap(), ["src", "task name"]);
        assert_eq!(decode(SUBTASK_CONFIG, "/other/61"), None);
        assert_eq!(
            decode(SUBTASK_CONFIG, "/dm-master/upstream/subtask/zz"),
            None
        );
    }
}
