//! The cluster's state in etcd, typed: source configs, worker registrations and keepalives,
//! bindings, subtask configs and expected stages, under DM's keys ([`super::keys`]) with DM's
//! JSON values. The master's Scheduler writes configs, stages and bindings; a worker writes its
//! keepalive and reads the rest. Every multi-key change is one transaction.

use std::collections::BTreeMap;

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp, TxnOpResponse, WatchOptions, WatchStream,
};
use serde::{Deserialize, Serialize};

use super::keys::{self, key};
use crate::config::{SourceConfig, SubTaskConfig};
use crate::error::{DmError, codes};
use crate::ids::SubtaskKey;

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
    pub subtasks: BTreeMap<SubtaskKey, SubTaskConfig>,
    pub stages: BTreeMap<SubtaskKey, SubTaskStage>,
}

pub(crate) fn etcd_err(what: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> DmError {
    let what = what.into();
    move |e| DmError::new(&codes::HA_FAIL_TXN_OPERATION, what).with_cause(e)
}

pub(crate) fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("etcd values serialize")
}

pub(crate) fn decode_json<T: for<'de> Deserialize<'de>>(k: &str, v: &[u8]) -> Result<T, DmError> {
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
    let (rev, kvs) = get_prefix_revisions(client, prefix, revision).await?;
    Ok((rev, kvs.into_iter().map(|(k, v, _)| (k, v)).collect()))
}

/// Like [`get_prefix`], each key with its mod revision.
pub async fn get_prefix_revisions(
    client: &mut Client,
    prefix: &str,
    revision: i64,
) -> Result<(i64, Vec<(String, Vec<u8>, i64)>), DmError> {
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
                kv.mod_revision(),
            )
        })
        .collect();
    Ok((rev, kvs))
}

/// The JSON values below `prefix` at `revision`, decoded.
async fn json_prefix<T: for<'de> Deserialize<'de>>(
    client: &mut Client,
    prefix: &str,
    revision: i64,
) -> Result<Vec<T>, DmError> {
    get_prefix(client, prefix, revision)
        .await?
        .1
        .iter()
        .map(|(k, v)| decode_json(k, v))
        .collect()
}

/// Reads the whole cluster state at one revision.
pub async fn load_state(client: &mut Client) -> Result<ClusterState, DmError> {
    // One read fixes the revision; every other prefix is read at it.
    let (revision, sources) = get_prefix(client, keys::UPSTREAM_CONFIG, 0).await?;
    let mut st = ClusterState {
        revision,
        ..Default::default()
    };
    for (_, v) in sources {
        let cfg = source_from_toml(&String::from_utf8_lossy(&v))?;
        st.sources.insert(cfg.source_id.clone(), cfg);
    }
    for w in json_prefix::<WorkerInfo>(client, keys::WORKER_REGISTER, revision).await? {
        st.workers.insert(w.name.clone(), w);
    }
    for w in json_prefix::<WorkerEvent>(client, keys::WORKER_KEEPALIVE, revision).await? {
        st.alive.insert(w.worker_name.clone(), w);
    }
    for b in json_prefix::<SourceBound>(client, keys::BOUND_WORKER, revision).await? {
        st.bounds.insert(b.worker.clone(), b);
    }
    for b in json_prefix::<SourceBound>(client, keys::LAST_BOUND_WORKER, revision).await? {
        st.last_bounds.insert(b.worker.clone(), b);
    }
    for (_, v) in get_prefix(client, keys::SUBTASK_CONFIG, revision).await?.1 {
        let cfg = SubTaskConfig::from_toml(&String::from_utf8_lossy(&v))?;
        st.subtasks
            .insert(SubtaskKey::new(&cfg.name, &cfg.source_id), cfg);
    }
    for (k, v) in get_prefix(client, keys::SUBTASK_STAGE, revision).await?.1 {
        let s: SubTaskStage = decode_json(&k, &v)?;
        st.stages.insert(SubtaskKey::new(&s.task, &s.source), s);
    }
    Ok(st)
}

/// One change in a transaction.
// NOTE: ops live only while a transaction is built; boxing the config variants would only
// burden every caller.
#[allow(clippy::large_enum_variant)]
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

/// The leader's hold on the election: its election key and that key's create revision. The
/// Scheduler makes every write conditional on it, so a deposed leader's late write fails
/// instead of racing the new leader's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: Vec<u8>,
    pub create_revision: i64,
}

impl Fence {
    pub(crate) fn compare(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareOp::Equal, self.create_revision)
    }
}

/// How a guarded transaction ([`apply_guarded`]) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// Written, at this revision.
    Applied(i64),
    /// Nothing written: the worker named as a condition holds no keepalive.
    WorkerNotAlive,
    /// Nothing written: the fence's election key is gone or was re-created.
    FenceLost,
}

