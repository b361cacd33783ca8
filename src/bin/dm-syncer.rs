//! dm-syncer: runs the sync unit of one source of a task on its own, without a cluster (as
//! DM's `dm-syncer`). It starts from the task's checkpoint, or from `meta` when there is none,
//! and stops on SIGINT/SIGTERM after flushing a checkpoint.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix::prelude::*;
use clap::Parser;
use dm::actors::syncer::{StopSyncer, SyncerActor};
use dm::config::{SecretKey, SourceConfig, TaskConfig};
use dm::error::{DmError, codes};
use tokio::sync::oneshot;
use tracing::info;

/// Run the binlog replication of one source of a task, standalone.
#[derive(Debug, Parser)]
#[command(name = "dm-syncer", version = env!("CARGO_PKG_VERSION"))]
struct Args {
    /// The task file (task.yaml).
    #[arg(long)]
    task: PathBuf,
    /// The source file (source.yaml) of the source to replicate.
    #[arg(long)]
    source: PathBuf,
    /// Key file for encrypted passwords.
    #[arg(long, env = "DM_SECRET_KEY_PATH")]
    secret_key_path: Option<PathBuf>,
    /// Seconds between status lines in the log (0: none).
    #[arg(long, default_value_t = 30)]
    status_interval: u64,
    /// Log level: debug, info, warn, error, fatal.
    #[arg(short = 'L', long = "log-level", default_value = "info")]
    log_level: String,
    /// Log file (stderr when empty).
    #[arg(long, default_value = "")]
    log_file: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.report());
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run(args: Args) -> Result<(), DmError> {
    let task = TaskConfig::load(&args.task)?;
    let source = SourceConfig::load(&args.source)?;
    let key = args
        .secret_key_path
        .as_deref()
        .map(SecretKey::from_file)
        .transpose()?;
    let mut sub = task
        .subtasks()
        .into_iter()
        .find(|s| s.source_id == source.source_id)
        .ok_or_else(|| {
            DmError::new(
                &codes::CONFIG_SOURCE_ID_NOT_FOUND,
                format!(
                    "source `{}` is not in the task's mysql-instances",
                    source.source_id
                ),
            )
        })?;
    if !sub.task_mode.syncs() {
        return Err(DmError::new(
            &codes::CONFIG_INVALID_TASK_MODE,
            format!("task-mode `{}` has no sync unit", sub.task_mode.as_str()),
        ));
    }
    sub.apply_source(&source);
    dm::telemetry::init(&args.log_level, &args.log_file, "text")?;
    let system = actix::System::new();
    system.block_on(async move {
        let (tx, rx) = oneshot::channel();
        let arbiter = Arbiter::new();
        let actor = SyncerActor::new(sub, key, tx);
        let status = actor.status_handle();
        let syncer = SyncerActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        let mut rx = std::pin::pin!(rx);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| DmError::new(&codes::NOT_SET, "cannot watch SIGTERM").with_cause(e))?;
        let mut tick = tokio::time::interval(Duration::from_secs(args.status_interval.max(1)));
        loop {
            tokio::select! {
                res = &mut rx => return res.unwrap_or_else(|_| Err(DmError::bare(&codes::ACTOR_MAILBOX_CLOSED))),
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = tick.tick(), if args.status_interval > 0 => {
                    let s = status.lock().expect("status lock").clone();
                    info!(status = %serde_json::to_string(&s).unwrap_or_default(), "sync status");
                }
            }
        }
        info!("stopping: flushing a checkpoint");
        let stopped = syncer.send(StopSyncer).await.map_err(|_| DmError::bare(&codes::ACTOR_MAILBOX_CLOSED))?;
        let at = stopped?;
        info!(location = %at, "stopped");
        Ok(())
    })
}
