//! Each dmctl command as one request to dm-master's gateway (`crate::messages::rpc` shapes), and
//! what it prints.
//!
//! Files named on the command line are read here and sent as text; dmctl never parses a source
//! file (so it can never echo its password) and reads only `name` from a task file when a task
//! is named by its file.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;

use super::args::{Cli, Command, OperateTaskArgs, ShardDdlLockAction};
use super::client::{Answer, MasterClient};
use super::output::{self, BatchTaskResult, TaskOpResult};
use crate::config::{SecretKey, duration::parse_go_duration, read_file};
use crate::error::{DmError, codes};
use crate::messages::rpc::{
    CheckTaskRequest, EXEC_LOCK, OperateSourceRequest, OperateTaskRequest, OperateTaskResponse,
    QueryStatusListResponse, SKIP_LOCK, SourceOp, StartTaskRequest, TaskOp, TransferSourceRequest,
    UnlockDdlLockRequest,
};

/// The sample printed by `operate-source -p`.
pub const SAMPLE_SOURCE_CONFIG: &str = include_str!("../../config/source-mariadb.yaml");

/// What a command printed and whether it succeeded (exit status 0 or 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub stdout: String,
    pub ok: bool,
}

impl Outcome {
    fn from_answer(a: &Answer) -> Self {
        Self {
            stdout: output::pretty(&a.text),
            ok: a.result(),
        }
    }

    fn text(stdout: impl Into<String>) -> Self {
        Self {
            stdout: stdout.into(),
            ok: true,
        }
    }
}

/// Runs one parsed command line to completion.
pub fn run(cli: Cli) -> Result<Outcome, DmError> {
    if let Some(local) = run_local(&cli.command)? {
        return Ok(local);
    }
    let timeout = parse_go_duration(&cli.rpc_timeout).map_err(|e| {
        invalid(format!(
            "--rpc-timeout `{}` is not a duration: {e}",
            cli.rpc_timeout
        ))
    })?;
    let client = MasterClient::new(cli.master_addr.as_deref().unwrap_or(""), timeout)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            DmError::new(&codes::CTL_CONNECT_MASTER, "cannot start the I/O runtime").with_cause(e)
        })?
        .block_on(run_remote(&client, cli.sources, cli.command))
}

/// Commands that need no master.
fn run_local(command: &Command) -> Result<Option<Outcome>, DmError> {
    Ok(match command {
        Command::Encrypt {
            plaintext,
            secret_key_path,
        } => {
            let path = secret_key_path.as_deref().ok_or_else(|| {
                DmError::new(&codes::CONFIG_SECRET_KEY, "no secret key: pass --secret-key-path (the file the master's secret-key-path names)")
                    .with_workaround("Create one with `openssl rand -hex 32 > secret.key` and set `secret-key-path` in dm-master.toml to the same file.")
            })?;
            Some(Outcome::text(
                SecretKey::from_file(path)?.encrypt(plaintext),
            ))
        }
        Command::OperateSource {
            print_sample_config: true,
            ..
        } => Some(Outcome::text(SAMPLE_SOURCE_CONFIG.trim_end())),
        _ => None,
    })
}

