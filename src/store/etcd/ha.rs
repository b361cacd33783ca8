//! The cluster's state in etcd, typed: source configs, worker registrations and keepalives,
//! bindings, subtask configs and expected stages, under DM's keys ([`super::keys`]) with DM's
//! JSON values. The master's Scheduler writes configs, stages and bindings; a worker writes its
//! keepalive and reads the rest. Every multi-key change is one transaction.

use std::collections::BTreeMap;

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::keys::{self, key};
use crate::config::{SourceConfig, SubTaskConfig};
use crate::error::{DmError, codes};

/// DM's stage numbers (`pb.Stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "i32", try_from = "i32")]
pub enum Stage {
    New = 1,
    Running = 2,
    Paused = 3,
    Stopped = 4,
    Finished = 5,
}

impl Stage {
    /// DM's name (`Running`, `Paused`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::New => "New",
            Stage::Running => "Running",
            Stage::Paused => "Paused",
            Stage::Stopped => "Stopped",
            Stage::Finished => "Finished",
        }
    }
}

impl From<Stage> for i32 {
    fn from(s: Stage) -> i32 {
        s as i32
    }
}

impl TryFrom<i32> for Stage {
    type Error = String;

    fn try_from(v: i32) -> Result<Self, String> {
        Ok(match v {
            1 => Stage::New,
            2 => Stage::Running,
            3 => Stage::Paused,
            4 => Stage::Stopped,
            5 => Stage::Finished,
            _ => return Err(format!("unknown stage {v}")),
        })
    }
}

/// `/dm-master/stage/subtask/<source>/<task>` → this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubTaskStage {
    pub expect: Stage,
    pub source: String,
    pub task: String,
}

/// `/dm-worker/r/<worker>` → this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    pub addr: String,
}

/// `/dm-worker/a/<worker>` (leased) → this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerEvent {
    #[serde(rename = "worker-name")]
    pub worker_name: String,
    /// RFC 3339 time the worker took its lease.
    #[serde(rename = "join-time")]
    pub join_time: String,
}

/// `/dm-master/bound-worker/<worker>` and `/dm-master/last-bound-worker/<worker>` → this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceBound {
    pub source: String,
    pub worker: String,
}

/// Everything the Scheduler rebuilds from, read at one revision.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// The revision of the read; watches start after it.
    pub revision: i64,
    pub sources: BTreeMap<String, SourceConfig>,
    pub workers: BTreeMap<String, WorkerInfo>,
    /// Workers holding a keepalive lease.
    pub alive: BTreeMap<String, WorkerEvent>,
    /// worker → binding.
    pub bounds: BTreeMap<String, SourceBound>,
    /// worker → last binding.
    pub last_bounds: BTreeMap<String, SourceBound>,
    /// (source, task) → config.
    pub subtasks: BTreeMap<(String, String), SubTaskConfig>,
    /// (source, task) → expected stage.
    pub stages: BTreeMap<(String, String), SubTaskStage>,
}

fn etcd_err(what: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> DmError {
    let what = what.into();
    move |e| DmError::new(&codes::HA_FAIL_TXN_OPERATION, what).with_cause(e)
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("etcd values serialize")
}

fn decode_json<T: for<'de> Deserialize<'de>>(k: &str, v: &[u8]) -> Result<T, DmError> {
    serde_json::from_slice(v).map_err(|e| {
        DmError::new(
            &codes::HA_FAIL_TXN_OPERATION,
            format!("etcd value of `{k}` is not valid"),
        )
        .with_cause(e)
    })
}

/// The TOML form of a source config stored in etcd.
pub fn source_to_toml(cfg: &SourceConfig) -> Result<String, DmError> {
    toml::to_string(cfg).map_err(|e| {
        DmError::new(
            &codes::CONFIG_TOML_TRANSFORM,
            format!("encoding source `{}`", cfg.source_id),
        )
        .with_cause(e)
    })
}

/// Reads a source config back from etcd.
pub fn source_from_toml(text: &str) -> Result<SourceConfig, DmError> {
    toml::from_str(text).map_err(|e| {
        DmError::new(&codes::CONFIG_TOML_TRANSFORM, "decoding a source config").with_cause(e)
    })
}

/// Every key/value below `prefix` at `revision` (0 = latest); returns the read's revision.
pub async fn get_prefix(
    client: &mut Client,
    prefix: &str,
    revision: i64,
) -> Result<(i64, Vec<(String, Vec<u8>)>), DmError> {
    let mut opts = GetOptions::new().with_prefix();
    if revision > 0 {
        opts = opts.with_revision(revision);
    }
    let resp = client
        .get(prefix, Some(opts))
        .await
        .map_err(etcd_err(format!("reading `{prefix}`")))?;
    let rev = resp.header().map_or(0, |h| h.revision());
    let kvs = resp
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.value().to_vec(),
            )
        })
        .collect();
    Ok((rev, kvs))
}

