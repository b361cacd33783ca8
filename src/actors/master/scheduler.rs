//! Scheduler actor (leader only): placeholder being replaced by the real implementation.

use actix::prelude::*;

/// The Scheduler.
pub struct SchedulerActor;

impl Actor for SchedulerActor {
    type Context = Context<Self>;
}
