//! CausalityActor: one per causality bucket, a thin shell over the plain [`Bucket`].
//!
//! Messages in: [`RouteRows`] (a bucket's routed changes, in binlog order; replies once every
//! change is queued at its DML worker, after any drain a conflict needed) and [`DrainBucket`]
//! (replies once the bucket's workers committed everything, with the key map reset).
//! Messages out: [`ExecuteBatch`] and [`DrainWorker`] to the bucket's [`DmlWorkerActor`]s.
//!
//! Placement: on the sync unit's arbiter, with the SyncerActor and the workers, so routing
//! adds no cross-thread hop; messages carry batches, never single rows. Each message is
//! handled to the end before the next ([`AtomicResponse`]), so the bucket sees its changes in
//! stream order and assignment stays a pure function of that order (exact replay).
//!
//! Failure: a worker's error is the reply; the SyncerActor ends the unit with it. The
//! SyncerActor's run holds the only strong address: dropping it stops the actor.

use actix::prelude::*;
use futures_util::future::try_join_all;

use super::causality::{Bucket, Step};
use super::dml_worker::DmlWorkerActor;
use crate::error::{DmError, codes};
use crate::messages::syncer::{DrainBucket, DrainWorker, ExecuteBatch, RouteRows};

/// One bucket's router.
pub struct CausalityActor {
    bucket: Bucket,
    /// The bucket's workers, in bucket order.
    workers: Vec<Addr<DmlWorkerActor>>,
    steps: Vec<Step>,
}

impl CausalityActor {
    /// A bucket over `workers` (their order is part of the deterministic assignment).
    pub fn new(workers: Vec<Addr<DmlWorkerActor>>) -> Self {
        Self {
            bucket: Bucket::new(workers.len()),
            workers,
            steps: Vec::new(),
        }
    }
}

impl Actor for CausalityActor {
    type Context = Context<Self>;
}

/// Waits until `workers` have committed everything they were sent.
pub async fn drain(workers: &[Addr<DmlWorkerActor>]) -> Result<(), DmError> {
    let replies = try_join_all(workers.iter().map(|w| w.send(DrainWorker)))
        .await
        .map_err(|_| DmError::bare(&codes::ACTOR_MAILBOX_CLOSED))?;
    replies.into_iter().collect()
}

/// Runs `steps` with the bucket's `workers`, in order.
async fn execute(steps: Vec<Step>, workers: Vec<Addr<DmlWorkerActor>>) -> Result<(), DmError> {
    for step in steps {
        match step {
            Step::Drain => drain(&workers).await?,
            Step::Send(per_worker) => {
                let sends = per_worker
                    .into_iter()
                    .zip(&workers)
                    .filter(|(changes, _)| !changes.is_empty())
                    .map(|(changes, w)| w.send(ExecuteBatch { changes }));
                let replies = try_join_all(sends)
                    .await
                    .map_err(|_| DmError::bare(&codes::ACTOR_MAILBOX_CLOSED))?;
                replies.into_iter().collect::<Result<Vec<()>, DmError>>()?;
            }
        }
    }
    Ok(())
}

impl Handler<RouteRows> for CausalityActor {
    type Result = AtomicResponse<Self, Result<(), DmError>>;

    fn handle(&mut self, msg: RouteRows, _: &mut Context<Self>) -> Self::Result {
        self.steps.clear();
        self.bucket.route(msg.changes, &mut self.steps);
        let steps = std::mem::take(&mut self.steps);
        let workers = self.workers.clone();
        AtomicResponse::new(Box::pin(execute(steps, workers).into_actor(self)))
    }
}

impl Handler<DrainBucket> for CausalityActor {
    type Result = AtomicResponse<Self, Result<(), DmError>>;

    fn handle(&mut self, _: DrainBucket, _: &mut Context<Self>) -> Self::Result {
        let workers = self.workers.clone();
        AtomicResponse::new(Box::pin(
            async move { drain(&workers).await }
                .into_actor(self)
                .map(|res, act, _| {
                    if res.is_ok() {
                        act.bucket.reset();
                    }
                    res
                }),
        ))
    }
}