/// Reads the whole cluster state at one revision.
pub async fn load_state(client: &mut Client) -> Result<ClusterState, DmError> {
    let (revision, _) = get_prefix(client, keys::UPSTREAM_CONFIG, 0).await?;
    let mut st = ClusterState {
        revision,
        ..Default::default()
    };
    for (k, v) in get_prefix(client, keys::UPSTREAM_CONFIG, revision).await?.1 {
        let cfg = source_from_toml(&String::from_utf8_lossy(&v))?;
        st.sources.insert(cfg.source_id.clone(), cfg);
        let _ = k;
    }
    for (k, v) in get_prefix(client, keys::WORKER_REGISTER, revision).await?.1 {
        let w: WorkerInfo = decode_json(&k, &v)?;
        st.workers.insert(w.name.clone(), w);
    }
    for (k, v) in get_prefix(client, keys::WORKER_KEEPALIVE, revision)
        .await?
        .1
    {
        let w: WorkerEvent = decode_json(&k, &v)?;
        st.alive.insert(w.worker_name.clone(), w);
    }
    for (k, v) in get_prefix(client, keys::BOUND_WORKER, revision).await?.1 {
        let b: SourceBound = decode_json(&k, &v)?;
        st.bounds.insert(b.worker.clone(), b);
    }
    for (k, v) in get_prefix(client, keys::LAST_BOUND_WORKER, revision)
        .await?
        .1
    {
        let b: SourceBound = decode_json(&k, &v)?;
        st.last_bounds.insert(b.worker.clone(), b);
    }
    for (_, v) in get_prefix(client, keys::SUBTASK_CONFIG, revision).await?.1 {
        let cfg = SubTaskConfig::from_toml(&String::from_utf8_lossy(&v))?;
        st.subtasks
            .insert((cfg.source_id.clone(), cfg.name.clone()), cfg);
    }
    for (k, v) in get_prefix(client, keys::SUBTASK_STAGE, revision).await?.1 {
        let s: SubTaskStage = decode_json(&k, &v)?;
        st.stages.insert((s.source.clone(), s.task.clone()), s);
    }
    Ok(st)
}

/// One change in a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    PutSource(SourceConfig),
    DeleteSource(String),
    PutWorker(WorkerInfo),
    DeleteWorker(String),
    /// Puts both the binding and the last binding.
    PutBound(SourceBound),
    /// Deletes the binding of a worker (the last binding stays).
    DeleteBound(String),
    DeleteLastBound(String),
    PutSubtask(SubTaskConfig),
    DeleteSubtask {
        source: String,
        task: String,
    },
    PutStage(SubTaskStage),
    DeleteStage {
        source: String,
        task: String,
    },
}

impl Op {
    fn into_txn_ops(self) -> Result<Vec<TxnOp>, DmError> {
        Ok(match self {
            Op::PutSource(cfg) => vec![TxnOp::put(
                keys::source_config(&cfg.source_id),
                source_to_toml(&cfg)?,
                None,
            )],
            Op::DeleteSource(s) => vec![TxnOp::delete(keys::source_config(&s), None)],
            Op::PutWorker(w) => vec![TxnOp::put(
                key(keys::WORKER_REGISTER, &[&w.name]),
                json(&w),
                None,
            )],
            Op::DeleteWorker(w) => vec![TxnOp::delete(key(keys::WORKER_REGISTER, &[&w]), None)],
            Op::PutBound(b) => vec![
                TxnOp::put(key(keys::BOUND_WORKER, &[&b.worker]), json(&b), None),
                TxnOp::put(key(keys::LAST_BOUND_WORKER, &[&b.worker]), json(&b), None),
            ],
            Op::DeleteBound(w) => vec![TxnOp::delete(key(keys::BOUND_WORKER, &[&w]), None)],
            Op::DeleteLastBound(w) => {
                vec![TxnOp::delete(key(keys::LAST_BOUND_WORKER, &[&w]), None)]
            }
            Op::PutSubtask(cfg) => vec![TxnOp::put(
                keys::subtask_config(&cfg.source_id, &cfg.name),
                cfg.to_toml()?,
                None,
            )],
            Op::DeleteSubtask { source, task } => {
                vec![TxnOp::delete(keys::subtask_config(&source, &task), None)]
            }
            Op::PutStage(s) => vec![TxnOp::put(
                keys::subtask_stage(&s.source, &s.task),
                json(&s),
                None,
            )],
            Op::DeleteStage { source, task } => {
                vec![TxnOp::delete(keys::subtask_stage(&source, &task), None)]
            }
        })
    }
}

/// Applies `ops` in one transaction; returns its revision.
pub async fn apply(client: &mut Client, ops: Vec<Op>) -> Result<i64, DmError> {
    let mut txn_ops = Vec::new();
    for op in ops {
        txn_ops.extend(op.into_txn_ops()?);
    }
    let resp = client
        .txn(Txn::new().and_then(txn_ops))
        .await
        .map_err(etcd_err("writing the cluster state"))?;
    Ok(resp.header().map_or(0, |h| h.revision()))
}

