//! Shard DDL coordination state in etcd, with DM's keys and JSON values (dm-reference §5, §9):
//! pessimistic Info/Operation per (task, source), optimistic source tables per (task, source)
//! and Info/Operation per (task, source, upstream schema, upstream table).
//!
//! Revision order of one pessimistic lock (as DM's): master reads all (M1) < worker puts its
//! Info (W1) < master puts the Operations (M2) < worker puts done and deletes its Info in one
//! transaction (W2) < master deletes the Operations (M3). Master writes are fenced by the
//! election key ([`Fence`]); worker writes are conditional where DM's are.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp, TxnOpResponse,
};
use serde::{Deserialize, Serialize};

use super::ha::{Fence, decode_json, etcd_err, json};
use super::keys::{self, key};
use crate::error::DmError;

/// DM's lock id: ``<task>-`<schema>`.`<table>` `` of the target table (backquotes in names
/// doubled).
pub fn lock_id(task: &str, schema: &str, table: &str) -> String {
    format!(
        "{task}-{}.{}",
        crate::syntax::quote_ident(schema),
        crate::syntax::quote_ident(table)
    )
}

/// The task part of a lock id (DM's `ExtractTaskFromLockID`): everything before the last
/// ``-` `` that starts the quoted target.
pub fn task_of_lock(id: &str) -> Option<&str> {
    let body = id.strip_suffix('`')?;
    // The target is `schema`.`table`: find "-`" followed by a quoted schema, a dot and a
    // quoted table, scanning from the left (task names may contain '-').
    let mut from = 0;
    while let Some(i) = body[from..].find("-`") {
        let at = from + i;
        if body[at + 1..].contains("`.`") {
            return Some(&id[..at]);
        }
        from = at + 2;
    }
    None
}

/// A pessimistic Info: a source's shard DDLs for one target table, put when every table of
/// the source's sharding group ran them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PessimisticInfo {
    pub task: String,
    pub source: String,
    /// The target (routed) schema and table.
    pub schema: String,
    pub table: String,
    pub ddls: Vec<String>,
}

impl PessimisticInfo {
    pub fn lock_id(&self) -> String {
        lock_id(&self.task, &self.schema, &self.table)
    }

    pub fn key(&self) -> String {
        key(keys::SHARDDDL_PESSIMISM_INFO, &[&self.task, &self.source])
    }
}

/// A pessimistic Operation: what one source does with the lock's DDLs (`exec` on the owner,
/// skip on the others); `done` once it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PessimisticOp {
    pub id: String,
    pub task: String,
    pub source: String,
    pub ddls: Vec<String>,
    pub exec: bool,
    pub done: bool,
}

impl PessimisticOp {
    pub fn key(&self) -> String {
        key(
            keys::SHARDDDL_PESSIMISM_OPERATION,
            &[&self.task, &self.source],
        )
    }
}

fn info_key(task: &str, source: &str) -> String {
    key(keys::SHARDDDL_PESSIMISM_INFO, &[task, source])
}

fn op_key(task: &str, source: &str) -> String {
    key(keys::SHARDDDL_PESSIMISM_OPERATION, &[task, source])
}

pub(crate) fn txn_err(what: &str) -> impl FnOnce(etcd_client::Error) -> DmError {
    etcd_err(format!("shard DDL: {what}"))
}

/// The Operation of (`task`, `source`) with its mod revision, and the read's revision.
pub async fn get_pessimistic_op(
    client: &mut Client,
    task: &str,
    source: &str,
) -> Result<(i64, Option<(PessimisticOp, i64)>), DmError> {
    let k = op_key(task, source);
    let resp = client
        .get(k.clone(), None)
        .await
        .map_err(txn_err("reading an operation"))?;
    let rev = resp.header().map_or(0, |h| h.revision());
    let op = match resp.kvs().first() {
        Some(kv) => Some((decode_json(&k, kv.value())?, kv.mod_revision())),
        None => None,
    };
    Ok((rev, op))
}

