//! What the binaries share: turning a result into an exit status, and running one subtask's
//! units without a cluster (`dm-syncer` runs the sync unit, `dm-migrate` every unit of the
//! task-mode) from a task file and a source file.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::info;

use crate::config::{SecretKey, SourceConfig, SubTaskConfig, TaskConfig};
use crate::error::{DmError, codes};
use crate::messages::syncer::SyncerExited;
use crate::messages::worker::UnitsExited;

/// Prints a failure's full report on stderr and maps it to the exit status (2 for bad
/// configuration or usage, 1 otherwise).
pub fn exit(result: Result<(), DmError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.report());
            tracing::error!(code = e.code, error = %e.chain(), "exiting");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Flags of the standalone runners.
#[derive(Debug, clap::Args)]
pub struct StandaloneArgs {
    /// The task file (task.yaml).
    #[arg(long)]
    pub task: PathBuf,
    /// The source file (source.yaml) of the source to migrate.
    #[arg(long)]
    pub source: PathBuf,
    /// Key file for encrypted passwords.
    #[arg(long, env = "DM_SECRET_KEY_PATH")]
    pub secret_key_path: Option<PathBuf>,
    /// Seconds between status lines in the log (0: none).
    #[arg(long, default_value_t = 30)]
    pub status_interval: u64,
    /// Log level: debug, info, warn, error, fatal.
    #[arg(short = 'L', long = "log-level", default_value = "info")]
    pub log_level: String,
    /// Log file (stderr when empty).
    #[arg(long, default_value = "")]
    pub log_file: String,
}

impl StandaloneArgs {
    /// Loads the task and the source, picks the source's subtask, reads the key, and starts
    /// logging.
    pub fn prepare(&self) -> Result<(SubTaskConfig, Option<SecretKey>), DmError> {
        let task = TaskConfig::load(&self.task)?;
        let source = SourceConfig::load(&self.source)?;
        let key = self
            .secret_key_path
            .as_deref()
            .map(SecretKey::from_file)
            .transpose()?;
        let subtasks = task.subtasks();
        if task.shard() == Some(crate::config::task::ShardMode::Optimistic) {
            return Err(DmError::new(
                &codes::CONFIG_SHARD_MODE_NOT_SUPPORT,
                "shard-mode `optimistic` needs dm-master's Optimist; run the task in a cluster (dmctl start-task), or use `pessimistic` with one instance",
            ));
        }
        if task.shard().is_some() && subtasks.len() > 1 {
            return Err(DmError::new(
                &codes::CONFIG_SHARD_MODE_NOT_SUPPORT,
                format!(
                    "shard-mode `{}` with {} mysql-instances needs dm-master to coordinate the sources' DDLs; run the task in a cluster (dmctl start-task), or list one instance",
                    task.shard_mode.text(),
                    subtasks.len()
                ),
            ));
        }
        let mut sub = subtasks
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
        sub.apply_source(&source);
        crate::telemetry::init(&self.log_level, &self.log_file, "text")?;
        Ok((sub, key))
    }
}

/// Waits for the unit to end (`done`), logging `status()` every `interval` seconds; on
/// SIGINT/SIGTERM runs `stop()` (which flushes what must be flushed) and returns the unit's
/// final result.
pub async fn supervise<S, SF, T, TF>(
    done: oneshot::Receiver<Result<(), DmError>>,
    interval: u64,
    status: S,
    stop: T,
) -> Result<(), DmError>
where
    S: Fn() -> SF,
    SF: Future<Output = String>,
    T: FnOnce() -> TF,
    TF: Future<Output = ()>,
{
    let mut done = std::pin::pin!(done);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| DmError::new(&codes::NOT_SET, "cannot watch SIGTERM").with_cause(e))?;
    let mut tick = tokio::time::interval(Duration::from_secs(interval.max(1)));
    loop {
        tokio::select! {
            res = &mut done => return res.unwrap_or_else(|_| Err(DmError::bare(&codes::ACTOR_MAILBOX_CLOSED))),
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick(), if interval > 0 => info!(status = %status().await, "status"),
        }
    }
    info!("stopping");
    stop().await;
    done.await.unwrap_or(Ok(()))
}

/// The parent of a unit run without a cluster: turns the unit's exit message into the
/// result [`supervise`] waits for. (The binaries are not actors; this is where messages end.)
pub struct ExitWatch {
    done: Option<oneshot::Sender<Result<(), DmError>>>,
}

impl ExitWatch {
    /// The watcher and the receiver of the unit's result.
    pub fn new() -> (Self, oneshot::Receiver<Result<(), DmError>>) {
        let (tx, rx) = oneshot::channel();
        (Self { done: Some(tx) }, rx)
    }

    fn done(&mut self, result: Result<(), DmError>, ctx: &mut Context<Self>) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(result);
        }
        ctx.stop();
    }
}

impl Actor for ExitWatch {
    type Context = Context<Self>;
}

impl Handler<UnitsExited> for ExitWatch {
    type Result = ();

    fn handle(&mut self, msg: UnitsExited, ctx: &mut Context<Self>) {
        self.done(msg.result, ctx);
    }
}

impl Handler<SyncerExited> for ExitWatch {
    type Result = ();

    fn handle(&mut self, msg: SyncerExited, ctx: &mut Context<Self>) {
        self.done(msg.result, ctx);
    }
}
