//! What dmctl prints: dm-master's JSON answers re-indented (2 spaces) with every key in the
//! order the master sent it, and the summaries DM's dmctl builds itself (the task list of a bare
//! `query-status`, the per-task results of a source-wide stop/pause/resume).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::messages::rpc::{CommonWorkerResponse, QueryStatusListResponse, TaskOp};

/// Indentation of one nesting level.
const INDENT: &str = "  ";

/// Re-indents the JSON text `json` without reordering or changing anything: a token-level
/// rewrite (whitespace outside strings is dropped, then one member per line).
pub fn pretty(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                skip_whitespace(&mut chars);
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().expect("peeked"));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

fn skip_whitespace(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str(INDENT);
    }
}

/// A serializable value as dmctl prints it.
pub fn pretty_value<T: Serialize>(value: &T) -> String {
    pretty(&serde_json::to_string(value).expect("dmctl's own types serialize"))
}

/// One task of a bare `query-status` (DM's `taskInfo`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSummary {
    pub task_name: String,
    pub task_status: String,
    pub sources: Vec<String>,
}

/// A bare `query-status` (DM's `taskResult`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskList {
    pub result: bool,
    pub msg: String,
    pub tasks: Vec<TaskSummary>,
}

/// DM's summary stage of a task from its subtasks (`wrapTaskResult` in `query_status.go`):
/// any paused subtask with errors ⇒ `Error - …`; any paused ⇒ `Paused`; all alike ⇒ that stage;
/// otherwise `Running`. `None` when some source answered with `result: false` (DM then prints
/// the full answer instead).
pub fn summarize_tasks(resp: &QueryStatusListResponse) -> Option<TaskList> {
    if !resp.result || resp.sources.iter().any(|s| !s.result) {
        return None;
    }
    let mut stages: BTreeMap<String, String> = BTreeMap::new();
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for source in &resp.sources {
        for sub in &source.sub_task_status {
            sources
                .entry(sub.name.clone())
                .or_default()
                .push(source.source_status.source.clone());
            let errored = sub.result.as_ref().is_some_and(|r| !r.errors.is_empty());
            let stage = stages.entry(sub.name.clone()).or_default();
            *stage = merge_stage(stage, &sub.stage, errored);
        }
    }
    let tasks = stages
        .into_iter()
        .map(|(name, mut status)| {
            if status.starts_with("Error") {
                status.push_str(&format!(
                    ". Please run `query-status {name}` to get more details."
                ));
            }
            let sources = sources.remove(&name).unwrap_or_default();
            TaskSummary {
                task_name: name,
                task_status: status,
                sources,
            }
        })
        .collect();
    Some(TaskList {
        result: resp.result,
        msg: resp.msg.clone(),
        tasks,
    })
}

fn merge_stage(task: &str, sub: &str, errored: bool) -> String {
    match () {
        _ if task.starts_with("Error") => task.to_string(),
        _ if sub == "Paused" && errored => "Error - Some error occurred in subtask".to_string(),
        _ if task == "Paused" => task.to_string(),
        _ if task.is_empty() || sub == "Paused" => sub.to_string(),
        _ if task != sub => "Running".to_string(),
        _ => task.to_string(),
    }
}

/// One task's result in a source-wide stop/pause/resume (DM's `operateTaskResult`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskOpResult {
    pub task: String,
    pub op: TaskOp,
    pub result: bool,
    pub msg: String,
    pub sources: Vec<CommonWorkerResponse>,
}

/// A source-wide stop/pause/resume (DM's `batchTaskResult`); `result` is false when any task's
/// operation failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchTaskResult {
    pub result: bool,
    pub msg: String,
    pub tasks: Vec<TaskOpResult>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::rpc::{
        ProcessError, ProcessResult, QueryStatusResponse, SourceStatusView, SubTaskStatusView,
    };

    #[test]
    fn pretty_keeps_order_and_strings() {
        let text = r#"{"z":1,"a":{"b":[1,2,{}],"c":[]},"s":"x, {\"y\": [1]} \\","m":""}"#;
        let out = pretty(text);
        assert_eq!(
            out,
            "{\n  \"z\": 1,\n  \"a\": {\n    \"b\": [\n      1,\n      2,\n      {}\n    ],\n    \"c\": []\n  },\n  \"s\": \"x, {\\\"y\\\": [1]} \\\\\",\n  \"m\": \"\"\n}"
        );
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        assert_eq!(pretty("{ \"a\" : [ ] }"), "{\n  \"a\": []\n}");
    }

    fn sub(name: &str, stage: &str, error: bool) -> SubTaskStatusView {
        SubTaskStatusView {
            name: name.into(),
            stage: stage.into(),
            unit: "Sync".into(),
            result: error.then(|| ProcessResult {
                is_canceled: false,
                errors: vec![ProcessError::default()],
            }),
            ..Default::default()
        }
    }

    fn source(id: &str, subs: Vec<SubTaskStatusView>) -> QueryStatusResponse {
        QueryStatusResponse {
            result: true,
            source_status: SourceStatusView {
                source: id.into(),
                ..Default::default()
            },
            sub_task_status: subs,
            ..Default::default()
        }
    }

    #[test]
    fn task_summary_follows_dm_rules() {
        let resp = QueryStatusListResponse {
            result: true,
            msg: String::new(),
            sources: vec![
                source(
                    "s1",
                    vec![
                        sub("a", "Running", false),
                        sub("b", "Paused", false),
                        sub("c", "Paused", true),
                    ],
                ),
                source(
                    "s2",
                    vec![
                        sub("a", "Finished", false),
                        sub("b", "Running", false),
                        sub("d", "Finished", false),
                    ],
                ),
            ],
        };
        let list = summarize_tasks(&resp).unwrap();
        let got: Vec<(&str, &str, usize)> = list
            .tasks
            .iter()
            .map(|t| {
                (
                    t.task_name.as_str(),
                    t.task_status.as_str(),
                    t.sources.len(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", "Running", 2),
                ("b", "Paused", 2),
                (
                    "c",
                    "Error - Some error occurred in subtask. Please run `query-status c` to get more details.",
                    1
                ),
                ("d", "Finished", 1),
            ]
        );
        let mut failed = resp.clone();
        failed.sources[1].result = false;
        assert!(summarize_tasks(&failed).is_none());
    }
}
