//! dm-migrate: runs one source's subtask of a task on its own, without a cluster: the units
//! task-mode picks (dump → load → sync for `all`), resuming from whatever state a previous
//! run left (dump directory, loader checkpoint, syncer checkpoint). Modes without a sync unit
//! exit when done; with one it runs until SIGINT/SIGTERM, then flushes a checkpoint and exits.
//! The units run once: the first error ends the process (no auto-resume; a restarted process
//! resumes from the persisted state).

use std::process::ExitCode;

use actix::prelude::*;
use clap::Parser;
use dm::actors::worker::units::UnitsActor;
use dm::error::DmError;
use dm::messages::worker::{QuerySubtaskStatus, StopSubtask};
use dm::standalone::{ExitWatch, StandaloneArgs, exit, supervise};

/// Run one source's share of a task (dump, load, sync as task-mode says), standalone.
#[derive(Debug, Parser)]
#[command(name = "dm-migrate", version = env!("CARGO_PKG_VERSION"))]
struct Args {
    #[command(flatten)]
    common: StandaloneArgs,
}

fn main() -> ExitCode {
    exit(run(Args::parse()))
}

fn run(args: Args) -> Result<(), DmError> {
    let (sub, key) = args.common.prepare()?;
    actix::System::new().block_on(async move {
        let (watch, rx) = ExitWatch::new();
        let subtask = UnitsActor::new(sub, key, watch.start().recipient(), 1).start();
        let query = subtask.clone();
        supervise(
            rx,
            args.common.status_interval,
            move || {
                let q = query.clone();
                async move {
                    q.send(QuerySubtaskStatus)
                        .await
                        .map(|s| serde_json::to_string(&s).unwrap_or_default())
                        .unwrap_or_default()
                }
            },
            || async move {
                let _ = subtask.send(StopSubtask).await;
            },
        )
        .await
    })
}
