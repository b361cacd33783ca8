//! dm-syncer: runs the sync unit of one source of a task on its own, without a cluster (as
//! DM's `dm-syncer`). It starts from the task's checkpoint, or from `meta` when there is none,
//! and stops on SIGINT/SIGTERM after flushing a checkpoint.

use std::process::ExitCode;

use actix::prelude::*;
use clap::Parser;
use dm::actors::syncer::SyncerActor;
use dm::error::{DmError, codes};
use dm::messages::syncer::StopSyncer;
use dm::standalone::{ExitWatch, StandaloneArgs, exit, supervise};

/// Run the binlog replication of one source of a task, standalone.
#[derive(Debug, Parser)]
#[command(name = "dm-syncer", version = env!("CARGO_PKG_VERSION"))]
struct Args {
    #[command(flatten)]
    common: StandaloneArgs,
}

fn main() -> ExitCode {
    exit(run(Args::parse()))
}

fn run(args: Args) -> Result<(), DmError> {
    let (sub, key) = args.common.prepare()?;
    if !sub.task_mode.syncs() {
        return Err(DmError::new(
            &codes::CONFIG_INVALID_TASK_MODE,
            format!(
                "task-mode `{}` has no sync unit; use dm-migrate",
                sub.task_mode.as_str()
            ),
        ));
    }
    actix::System::new().block_on(async move {
        let (watch, rx) = ExitWatch::new();
        let parent = watch.start().recipient();
        let arbiter = Arbiter::new();
        let actor = SyncerActor::new(sub, key, parent);
        let status = actor.status_handle();
        let stop = actor.stop_handle();
        let syncer = SyncerActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        supervise(
            rx,
            args.common.status_interval,
            || {
                let s = status.lock().expect("status lock").snapshot();
                async move { serde_json::to_string(&s).unwrap_or_default() }
            },
            || async move {
                stop.stop();
                let _ = syncer.send(StopSyncer).await;
            },
        )
        .await
    })
}