async fn run_remote(
    client: &MasterClient,
    sources: Vec<String>,
    command: Command,
) -> Result<Outcome, DmError> {
    match command {
        Command::OperateSource {
            op, args, worker, ..
        } => operate_source(client, op.as_deref(), args, worker, sources).await,
        Command::StartTask {
            file,
            remove_meta,
            start_time,
        } => {
            let req = StartTaskRequest {
                task: read_file(Path::new(&file))?,
                sources,
                remove_meta,
                start_time,
            };
            send(client, Method::POST, &["tasks"], &[], Some(&req)).await
        }
        Command::CheckTask {
            file,
            error,
            warn,
            start_time,
        } => {
            let req = CheckTaskRequest {
                task: read_file(Path::new(&file))?,
                err_cnt: error,
                warn_cnt: warn,
                start_time,
            };
            send(client, Method::POST, &["check-task"], &[], Some(&req)).await
        }
        Command::StopTask(a) => operate_task(client, TaskOp::Delete, a, sources).await,
        Command::PauseTask(a) => operate_task(client, TaskOp::Pause, a, sources).await,
        Command::ResumeTask(a) => operate_task(client, TaskOp::Resume, a, sources).await,
        Command::QueryStatus { task, more } => query_status(client, task, more, sources).await,
        Command::ListMember {
            leader,
            master,
            worker,
            names,
        } => {
            let mut query = Vec::new();
            for (flag, on) in [("leader", leader), ("master", master), ("worker", worker)] {
                if on {
                    query.push((flag, "true".to_string()));
                }
            }
            query.extend(names.into_iter().map(|n| ("names", n)));
            send::<()>(client, Method::GET, &["members"], &query, None).await
        }
        Command::OfflineMember {
            master,
            worker,
            name,
        } => {
            let kind = match (master, worker) {
                (true, false) => "master",
                (false, true) => "worker",
                _ => return Err(invalid("should specify either --master or --worker")),
            };
            if name.is_empty() {
                return Err(invalid("a member name must be specified (--name)"));
            }
            send::<()>(client, Method::DELETE, &["members", kind, &name], &[], None).await
        }
        Command::TransferSource { source, worker } => {
            let req = TransferSourceRequest { source, worker };
            send(
                client,
                Method::PUT,
                &["sources", "transfer"],
                &[],
                Some(&req),
            )
            .await
        }
        Command::ShardDdlLock { task, action } => {
            shard_ddl_lock(client, task, action, sources).await
        }
        Command::Encrypt { .. } => unreachable!("encrypt runs without a master"),
    }
}

async fn send<B: serde::Serialize>(
    client: &MasterClient,
    method: Method,
    segments: &[&str],
    query: &[(&str, String)],
    body: Option<&B>,
) -> Result<Outcome, DmError> {
    let answer = client.call(method, segments, query, body).await?;
    Ok(Outcome::from_answer(&answer))
}

async fn operate_source(
    client: &MasterClient,
    op: Option<&str>,
    args: Vec<String>,
    worker: Option<String>,
    sources: Vec<String>,
) -> Result<Outcome, DmError> {
    let op = match op {
        Some("create") => SourceOp::StartSource,
        Some("update") => SourceOp::UpdateSource,
        Some("stop") => SourceOp::StopSource,
        Some("show") => SourceOp::ShowSource,
        Some(other) => {
            return Err(invalid(format!(
                "invalid operate '{other}' on source: use create, update, stop or show"
            )));
        }
        None => {
            return Err(invalid(
                "operate-source needs an operation: create, update, stop or show",
            ));
        }
    };
    if matches!(op, SourceOp::StartSource | SourceOp::UpdateSource) && args.is_empty() {
        return Err(invalid(
            "operate-source create/update should specify config-file(s)",
        ));
    }
    if matches!(op, SourceOp::StopSource) && args.is_empty() && sources.is_empty() {
        return Err(invalid(
            "operate-source stop should specify config-file(s) or -s source-id",
        ));
    }
    let worker_name = worker.unwrap_or_default();
    if !worker_name.is_empty() && (op != SourceOp::StartSource || args.len() > 1) {
        return Err(invalid(
            "-w/--worker binds one created source: use it with `create` and one config file",
        ));
    }
    let mut req = OperateSourceRequest {
        op,
        source_id: sources,
        worker_name,
        ..Default::default()
    };
    for arg in args {
        let path = Path::new(&arg);
        match op {
            // `stop` and `show` take source IDs as well as files (DM: a name that is not a
            // readable file is a source ID).
            SourceOp::StopSource | SourceOp::ShowSource if !path.is_file() => {
                req.source_id.push(arg)
            }
            _ => req.config.push(read_file(path)?),
        }
    }
    send(client, Method::PUT, &["sources"], &[], Some(&req)).await
}

