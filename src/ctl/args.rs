//! dmctl's command line: DM's global flags and commands, with DM's names, short flags and
//! defaults (`dm/ctl/`).
//!
//! DM's dmctl also accepts Go-style single-dash global flags (`-master-addr 127.0.0.1:8261`);
//! [`normalize_go_flags`] rewrites them before clap sees the arguments.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// DM's default `--rpc-timeout`.
pub const DEFAULT_RPC_TIMEOUT: &str = "10m";

/// check-task's default `--error` and `--warn` counts (DM's `DefaultErrorCnt`/`DefaultWarnCnt`).
pub const DEFAULT_CHECK_COUNT: i64 = 10;

/// Sources of a source-wide stop/pause/resume operated at once (DM's `--batch-size`).
pub const DEFAULT_BATCH_SIZE: usize = 5;

/// DM control: manage sources, tasks and members of a dm-rs cluster through dm-master.
#[derive(Debug, Parser)]
#[command(name = "dmctl", version = env!("CARGO_PKG_VERSION"))]
pub struct Cli {
    /// dm-master addresses, comma-separated host:port; tried in order until one answers.
    #[arg(long, global = true, env = "DM_MASTER_ADDR")]
    pub master_addr: Option<String>,
    /// Timeout of one request to dm-master (DM duration: 30s, 10m, 1h).
    #[arg(long, global = true, default_value = DEFAULT_RPC_TIMEOUT)]
    pub rpc_timeout: String,
    /// MySQL/MariaDB source IDs (repeatable or comma-separated).
    #[arg(short = 's', long = "source", global = true, value_delimiter = ',')]
    pub sources: Vec<String>,
    /// dmctl config file (accepted for DM compatibility; its content is not used).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// DM's dmctl commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// `create`/`update`/`stop`/`show` upstream MySQL/MariaDB sources.
    OperateSource {
        /// create, update, stop or show.
        op: Option<String>,
        /// Source config files (create, update); config files or source IDs (stop, show).
        args: Vec<String>,
        /// Bind the created source to this worker.
        #[arg(short = 'w', long = "worker")]
        worker: Option<String>,
        /// Print a sample source config file.
        #[arg(short = 'p', long = "print-sample-config")]
        print_sample_config: bool,
    },
    /// Start a task as defined in its config file (dm-master runs check-task first).
    StartTask {
        /// The task config file.
        file: String,
        /// Remove the task's meta data (checkpoints, shard meta) before starting.
        #[arg(long)]
        remove_meta: bool,
        /// Start binlog replication at this time, e.g. '2021-10-21 00:01:00'.
        #[arg(long, default_value = "")]
        start_time: String,
    },
    /// Check a task's config file and its upstreams (precheck).
    CheckTask {
        /// The task config file.
        file: String,
        /// Max count of errors to display.
        #[arg(short = 'e', long = "error", default_value_t = DEFAULT_CHECK_COUNT)]
        error: i64,
        /// Max count of warnings to display.
        #[arg(short = 'w', long = "warn", default_value_t = DEFAULT_CHECK_COUNT)]
        warn: i64,
        /// Start binlog replication at this time, e.g. '2021-10-21 00:01:00'.
        #[arg(long, default_value = "")]
        start_time: String,
    },
    /// Stop a task, or every task of one source (`-s`).
    StopTask(OperateTaskArgs),
    /// Pause a task, or every task of one source (`-s`).
    PauseTask(OperateTaskArgs),
    /// Resume a task, or every task of one source (`-s`).
    ResumeTask(OperateTaskArgs),
    /// Query the status of one task (name or file), or of every task.
    QueryStatus {
        /// Task name or task config file.
        task: Option<String>,
        /// Print every source's full status even without a task name.
        #[arg(long)]
        more: bool,
    },
    /// List masters, workers and the leader.
    ListMember {
        /// Only the leader.
        #[arg(short = 'l', long)]
        leader: bool,
        /// Only masters.
        #[arg(short = 'm', long)]
        master: bool,
        /// Only workers.
        #[arg(short = 'w', long)]
        worker: bool,
        /// Member names (comma-separated or repeated).
        #[arg(short = 'n', long = "name", value_delimiter = ',')]
        names: Vec<String>,
    },
    /// Remove a stopped master or worker from the cluster.
    OfflineMember {
        /// Offline a master.
        #[arg(short = 'm', long)]
        master: bool,
        /// Offline a worker.
        #[arg(short = 'w', long)]
        worker: bool,
        /// The member's name.
        #[arg(short = 'n', long, default_value = "")]
        name: String,
    },
    /// Move a source to a free worker.
    TransferSource {
        /// The source ID.
        source: String,
        /// The free worker's name.
        worker: String,
    },
    /// Show the shard DDL locks (of one task), or `unlock` one by hand.
    #[command(alias = "show-ddl-locks", args_conflicts_with_subcommands = true)]
    ShardDdlLock {
        /// Task name or task config file (all tasks when absent).
        task: Option<String>,
        #[command(subcommand)]
        action: Option<ShardDdlLockAction>,
    },
    /// Encrypt a password into DM's cipher text (AES-256-CFB, `base64(iv@data)`).
    Encrypt {
        /// The plain text.
        plaintext: String,
        /// File with the 64-hex-character key (the master's `secret-key-path`).
        #[arg(long, env = "DM_SECRET_KEY_PATH")]
        secret_key_path: Option<PathBuf>,
    },
}