/// Applies `ops` only while the worker's keepalive key exists (so a binding is never written
/// for a worker whose lease just expired). Returns false when the worker is not alive.
pub async fn apply_if_alive(
    client: &mut Client,
    worker: &str,
    ops: Vec<Op>,
) -> Result<bool, DmError> {
    let mut txn_ops = Vec::new();
    for op in ops {
        txn_ops.extend(op.into_txn_ops()?);
    }
    let alive = Compare::create_revision(keys::worker_keepalive(worker), CompareOp::Greater, 0);
    let resp = client
        .txn(Txn::new().when(vec![alive]).and_then(txn_ops))
        .await
        .map_err(etcd_err("writing the cluster state"))?;
    Ok(resp.succeeded())
}

/// Puts the worker's keepalive key under `lease`.
pub async fn put_keepalive(
    client: &mut Client,
    event: &WorkerEvent,
    lease: i64,
) -> Result<(), DmError> {
    client
        .put(
            keys::worker_keepalive(&event.worker_name),
            json(event),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .map_err(|e| {
            DmError::new(&codes::HA_FAIL_LEASE_OPERATION, "putting the keepalive key").with_cause(e)
        })?;
    Ok(())
}

/// The binding of `worker`, if any, and the read's revision.
pub async fn get_bound(
    client: &mut Client,
    worker: &str,
) -> Result<(i64, Option<SourceBound>), DmError> {
    let k = key(keys::BOUND_WORKER, &[worker]);
    let resp = client
        .get(k.clone(), None)
        .await
        .map_err(etcd_err(format!("reading `{k}`")))?;
    let rev = resp.header().map_or(0, |h| h.revision());
    match resp.kvs().first() {
        Some(kv) => Ok((rev, Some(decode_json(&k, kv.value())?))),
        None => Ok((rev, None)),
    }
}

/// A source's config, if it exists.
pub async fn get_source(
    client: &mut Client,
    source: &str,
) -> Result<Option<SourceConfig>, DmError> {
    let k = keys::source_config(source);
    let resp = client
        .get(k.clone(), None)
        .await
        .map_err(etcd_err(format!("reading `{k}`")))?;
    resp.kvs()
        .first()
        .map(|kv| source_from_toml(&String::from_utf8_lossy(kv.value())))
        .transpose()
}

/// The subtask configs and expected stages of one source, at one revision.
pub async fn get_source_subtasks(
    client: &mut Client,
    source: &str,
) -> Result<
    (
        i64,
        BTreeMap<String, SubTaskConfig>,
        BTreeMap<String, SubTaskStage>,
    ),
    DmError,
> {
    let (rev, cfgs) = get_prefix(client, &keys::prefix(keys::SUBTASK_CONFIG, &[source]), 0).await?;
    let (_, stages) =
        get_prefix(client, &keys::prefix(keys::SUBTASK_STAGE, &[source]), rev).await?;
    let mut c = BTreeMap::new();
    for (_, v) in cfgs {
        let cfg = SubTaskConfig::from_toml(&String::from_utf8_lossy(&v))?;
        c.insert(cfg.name.clone(), cfg);
    }
    let mut s = BTreeMap::new();
    for (k, v) in stages {
        let st: SubTaskStage = decode_json(&k, &v)?;
        s.insert(st.task.clone(), st);
    }
    Ok((rev, c, s))
}

/// Decodes a subtask stage value read from a watch.
pub fn decode_stage(k: &str, v: &[u8]) -> Result<SubTaskStage, DmError> {
    decode_json(k, v)
}

/// Decodes a binding value read from a watch.
pub fn decode_bound(k: &str, v: &[u8]) -> Result<SourceBound, DmError> {
    decode_json(k, v)
}

/// Decodes a keepalive value read from a watch.
pub fn decode_keepalive(k: &str, v: &[u8]) -> Result<WorkerEvent, DmError> {
    decode_json(k, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_dms_json() {
        let s = SubTaskStage {
            expect: Stage::Running,
            source: "mysql-01".into(),
            task: "t".into(),
        };
        assert_eq!(json(&s), r#"{"expect":2,"source":"mysql-01","task":"t"}"#);
        let back: SubTaskStage =
            serde_json::from_str(r#"{"expect":3,"source":"a","task":"b"}"#).unwrap();
        assert_eq!(back.expect, Stage::Paused);
        assert!(
            serde_json::from_str::<SubTaskStage>(r#"{"expect":9,"source":"a","task":"b"}"#)
                .is_err()
        );
        let e = WorkerEvent {
            worker_name: "w1".into(),
            join_time: "2026-11-21T00:00:00Z".into(),
        };
        assert_eq!(
            json(&e),
            r#"{"worker-name":"w1","join-time":"2026-11-21T00:00:00Z"}"#
        );
    }

    #[test]
    fn source_config_round_trips_through_toml() {
        let cfg = SourceConfig::from_yaml(
            "source-id: mysql-01\nfrom:\n  host: 127.0.0.1\n  port: 3306\n  user: root\n  password: pw\n",
            "t",
        )
        .unwrap();
        let back = source_from_toml(&source_to_toml(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }
}