/// Applies `ops` in one transaction only while `fence` (if any) holds and `alive` (if any)
/// names a worker whose keepalive key exists.
pub async fn apply_guarded(
    client: &mut Client,
    fence: Option<&Fence>,
    alive: Option<&str>,
    ops: Vec<Op>,
) -> Result<Guarded, DmError> {
    let mut txn_ops = Vec::new();
    for op in ops {
        txn_ops.extend(op.into_txn_ops()?);
    }
    let mut conds = Vec::new();
    if let Some(f) = fence {
        conds.push(f.compare());
    }
    if let Some(w) = alive {
        conds.push(Compare::create_revision(
            keys::worker_keepalive(w),
            CompareOp::Greater,
            0,
        ));
    }
    // On failure, read the fence key to tell which condition failed.
    let otherwise = fence
        .map(|f| vec![TxnOp::get(f.key.clone(), None)])
        .unwrap_or_default();
    let resp = client
        .txn(Txn::new().when(conds).and_then(txn_ops).or_else(otherwise))
        .await
        .map_err(etcd_err("writing the cluster state"))?;
    if resp.succeeded() {
        return Ok(Guarded::Applied(resp.header().map_or(0, |h| h.revision())));
    }
    let fence_holds = match (fence, resp.op_responses().first()) {
        (Some(f), Some(TxnOpResponse::Get(g))) => g
            .kvs()
            .first()
            .is_some_and(|kv| kv.create_revision() == f.create_revision),
        (Some(_), _) => false,
        (None, _) => true,
    };
    Ok(if fence_holds {
        Guarded::WorkerNotAlive
    } else {
        Guarded::FenceLost
    })
}

/// The current holder of election `name` (the key with the lowest create revision below
/// `name/`, as etcd's election defines it): (key, create revision, lease, value).
pub async fn election_leader(
    client: &mut Client,
    name: &str,
) -> Result<Option<(Vec<u8>, i64, i64, Vec<u8>)>, DmError> {
    let prefix = format!("{name}/");
    let opts = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(1);
    let resp = client
        .get(prefix.clone(), Some(opts))
        .await
        .map_err(etcd_err(format!("reading the election `{name}`")))?;
    Ok(resp.kvs().first().map(|kv| {
        (
            kv.key().to_vec(),
            kv.create_revision(),
            kv.lease(),
            kv.value().to_vec(),
        )
    }))
}

/// Joins election `name` as the candidate of `lease` (etcd's election algorithm: the key
/// `name/<lease hex>` under the lease, created once); returns its fence.
pub async fn election_join(
    client: &mut Client,
    name: &str,
    lease: i64,
    value: &[u8],
) -> Result<Fence, DmError> {
    let key = format!("{name}/{lease:x}");
    let absent = Compare::create_revision(key.clone(), CompareOp::Equal, 0);
    let put = TxnOp::put(
        key.clone(),
        value.to_vec(),
        Some(PutOptions::new().with_lease(lease)),
    );
    let resp = client
        .txn(
            Txn::new()
                .when(vec![absent])
                .and_then(vec![put])
                .or_else(vec![TxnOp::get(key.clone(), None)]),
        )
        .await
        .map_err(etcd_err(format!("joining the election `{name}`")))?;
    let create_revision = if resp.succeeded() {
        resp.header().map_or(0, |h| h.revision())
    } else {
        match resp.op_responses().first() {
            Some(TxnOpResponse::Get(g)) => g.kvs().first().map_or(0, |kv| kv.create_revision()),
            _ => 0,
        }
    };
    if create_revision == 0 {
        return Err(DmError::new(
            &codes::HA_FAIL_TXN_OPERATION,
            format!("the election key `{key}` vanished while joining"),
        ));
    }
    Ok(Fence {
        key: key.into_bytes(),
        create_revision,
    })
}