async fn operate_task(
    client: &MasterClient,
    op: TaskOp,
    args: OperateTaskArgs,
    sources: Vec<String>,
) -> Result<Outcome, DmError> {
    match args.task {
        Some(task) => {
            let name = task_name_from_arg_or_file(&task);
            let req = OperateTaskRequest { op, name, sources };
            let segments = ["tasks", req.name.as_str()];
            send(client, Method::PUT, &segments, &[], Some(&req)).await
        }
        None if sources.is_empty() => Err(invalid(
            "must give a task name/file, or -s source when task-name/task-conf is not specified",
        )),
        None => operate_source_tasks(client, op, args.batch_size, sources).await,
    }
}

/// DM's source-wide operation: every task the sources run, operated by name (`batch_size` at
/// a time), each on those of `sources` that run it.
async fn operate_source_tasks(
    client: &MasterClient,
    op: TaskOp,
    batch_size: usize,
    sources: Vec<String>,
) -> Result<Outcome, DmError> {
    let query: Vec<(&str, String)> = sources.iter().map(|s| ("sources", s.clone())).collect();
    let answer = client
        .call::<()>(Method::GET, &["status"], &query, None)
        .await?;
    let status: QueryStatusListResponse = parse(&answer)?;
    if !status.result {
        let out = BatchTaskResult {
            result: false,
            msg: status.msg,
            tasks: Vec::new(),
        };
        return Ok(Outcome {
            stdout: output::pretty_value(&out),
            ok: false,
        });
    }
    let mut tasks: Vec<(String, Vec<String>)> = Vec::new();
    for src in &status.sources {
        for sub in &src.sub_task_status {
            let source = src.source_status.source.clone();
            match tasks.iter_mut().find(|(t, _)| *t == sub.name) {
                Some((_, list)) => list.push(source),
                None => tasks.push((sub.name.clone(), vec![source])),
            }
        }
    }
    tasks.sort();
    let mut results = Vec::with_capacity(tasks.len());
    for batch in tasks.chunks(batch_size.max(1)) {
        let calls = batch
            .iter()
            .map(|(task, srcs)| operate_one(client, op, task.clone(), srcs.clone()));
        results.extend(futures_util::future::join_all(calls).await);
    }
    let ok = results.iter().all(|r| r.result);
    let out = BatchTaskResult {
        result: ok,
        msg: String::new(),
        tasks: results,
    };
    Ok(Outcome {
        stdout: output::pretty_value(&out),
        ok,
    })
}

async fn operate_one(
    client: &MasterClient,
    op: TaskOp,
    task: String,
    sources: Vec<String>,
) -> TaskOpResult {
    let req = OperateTaskRequest {
        op,
        name: task.clone(),
        sources,
    };
    let answer = client
        .call(Method::PUT, &["tasks", &task], &[], Some(&req))
        .await;
    match answer.and_then(|a| parse::<OperateTaskResponse>(&a)) {
        Ok(r) => TaskOpResult {
            task,
            op,
            result: r.result,
            msg: r.msg,
            sources: r.sources,
        },
        Err(e) => TaskOpResult {
            task,
            op,
            result: false,
            msg: e.to_string(),
            sources: Vec::new(),
        },
    }
}

async fn query_status(
    client: &MasterClient,
    task: Option<String>,
    more: bool,
    sources: Vec<String>,
) -> Result<Outcome, DmError> {
    let name = task.as_deref().map(task_name_from_arg_or_file);
    let query: Vec<(&str, String)> = sources.iter().map(|s| ("sources", s.clone())).collect();
    let segments: Vec<&str> = match name.as_deref() {
        Some(n) => vec!["status", n],
        None => vec!["status"],
    };
    let answer = client
        .call::<()>(Method::GET, &segments, &query, None)
        .await?;
    if name.is_none() && sources.is_empty() && !more {
        let status: QueryStatusListResponse = parse(&answer)?;
        if let Some(list) = output::summarize_tasks(&status) {
            return Ok(Outcome {
                stdout: output::pretty_value(&list),
                ok: list.result,
            });
        }
    }
    Ok(Outcome::from_answer(&answer))
}

