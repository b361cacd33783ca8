//! `shard-ddl-lock` behind dmctl: the leader's shard DDL locks and their manual unlock (DM's
//! `ShowDDLLocks` / `UnlockDDLLock`, which DM serves over gRPC only; dm-rs maps them to
//! `GET /apis/v1alpha1/shard-ddl-locks` and `PUT /apis/v1alpha1/shard-ddl-locks/unlock`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::MasterState;
use crate::api::extract::{self, ApiQuery, StrictJson};
use crate::error::{DmError, codes};
use crate::messages::rpc::{
    self, EXEC_LOCK, SKIP_LOCK, ShowDdlLocksResponse, UnlockDdlLockRequest,
};
use crate::messages::shardddl::{ShowLocks, UnlockAction, UnlockLock, UnlockOptimistic};
use crate::store::etcd::shardddl::task_of_lock;

/// `shard-ddl-lock [task] [-s source...]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LocksQuery {
    task: String,
    #[serde(deserialize_with = "extract::list")]
    sources: Vec<String>,
}

async fn show(state: web::Data<MasterState>, ApiQuery(q): ApiQuery<LocksQuery>) -> HttpResponse {
    HttpResponse::Ok().json(match all_locks(&state, q).await {
        Ok(locks) => ShowDdlLocksResponse {
            result: true,
            msg: if locks.is_empty() {
                "no DDL lock exists".into()
            } else {
                String::new()
            },
            locks,
        },
        Err(e) => failed(&e),
    })
}

/// The locks of both coordinators, pessimistic first.
async fn all_locks(
    state: &MasterState,
    q: LocksQuery,
) -> Result<Vec<crate::shardddl::pessimism::LockView>, DmError> {
    let closed = |_| DmError::bare(&codes::ACTOR_MAILBOX_CLOSED);
    let msg = || ShowLocks {
        task: q.task.clone(),
        sources: q.sources.clone(),
    };
    let mut locks = state
        .handle
        .pessimist()?
        .send(msg())
        .await
        .map_err(closed)?;
    locks.extend(state.handle.optimist()?.send(msg()).await.map_err(closed)?);
    Ok(locks)
}

fn failed(e: &DmError) -> ShowDdlLocksResponse {
    ShowDdlLocksResponse {
        result: false,
        msg: rpc::error_msg(e),
        locks: Vec::new(),
    }
}

async fn do_unlock(state: &MasterState, req: UnlockDdlLockRequest) -> Result<(), DmError> {
    if task_of_lock(&req.id).is_none() {
        return Err(DmError::new(
            &codes::MASTER_LOCK_NOT_FOUND,
            format!("can't find task name from lock-ID {}", req.id),
        ));
    }
    let action = match req.op {
        SKIP_LOCK | 0 => UnlockAction::Skip,
        EXEC_LOCK => UnlockAction::Exec,
        other => {
            return Err(DmError::new(
                &codes::MASTER_INVALID_OPERATE,
                format!("unlock op {other}: only 1 (skip) and 2 (exec) exist"),
            ));
        }
    };
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    let optimistic_flags = action == UnlockAction::Exec
        || !req.database.is_empty()
        || !req.table.is_empty()
        || !req.sources.is_empty();
    let msg = UnlockLock {
        id: req.id,
        owner: nonempty(req.replace_owner),
        force_remove: req.force_remove,
        source: req.sources.first().cloned(),
        database: nonempty(req.database),
        table: nonempty(req.table),
        action,
    };
    let closed = |_| DmError::bare(&codes::ACTOR_MAILBOX_CLOSED);
    if state
        .handle
        .optimist()?
        .send(UnlockOptimistic(msg.clone()))
        .await
        .map_err(closed)??
    {
        return Ok(());
    }
    // A pessimistic lock (or none): `--action exec`, `-d`, `-t` and `-s` choose a table of an
    // optimistic lock, where DM ignores them: refused instead of ignored.
    if optimistic_flags {
        return Err(DmError::new(
            &codes::MASTER_INVALID_OPERATE,
            format!(
                "lock {}: --action exec, -d/--database, -t/--table and -s apply to optimistic locks; a pessimistic lock takes only --owner and --force-remove",
                msg.id
            ),
        ));
    }
    state.handle.pessimist()?.send(msg).await.map_err(closed)?
}

async fn unlock(
    state: web::Data<MasterState>,
    StrictJson(req): StrictJson<UnlockDdlLockRequest>,
) -> HttpResponse {
    let resp = match do_unlock(&state, req).await {
        Ok(()) => rpc::CommonResponse {
            result: true,
            msg: String::new(),
        },
        Err(e) => rpc::CommonResponse {
            result: false,
            msg: rpc::error_msg(&e),
        },
    };
    HttpResponse::Ok().json(resp)
}

/// Mounts the routes (inside the `/apis/v1alpha1` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/shard-ddl-locks", web::get().to(show))
        .route("/shard-ddl-locks/unlock", web::put().to(unlock));
}