/// Worker: puts `info` unless an Operation of the source is still there (DM's
/// `PutInfoIfOpNotDone`). Returns the Operation found instead, if any.
pub async fn put_pessimistic_info(
    client: &mut Client,
    info: &PessimisticInfo,
) -> Result<Option<PessimisticOp>, DmError> {
    let ok = op_key(&info.task, &info.source);
    let resp = client
        .txn(
            Txn::new()
                .when(vec![Compare::create_revision(
                    ok.clone(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then(vec![TxnOp::put(info.key(), json(info), None)])
                .or_else(vec![TxnOp::get(ok.clone(), None)]),
        )
        .await
        .map_err(txn_err("putting an info"))?;
    if resp.succeeded() {
        return Ok(None);
    }
    match resp.op_responses().first() {
        Some(TxnOpResponse::Get(g)) => match g.kvs().first() {
            Some(kv) => Ok(Some(decode_json(&ok, kv.value())?)),
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

/// How the worker's done step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoneOutcome {
    /// Done put and Info deleted now.
    Done,
    /// The Info was already gone (an earlier attempt succeeded, or the lock was unlocked).
    InfoGone,
}

/// Worker: marks `op` done and deletes the source's Info, in one transaction that only runs
/// while the Info exists (DM's `PutOperationDeleteExistInfo`).
pub async fn done_pessimistic(
    client: &mut Client,
    op: &PessimisticOp,
) -> Result<DoneOutcome, DmError> {
    let ik = info_key(&op.task, &op.source);
    let mut done = op.clone();
    done.done = true;
    let resp = client
        .txn(
            Txn::new()
                .when(vec![Compare::create_revision(
                    ik.clone(),
                    CompareOp::Greater,
                    0,
                )])
                .and_then(vec![
                    TxnOp::put(done.key(), json(&done), None),
                    TxnOp::delete(ik, None),
                ]),
        )
        .await
        .map_err(txn_err("marking an operation done"))?;
    Ok(if resp.succeeded() {
        DoneOutcome::Done
    } else {
        DoneOutcome::InfoGone
    })
}

/// Polls until the Operation of (`task`, `source`) for lock `id` is there and not done; waits
/// first for an older lock's done Operation to be deleted. `every`: the poll interval.
pub async fn wait_pessimistic_op(
    client: &mut Client,
    task: &str,
    source: &str,
    id: &str,
    every: Duration,
) -> Result<PessimisticOp, DmError> {
    loop {
        match get_pessimistic_op(client, task, source).await {
            Ok((_, Some((op, _)))) if op.id == id && !op.done => return Ok(op),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(task, source, error = %e.chain(), "reading the shard DDL operation failed; retrying")
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Master: every pessimistic Info and Operation, read at one revision.
#[derive(Debug, Default)]
pub struct PessimisticState {
    pub revision: i64,
    pub infos: Vec<PessimisticInfo>,
    pub ops: Vec<PessimisticOp>,
}

pub(crate) async fn get_values<T: for<'de> Deserialize<'de>>(
    client: &mut Client,
    prefix: &str,
    revision: i64,
) -> Result<(i64, Vec<T>), DmError> {
    let (rev, kvs) = super::ha::get_prefix(client, prefix, revision).await?;
    let mut out = Vec::with_capacity(kvs.len());
    for (k, v) in kvs {
        out.push(decode_json(&k, &v)?);
    }
    Ok((rev, out))
}

/// Master: reads the whole pessimistic state.
pub async fn load_pessimistic(client: &mut Client) -> Result<PessimisticState, DmError> {
    let (revision, infos) = get_values(client, keys::SHARDDDL_PESSIMISM_INFO, 0).await?;
    let (_, ops) = get_values(client, keys::SHARDDDL_PESSIMISM_OPERATION, revision).await?;
    Ok(PessimisticState {
        revision,
        infos,
        ops,
    })
}

/// A change of the pessimistic state seen by the master's watch.
#[derive(Debug, Clone, PartialEq)]
pub enum PessimisticEvent {
    InfoPut(PessimisticInfo),
    OpPut(PessimisticOp),
}

/// Master: watches Infos and Operations from `revision`.
pub async fn watch_pessimistic(
    client: &mut Client,
    revision: i64,
) -> Result<etcd_client::WatchStream, DmError> {
    super::ha::watch_prefix(client, PESSIMISM_PREFIX, revision).await
}

/// Everything below `/dm-master/shardddl-pessimism/`.
const PESSIMISM_PREFIX: &str = "/dm-master/shardddl-pessimism/";

/// The PUT events of one watch response; `Err` when the watch was cancelled or compacted.
pub fn pessimistic_events(
    resp: &etcd_client::WatchResponse,
) -> Result<Vec<PessimisticEvent>, DmError> {
    super::ha::watch_alive(resp, "shard DDL")?;
    let mut out = Vec::new();
    for ev in resp.events() {
        if ev.event_type() != etcd_client::EventType::Put {
            continue;
        }
        let Some(kv) = ev.kv() else { continue };
        let k = String::from_utf8_lossy(kv.key()).into_owned();
        if k.starts_with(keys::SHARDDDL_PESSIMISM_INFO) {
            out.push(PessimisticEvent::InfoPut(decode_json(&k, kv.value())?));
        } else if k.starts_with(keys::SHARDDDL_PESSIMISM_OPERATION) {
            out.push(PessimisticEvent::OpPut(decode_json(&k, kv.value())?));
        }
    }
    Ok(out)
}

/// Master: how a fenced write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Applied,
    /// The condition (other than the fence) did not hold: nothing written.
    Skipped,
    /// This master no longer leads: nothing written.
    FenceLost,
}

pub(crate) async fn fenced(
    client: &mut Client,
    fence: Option<&Fence>,
    mut conds: Vec<Compare>,
    ops: Vec<TxnOp>,
    what: &str,
) -> Result<Written, DmError> {
    if let Some(f) = fence {
        conds.push(f.compare());
    }
    let check = fence
        .map(|f| vec![TxnOp::get(f.key.clone(), None)])
        .unwrap_or_default();
    let resp = client
        .txn(Txn::new().when(conds).and_then(ops).or_else(check))
        .await
        .map_err(txn_err(what))?;
    if resp.succeeded() {
        return Ok(Written::Applied);
    }
    let fence_holds = match (fence, resp.op_responses().first()) {
        (Some(f), Some(TxnOpResponse::Get(g))) => g
            .kvs()
            .first()
            .is_some_and(|kv| kv.create_revision() == f.create_revision),
        (None, _) => true,
        _ => false,
    };
    Ok(if fence_holds {
        Written::Skipped
    } else {
        Written::FenceLost
    })
}

/// Master: puts `ops`. With `skip_done`, an Operation already stored as done with the same
/// content is not overwritten (DM's `PutOperations(skipDone)`); each op is its own write.
pub async fn put_pessimistic_ops(
    client: &mut Client,
    fence: Option<&Fence>,
    ops: &[PessimisticOp],
    skip_done: bool,
) -> Result<Written, DmError> {
    for op in ops {
        let mut conds = Vec::new();
        if skip_done {
            let mut done = op.clone();
            done.done = true;
            conds.push(Compare::value(op.key(), CompareOp::NotEqual, json(&done)));
        }
        let put = vec![TxnOp::put(op.key(), json(op), None)];
        let mut w = fenced(client, fence, conds, put.clone(), "putting operations").await?;
        if w == Written::Skipped && skip_done {
            // `value != x` is false for a missing key too: put when the key is absent.
            let absent = vec![Compare::create_revision(op.key(), CompareOp::Equal, 0)];
            w = fenced(client, fence, absent, put, "putting operations").await?;
        }
        if w == Written::FenceLost {
            return Ok(w);
        }
    }
    Ok(Written::Applied)
}

/// Master: deletes the Operations of `sources` of `task` (a resolved lock).
pub async fn delete_pessimistic_ops(
    client: &mut Client,
    fence: Option<&Fence>,
    task: &str,
    sources: &[String],
) -> Result<Written, DmError> {
    let ops = sources
        .iter()
        .map(|s| TxnOp::delete(op_key(task, s), None))
        .collect();
    fenced(client, fence, Vec::new(), ops, "deleting operations").await
}

/// Master: deletes the Infos and Operations of `sources` of `task` (unlock).
pub async fn delete_pessimistic_infos_ops(
    client: &mut Client,
    fence: Option<&Fence>,
    task: &str,
    sources: &[String],
) -> Result<Written, DmError> {
    let ops = sources
        .iter()
        .flat_map(|s| {
            [
                TxnOp::delete(info_key(task, s), None),
                TxnOp::delete(op_key(task, s), None),
            ]
        })
        .collect();
    fenced(
        client,
        fence,
        Vec::new(),
        ops,
        "deleting infos and operations",
    )
    .await
}

/// The sources with a subtask of each task (`/dm-master/upstream/subtask/<source>/<task>`).
pub async fn task_sources(client: &mut Client) -> Result<BTreeMap<String, Vec<String>>, DmError> {
    let resp = client
        .get(
            keys::SUBTASK_CONFIG,
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .map_err(txn_err("listing subtasks"))?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for kv in resp.kvs() {
        let k = String::from_utf8_lossy(kv.key());
        if let Some(parts) = keys::decode(keys::SUBTASK_CONFIG, &k)
            && let [source, task] = parts.as_slice()
        {
            out.entry(task.clone()).or_default().push(source.clone());
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

/// Deletes every shard DDL key of `task` (both modes).
pub async fn delete_task(client: &mut Client, task: &str) -> Result<(), DmError> {
    let ops: Vec<TxnOp> = [
        keys::SHARDDDL_PESSIMISM_INFO,
        keys::SHARDDDL_PESSIMISM_OPERATION,
        keys::SHARDDDL_OPTIMISM_SOURCE_TABLES,
        keys::SHARDDDL_OPTIMISM_INFO,
        keys::SHARDDDL_OPTIMISM_OPERATION,
    ]
    .iter()
    .map(|p| {
        TxnOp::delete(
            keys::prefix(p, &[task]),
            Some(DeleteOptions::new().with_prefix()),
        )
    })
    // Dropped columns are keyed by lock ID, ``<task>-`schema`.`table` ``: every lock of the
    // task shares the hex of ``<task>-` `` as the start of its first segment.
    .chain(std::iter::once(TxnOp::delete(
        keys::key(
            keys::SHARDDDL_OPTIMISM_DROPPED_COLUMNS,
            &[&format!("{task}-`")],
        ),
        Some(DeleteOptions::new().with_prefix()),
    )))
    .collect();
    client
        .txn(Txn::new().and_then(ops))
        .await
        .map_err(txn_err("removing a task's shard DDL meta"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_ids_are_dms() {
        assert_eq!(lock_id("test", "shardddl", "tb"), "test-`shardddl`.`tb`");
        assert_eq!(lock_id("test", "shardddl", "tb"), "test-`shardddl`.`tb`");
        assert_eq!(task_of_lock("test-`shardddl`.`tb`"), Some("test"));
        assert_eq!(task_of_lock("my-task-`db`.`t`"), Some("my-task"));
        assert_eq!(task_of_lock("nolock"), None);
        // DM's key for the lock above.
        assert_eq!(
            hex::encode("test-`shardddl`.`tb`"),
            "746573742d60736861726464646c602e60746260"
        );
    }

    #[test]
    fn values_are_dms_json() {
        let info = PessimisticInfo {
            task: "test".into(),
            source: "mysql-replica-01".into(),
            schema: "shardddl".into(),
            table: "tb".into(),
            ddls: vec!["ALTER TABLE `shardddl`.`tb` ADD COLUMN `c` DOUBLE".into()],
        };
        assert_eq!(
            json(&info),
            r#"{"task":"test","source":"mysql-replica-01","schema":"shardddl","table":"tb","ddls":["ALTER TABLE `shardddl`.`tb` ADD COLUMN `c` DOUBLE"]}"#
        );
        assert_eq!(
            info.key(),
            "/dm-master/shardddl-pessimism/info/74657374/6d7973716c2d7265706c6963612d3031"
        );
        let op = PessimisticOp {
            id: info.lock_id(),
            task: "test".into(),
            source: "mysql-replica-01".into(),
            ddls: info.ddls.clone(),
            exec: true,
            done: false,
        };
        assert_eq!(
            json(&op),
            r#"{"id":"test-`shardddl`.`tb`","task":"test","source":"mysql-replica-01","ddls":["ALTER TABLE `shardddl`.`tb` ADD COLUMN `c` DOUBLE"],"exec":true,"done":false}"#
        );
    }
}