async fn shard_ddl_lock(
    client: &MasterClient,
    task: Option<String>,
    action: Option<ShardDdlLockAction>,
    sources: Vec<String>,
) -> Result<Outcome, DmError> {
    match action {
        None => {
            let mut query: Vec<(&str, String)> =
                sources.iter().map(|s| ("sources", s.clone())).collect();
            if let Some(t) = task.as_deref() {
                query.push(("task", task_name_from_arg_or_file(t)));
            }
            send::<()>(client, Method::GET, &["shard-ddl-locks"], &query, None).await
        }
        Some(ShardDdlLockAction::Unlock {
            lock_id,
            owner,
            force_remove,
            action,
            database,
            table,
        }) => {
            let op = match action.as_str() {
                "skip" => SKIP_LOCK,
                "exec" => EXEC_LOCK,
                _ => {
                    return Err(invalid(
                        "please check --action argument, only exec/skip are acceptable",
                    ));
                }
            };
            let req = UnlockDdlLockRequest {
                id: lock_id,
                replace_owner: owner,
                force_remove,
                op,
                sources,
                database,
                table,
            };
            send(
                client,
                Method::PUT,
                &["shard-ddl-locks", "unlock"],
                &[],
                Some(&req),
            )
            .await
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T, DmError> {
    serde_json::from_value(answer.json.clone()).map_err(|e| {
        DmError::new(
            &codes::CTL_INVALID_RESPONSE,
            format!("dm-master {} answered an unexpected shape", answer.addr),
        )
        .with_cause(e)
    })
}

/// DM's `GetTaskNameFromArgOrFile`: a `.yaml`/`.yml` argument that is a readable task file
/// names its task; anything else is the name itself.
pub fn task_name_from_arg_or_file(arg: &str) -> String {
    if !(arg.ends_with(".yaml") || arg.ends_with(".yml")) {
        return arg.to_string();
    }
    std::fs::read_to_string(arg)
        .ok()
        .and_then(|text| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text).ok())
        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string))
        .unwrap_or_else(|| arg.to_string())
}

fn invalid(msg: impl Into<String>) -> DmError {
    DmError::new(&codes::CTL_INVALID_ARGS, msg)
}

/// How long dmctl waits for one request when `--rpc-timeout` is not given.
pub fn default_timeout() -> Duration {
    parse_go_duration(super::args::DEFAULT_RPC_TIMEOUT).expect("the default parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_come_from_yaml_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.yaml");
        std::fs::write(&f, "name: \"from-file\"\ntask-mode: all\n").unwrap();
        assert_eq!(task_name_from_arg_or_file(f.to_str().unwrap()), "from-file");
        assert_eq!(task_name_from_arg_or_file("plain"), "plain");
        assert_eq!(task_name_from_arg_or_file("missing.yaml"), "missing.yaml");
        assert_eq!(default_timeout(), Duration::from_secs(600));
    }

    #[test]
    fn bad_arguments_fail_before_any_request() {
        use clap::Parser;
        let cases: &[&[&str]] = &[
            &[
                "dmctl",
                "--master-addr",
                "127.0.0.1:1",
                "operate-source",
                "create",
            ],
            &[
                "dmctl",
                "--master-addr",
                "127.0.0.1:1",
                "operate-source",
                "nope",
                "x",
            ],
            &[
                "dmctl",
                "--master-addr",
                "127.0.0.1:1",
                "offline-member",
                "--name",
                "w",
            ],
            &[
                "dmctl",
                "--master-addr",
                "127.0.0.1:1",
                "offline-member",
                "--worker",
            ],
            &["dmctl", "--master-addr", "127.0.0.1:1", "stop-task"],
            &[
                "dmctl",
                "--master-addr",
                "127.0.0.1:1",
                "--rpc-timeout",
                "soon",
                "list-member",
            ],
            &["dmctl", "list-member"],
        ];
        for argv in cases {
            let cli = Cli::try_parse_from(argv.iter()).unwrap();
            let e = run(cli).unwrap_err();
            assert_eq!(e.code, codes::CTL_INVALID_ARGS.code, "{argv:?}: {e}");
        }
    }

    #[test]
    fn sample_source_config_prints_without_a_master() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["dmctl", "operate-source", "-p"]).unwrap();
        let out = run(cli).unwrap();
        assert!(out.ok);
        assert!(out.stdout.contains("source-id:"), "{}", out.stdout);
    }
}