/// Waits until every candidate of election `name` created before `fence` is gone: then the
/// fence's key leads. Fails when the fence's own key disappeared meanwhile.
pub async fn election_wait_turn(
    client: &mut Client,
    name: &str,
    fence: &Fence,
) -> Result<(), DmError> {
    let prefix = format!("{name}/");
    loop {
        let opts = GetOptions::new()
            .with_prefix()
            .with_max_create_revision(fence.create_revision - 1)
            .with_sort(SortTarget::Create, SortOrder::Descend)
            .with_limit(1);
        let resp = client
            .get(prefix.clone(), Some(opts))
            .await
            .map_err(etcd_err(format!("reading the election `{name}`")))?;
        let rev = resp.header().map_or(0, |h| h.revision());
        let Some(kv) = resp.kvs().first() else {
            break;
        };
        // A failed watch is retried by the next round's read.
        if let Err(e) = wait_deleted(client, kv.key().to_vec(), rev + 1).await {
            tracing::debug!(error = %e.chain(), "election watch interrupted");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    if fence_holds(client, fence).await? {
        Ok(())
    } else {
        Err(DmError::new(
            &codes::HA_FAIL_LEASE_OPERATION,
            "the election key disappeared while campaigning (lease expired?)",
        ))
    }
}

async fn fence_holds(client: &mut Client, fence: &Fence) -> Result<bool, DmError> {
    let resp = client
        .get(fence.key.clone(), None)
        .await
        .map_err(etcd_err("reading the election key"))?;
    Ok(resp
        .kvs()
        .first()
        .is_some_and(|kv| kv.create_revision() == fence.create_revision))
}

/// Waits for a delete event of `key` from `revision`.
async fn wait_deleted(client: &mut Client, key: Vec<u8>, revision: i64) -> Result<(), DmError> {
    let watch_err = |what: &str| DmError::new(&codes::HA_FAIL_WATCH_ETCD, what.to_string());
    let mut stream = client
        .watch(key, Some(WatchOptions::new().with_start_revision(revision)))
        .await
        .map_err(|e| watch_err("watching an election key").with_cause(e))?;
    loop {
        let resp = stream
            .message()
            .await
            .map_err(|e| watch_err("election key watch failed").with_cause(e))?
            .ok_or_else(|| watch_err("election key watch closed"))?;
        if resp.canceled() || resp.compact_revision() > 0 {
            return Err(watch_err("election key watch cancelled"));
        }
        if resp
            .events()
            .iter()
            .any(|e| e.event_type() == EventType::Delete)
        {
            return Ok(());
        }
    }
}

/// Returns (with the reason) once `fence`'s key is deleted or re-created. Read and watch
/// failures are retried: an unreachable etcd ends a term through its lease instead.
pub async fn wait_fence_lost(client: &mut Client, fence: &Fence) -> DmError {
    let lost = || {
        DmError::new(
            &codes::HA_FAIL_LEASE_OPERATION,
            "the election key was deleted",
        )
    };
    loop {
        let resp = match client.get(fence.key.clone(), None).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "reading the election key failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        let rev = resp.header().map_or(0, |h| h.revision());
        let holds = resp
            .kvs()
            .first()
            .is_some_and(|kv| kv.create_revision() == fence.create_revision);
        if !holds {
            return lost();
        }
        match wait_deleted(client, fence.key.clone(), rev + 1).await {
            Ok(()) => return lost(),
            Err(e) => {
                tracing::debug!(error = %e.chain(), "election key watch interrupted; re-reading");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

/// A change of a worker's keepalive key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepaliveEvent {
    /// The worker put its keepalive (it is alive).
    Put(String),
    /// The keepalive disappeared (lease expired or revoked, worker stopped).
    Delete(String),
}

/// Watches every key under `prefix` from `revision` (inclusive).
pub async fn watch_prefix(
    client: &mut Client,
    prefix: &str,
    revision: i64,
) -> Result<WatchStream, DmError> {
    client
        .watch(
            prefix,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision),
            ),
        )
        .await
        .map_err(|e| {
            DmError::new(&codes::HA_FAIL_WATCH_ETCD, format!("watching `{prefix}`")).with_cause(e)
        })
}

/// `Err` when the watch answering `resp` was cancelled or compacted (re-read, then watch
/// again); `what` names the watch.
pub fn watch_alive(resp: &etcd_client::WatchResponse, what: &str) -> Result<(), DmError> {
    if resp.canceled() || resp.compact_revision() > 0 {
        return Err(DmError::new(
            &codes::HA_FAIL_WATCH_ETCD,
            format!(
                "the {what} watch was cancelled (compact revision {}): {}",
                resp.compact_revision(),
                resp.cancel_reason()
            ),
        ));
    }
    Ok(())
}

/// Watches every keepalive key from `revision` (inclusive).
pub async fn watch_keepalives(client: &mut Client, revision: i64) -> Result<WatchStream, DmError> {
    watch_prefix(client, keys::WORKER_KEEPALIVE, revision).await
}

/// The keepalive events of one watch response and the revision after its last event; `Err`
/// when the watch was cancelled or compacted (re-list, then watch again).
pub fn keepalive_events(
    resp: &etcd_client::WatchResponse,
) -> Result<(Vec<KeepaliveEvent>, Option<i64>), DmError> {
    watch_alive(resp, "keepalive")?;
    let mut out = Vec::new();
    let mut next = None;
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        next = Some(kv.mod_revision() + 1);
        let k = String::from_utf8_lossy(kv.key());
        let Some(name) = keys::decode(keys::WORKER_KEEPALIVE, &k).and_then(|mut s| s.pop()) else {
            continue;
        };
        out.push(match ev.event_type() {
            EventType::Put => KeepaliveEvent::Put(name),
            EventType::Delete => KeepaliveEvent::Delete(name),
        });
    }
    Ok((out, next))
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

/// A worker's registration, if it exists.
pub async fn get_worker(client: &mut Client, worker: &str) -> Result<Option<WorkerInfo>, DmError> {
    let k = key(keys::WORKER_REGISTER, &[worker]);
    let resp = client
        .get(k.clone(), None)
        .await
        .map_err(etcd_err(format!("reading `{k}`")))?;
    resp.kvs()
        .first()
        .map(|kv| decode_json(&k, kv.value()))
        .transpose()
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