/// `shard-ddl-lock` subcommands.
#[derive(Debug, Subcommand)]
pub enum ShardDdlLockAction {
    /// Resolve a lock by hand: its owner executes the DDLs, the other sources skip them.
    Unlock {
        /// The lock ID, as `shard-ddl-lock` shows it (``task-`schema`.`table` ``).
        lock_id: String,
        /// Execute on this source instead of the lock's owner (pessimistic).
        #[arg(short = 'o', long = "owner", default_value = "")]
        owner: String,
        /// Remove the lock even if some source did not finish (pessimistic).
        #[arg(short = 'f', long = "force-remove")]
        force_remove: bool,
        /// exec or skip the conflicting DDLs of the named table (optimistic).
        #[arg(short = 'a', long = "action", default_value = "skip")]
        action: String,
        /// The upstream database of the table (optimistic).
        #[arg(short = 'd', long = "database", default_value = "")]
        database: String,
        /// The upstream table (optimistic).
        #[arg(short = 't', long = "table", default_value = "")]
        table: String,
    },
}

/// Arguments of `stop-task`, `pause-task` and `resume-task`.
#[derive(Debug, clap::Args)]
pub struct OperateTaskArgs {
    /// Task name or task config file; without it, `-s` names the source whose tasks are
    /// operated.
    pub task: Option<String>,
    /// Tasks operated at once when operating every task of a source.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
}

/// DM's global flags that Go's flag package lets users write with one dash.
const GO_STYLE_FLAGS: [&str; 7] = [
    "-version",
    "-config",
    "-master-addr",
    "-rpc-timeout",
    "-ssl-ca",
    "-ssl-cert",
    "-ssl-key",
];

/// Rewrites `-master-addr x` and `-master-addr=x` (and DM's other global flags) to their
/// double-dash form, as DM's dmctl does before parsing.
pub fn normalize_go_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| match arg.to_str() {
            Some(s)
                if GO_STYLE_FLAGS
                    .iter()
                    .any(|f| s == *f || s.strip_prefix(f).is_some_and(|r| r.starts_with('='))) =>
            {
                OsString::from(format!("-{s}"))
            }
            _ => arg,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let argv = normalize_go_flags(args.iter().map(OsString::from));
        Cli::try_parse_from(argv).expect("parses")
    }

    #[test]
    fn global_flags_anywhere_and_go_style() {
        let cli = parse(&[
            "dmctl",
            "-master-addr=127.0.0.1:1",
            "query-status",
            "-s",
            "a,b",
            "-s",
            "c",
            "t1",
        ]);
        assert_eq!(cli.master_addr.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(cli.sources, ["a", "b", "c"]);
        assert_eq!(cli.rpc_timeout, DEFAULT_RPC_TIMEOUT);
        assert!(
            matches!(cli.command, Command::QueryStatus { task: Some(ref t), more: false } if t == "t1")
        );
        let cli = parse(&["dmctl", "list-member", "--master-addr", "h:1", "-n", "a,b"]);
        assert!(
            matches!(cli.command, Command::ListMember { ref names, .. } if names == &["a", "b"])
        );
    }

    #[test]
    fn check_task_defaults_and_operate_source_worker() {
        let cli = parse(&["dmctl", "check-task", "t.yaml", "-e", "3"]);
        assert!(matches!(
            cli.command,
            Command::CheckTask {
                error: 3,
                warn: 10,
                ..
            }
        ));
        let cli = parse(&["dmctl", "operate-source", "create", "s.yaml", "-w", "w1"]);
        assert!(
            matches!(cli.command, Command::OperateSource { ref worker, .. } if worker.as_deref() == Some("w1"))
        );
        let cli = parse(&["dmctl", "stop-task", "-s", "src"]);
        assert!(matches!(
            cli.command,
            Command::StopTask(OperateTaskArgs {
                task: None,
                batch_size: 5
            })
        ));
    }
}
