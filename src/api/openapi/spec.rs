//! The OpenAPI 3 document of the `/api/v1` endpoints dm-rs serves (a subset of DM's
//! `openapi/spec/dm.yaml`, same paths, field names and schemas), and a self-contained docs
//! page that renders it (no CDN: the page fetches `/api/v1/dm.json` and draws the endpoints
//! and schemas with a few lines of inline JavaScript).
//!
//! The document is built once from `json!` values (so it is always valid JSON) and kept for
//! the life of the process.

use std::sync::OnceLock;

use serde_json::{Value, json};

/// The OpenAPI document as JSON text (`GET /api/v1/dm.json`).
pub fn spec_json() -> &'static str {
    static SPEC: OnceLock<String> = OnceLock::new();
    SPEC.get_or_init(|| spec().to_string())
}

/// The docs page (`GET /api/v1/docs`).
pub fn docs_html() -> &'static str {
    DOCS_HTML
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn integer() -> Value {
    json!({ "type": "integer" })
}

fn boolean() -> Value {
    json!({ "type": "boolean" })
}

fn number() -> Value {
    json!({ "type": "number", "format": "double" })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn strings() -> Value {
    array(string())
}

fn object(description: &str, required: &[&str], properties: Value) -> Value {
    let mut o = json!({ "type": "object", "description": description, "properties": properties });
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

/// `{total, data[]}` of `item`.
fn list_of(item: &str) -> Value {
    object(
        &format!("a list of {item}"),
        &["total", "data"],
        json!({ "total": integer(), "data": array(r(item)) }),
    )
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": string() })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn source_name() -> Value {
    path_param("source-name", "globally unique data source name")
}

fn task_name() -> Value {
    path_param("task-name", "task name")
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// One operation: `ok` is (status, description, response schema or null).
fn op(
    tag: &str,
    summary: &str,
    id: &str,
    params: Vec<Value>,
    body: Option<Value>,
    ok: (&str, &str, Option<Value>),
) -> Value {
    let mut responses = serde_json::Map::new();
    let mut success = json!({ "description": ok.1 });
    if let Some(schema) = ok.2 {
        success["content"] = json_content(schema);
    }
    responses.insert(ok.0.to_string(), success);
    responses.insert(
        "400".into(),
        json!({ "description": "failed", "content": json_content(r("ErrorWithMessage")) }),
    );
    responses.insert(
        "429".into(),
        json!({ "description": "too many requests from this client (rpc-rate-limit)", "content": json_content(r("ErrorWithMessage")) }),
    );
    let mut o = json!({
        "tags": [tag], "summary": summary, "operationId": id, "responses": responses,
    });
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    if let Some(schema) = body {
        o["requestBody"] = json!({ "required": true, "content": json_content(schema) });
    }
    o
}

fn paths() -> Value {
    let with_status = || query_param("with_status", "include the status", boolean());
    let source_list = || query_param("source_name_list", "only these sources", strings());
    json!({
        "/api/v1/docs": { "get": {
            "tags": ["doc"], "summary": "this page", "operationId": "GetDocHTML",
            "responses": { "200": { "description": "HTML content" } } } },
        "/api/v1/dm.json": { "get": {
            "tags": ["doc"], "summary": "the OpenAPI document", "operationId": "GetDocJSON",
            "responses": { "200": { "description": "JSON content" } } } },
        "/api/v1/sources": {
            "post": op("source", "create and enable a new data source", "DMAPICreateSource", vec![],
                Some(r("CreateSourceRequest")), ("201", "success", Some(r("Source")))),
            "get": op("source", "get data source list", "DMAPIGetSourceList",
                vec![with_status(), query_param("enable_relay", "only sources with relay enabled", boolean())],
                None, ("200", "data source list", Some(r("GetSourceListResponse")))),
        },
        "/api/v1/sources/{source-name}": {
            "get": op("source", "get source", "DMAPIGetSource", vec![source_name(), with_status()],
                None, ("200", "source", Some(r("Source")))),
            "put": op("source", "update a data source (an absent password keeps the old one)", "DMAPIUpdateSource",
                vec![source_name()], Some(r("UpdateSourceRequest")), ("200", "success", Some(r("Source")))),
            "delete": op("source", "delete a data source", "DMAPIDeleteSource",
                vec![source_name(), query_param("force", "also stop the source's tasks", boolean())],
                None, ("204", "success", None)),
        },
        "/api/v1/sources/{source-name}/status": {
            "get": op("source", "get the current status of the data source", "DMAPIGetSourceStatus",
                vec![source_name()], None, ("200", "success", Some(r("GetSourceStatusResponse")))),
        },
        "/api/v1/sources/{source-name}/enable": {
            "post": op("source", "enable a data source (and run its tasks)", "DMAPIEnableSource",
                vec![source_name()], None, ("200", "success", None)),
        },
        "/api/v1/sources/{source-name}/disable": {
            "post": op("source", "disable a data source (and stop its tasks)", "DMAPIDisableSource",
                vec![source_name()], None, ("200", "success", None)),
        },
        "/api/v1/sources/{source-name}/transfer": {
            "post": op("source", "transfer source to a free worker", "DMAPITransferSource",
                vec![source_name()], Some(r("WorkerNameRequest")), ("200", "success", None)),
        },
        "/api/v1/tasks": {
            "post": op("task", "create a task (runs the precheck)", "DMAPICreateTask", vec![],
                Some(r("CreateTaskRequest")), ("201", "success", Some(r("OperateTaskResponse")))),
            "get": op("task", "get task list", "DMAPIGetTaskList",
                vec![with_status(), query_param("stage", "only tasks in this stage", r("TaskStage")), source_list()],
                None, ("200", "task list", Some(r("GetTaskListResponse")))),
        },
        "/api/v1/tasks/{task-name}": {
            "get": op("task", "get task config", "DMAPIGetTask", vec![task_name(), with_status()],
                None, ("200", "task", Some(r("Task")))),
            "put": op("task", "update a stopped task (runs the precheck)", "DMAPIUpdateTask", vec![task_name()],
                Some(r("CreateTaskRequest")), ("200", "success", Some(r("OperateTaskResponse")))),
            "delete": op("task", "delete a task", "DMAPIDeleteTask",
                vec![task_name(),
                     query_param("force", "delete even when running", boolean()),
                     query_param("keep_meta", "keep the task's meta tables downstream", boolean())],
                None, ("204", "success", None)),
        },
        "/api/v1/tasks/{task-name}/status": {
            "get": op("task", "get task status", "DMAPIGetTaskStatus", vec![task_name(), source_list()],
                None, ("200", "success", Some(r("GetTaskStatusResponse")))),
        },
        "/api/v1/tasks/{task-name}/start": {
            "post": op("task", "start a task", "DMAPIStartTask", vec![task_name()],
                Some(r("StartTaskRequest")), ("200", "success", None)),
        },
        "/api/v1/tasks/{task-name}/stop": {
            "post": op("task", "stop a task", "DMAPIStopTask", vec![task_name()],
                Some(r("StopTaskRequest")), ("200", "success", None)),
        },
        "/api/v1/cluster/masters": {
            "get": op("cluster", "get cluster master node list", "DMAPIGetClusterMasterList", vec![],
                None, ("200", "success", Some(r("GetClusterMasterListResponse")))),
        },
        "/api/v1/cluster/masters/{master-name}": {
            "delete": op("cluster", "offline master node", "DMAPIOfflineMasterNode",
                vec![path_param("master-name", "master name")], None, ("204", "success", None)),
        },
        "/api/v1/cluster/workers": {
            "get": op("cluster", "get cluster worker node list", "DMAPIGetClusterWorkerList", vec![],
                None, ("200", "success", Some(r("GetClusterWorkerListResponse")))),
        },
        "/api/v1/cluster/workers/{worker-name}": {
            "delete": op("cluster", "offline worker node", "DMAPIOfflineWorkerNode",
                vec![path_param("worker-name", "worker name")], None, ("204", "success", None)),
        },
    })
}

fn source_schemas() -> Value {
    json!({
        "ErrorWithMessage": object("operation error", &["error_msg", "error_code"],
            json!({ "error_msg": string(), "error_code": integer() })),
        "Security": object("TLS material; answers never show the contents", &[],
            json!({ "ssl_ca_content": string(), "ssl_cert_content": string(), "ssl_key_content": string(),
                    "cert_allowed_cn": strings() })),
        "Purge": object("relay log purging", &[],
            json!({ "interval": integer(), "expires": integer(), "remain_space": integer() })),
        "RelayConfig": object("relay settings", &[],
            json!({ "enable_relay": boolean(), "relay_binlog_name": string(),
                    "relay_binlog_gtid": string(), "relay_dir": string() })),
        "RelayStatus": object("status of relay log", &[],
            json!({ "master_binlog": string(), "master_binlog_gtid": string(), "relay_dir": string(),
                    "relay_binlog_gtid": string(), "relay_catch_up_master": boolean(), "stage": string() })),
        "SourceStatus": object("source status", &["source_name", "worker_name"],
            json!({ "source_name": string(), "worker_name": string(),
                    "relay_status": r("RelayStatus"), "error_msg": string() })),
        "Source": object("an upstream data source; answers show the password as ******",
            &["source_name", "host", "port", "user", "enable_gtid", "enable"],
            json!({ "source_name": string(), "host": string(), "port": integer(), "user": string(),
                    "password": string(), "enable_gtid": boolean(), "enable": boolean(),
                    "flavor": string(), "task_name_list": strings(), "security": r("Security"),
                    "purge": r("Purge"), "status_list": array(r("SourceStatus")),
                    "relay_config": r("RelayConfig") })),
        "CreateSourceRequest": object("", &["source"],
            json!({ "source": r("Source"), "worker_name": string() })),
        "UpdateSourceRequest": object("", &["source"], json!({ "source": r("Source") })),
        "WorkerNameRequest": object("", &["worker_name"], json!({ "worker_name": string() })),
        "GetSourceListResponse": list_of("Source"),
        "GetSourceStatusResponse": list_of("SourceStatus"),
    })
}

fn task_schemas() -> Value {
    json!({
        "TaskTargetSession": object("downstream session settings", &[],
            json!({ "foreign_key_checks": { "type": "string", "enum": ["0", "1"] } })),
        "TaskTargetDataBase": object("downstream database", &["host", "port", "user", "password"],
            json!({ "host": string(), "port": integer(), "user": string(), "password": string(),
                    "security": r("Security"), "session": r("TaskTargetSession") })),
        "TaskBinLogFilterRule": object("binlog events and statements to ignore", &[],
            json!({ "ignore_event": strings(), "ignore_sql": strings() })),
        "TaskTableMigrateRuleSource": object("upstream tables (wildcards; empty table = whole schema)",
            &["source_name", "schema", "table"],
            json!({ "source_name": string(), "schema": string(), "table": string() })),
        "TaskTableMigrateRuleTarget": object("downstream table (no wildcards)", &[],
            json!({ "schema": string(), "table": string() })),
        "TaskTableMigrateRule": object("upstream table to downstream migrate rule", &["source"],
            json!({ "source": r("TaskTableMigrateRuleSource"), "target": r("TaskTableMigrateRuleTarget"),
                    "binlog_filter_rule": strings() })),
        "TaskFullMigrateConf": object("dump and load settings", &[],
            json!({ "export_threads": integer(), "import_threads": integer(), "data_dir": string(),
                    "consistency": string(), "import_mode": string(), "sorting_dir": string(),
                    "disk_quota": string(), "checksum": string(), "analyze": string(),
                    "range_concurrency": integer(), "compress-kv-pairs": string(), "pd_addr": string(),
                    "security": r("Security"), "on_duplicate_logical": string(),
                    "on_duplicate_physical": string() })),
        "TaskIncrMigrateConf": object("replication settings", &[],
            json!({ "repl_threads": integer(), "repl_batch": integer(), "safe_mode": boolean() })),
        "TaskSourceConf": object("a source of the task and where replication starts", &["source_name"],
            json!({ "source_name": string(), "binlog_name": string(), "binlog_pos": integer(),
                    "binlog_gtid": string() })),
        "TaskSourceConfig": object("sources of the task", &["source_conf"],
            json!({ "full_migrate_conf": r("TaskFullMigrateConf"), "incr_migrate_conf": r("TaskIncrMigrateConf"),
                    "source_conf": array(r("TaskSourceConf")) })),
        "TaskStage": { "type": "string", "enum": ["Stopped", "Running", "Finished", "Paused"] },
        "Task": object("a migration task",
            &["name", "task_mode", "enhance_online_schema_change", "on_duplicate", "target_config",
              "table_migrate_rule", "source_config"],
            json!({ "name": string(),
                    "task_mode": { "type": "string", "enum": ["full", "incremental", "all", "dump", "load", "load&sync"] },
                    "shard_mode": { "type": "string", "enum": ["pessimistic", "optimistic"] },
                    "strict_optimistic_shard_mode": boolean(), "meta_schema": string(), "timezone": string(),
                    "enhance_online_schema_change": boolean(),
                    "on_duplicate": { "type": "string", "enum": ["replace", "error", "ignore"] },
                    "target_config": r("TaskTargetDataBase"),
                    "binlog_filter_rule": { "type": "object", "additionalProperties": r("TaskBinLogFilterRule") },
                    "table_migrate_rule": array(r("TaskTableMigrateRule")),
                    "source_config": r("TaskSourceConfig"),
                    "ignore_checking_items": strings(),
                    "status_list": array(r("SubTaskStatus")) })),
        "CreateTaskRequest": object("dm-rs also accepts `task` as a string holding task.yaml", &["task"],
            json!({ "task": { "oneOf": [r("Task"), { "type": "string", "description": "task.yaml text" }] } })),
        "OperateTaskResponse": object("", &["task", "check_result"],
            json!({ "task": r("Task"), "check_result": string() })),
        "StartTaskRequest": object("", &[],
            json!({ "remove_meta": boolean(), "source_name_list": strings(), "start_time": string(),
                    "safe_mode_time_duration": string() })),
        "StopTaskRequest": object("", &[],
            json!({ "timeout_duration": string(), "source_name_list": strings() })),
        "GetTaskListResponse": list_of("Task"),
        "GetTaskStatusResponse": list_of("SubTaskStatus"),
    })
}

fn status_schemas() -> Value {
    json!({
        "DumpStatus": object("status of dump unit", &[],
            json!({ "total_tables": integer(), "completed_tables": number(), "finished_bytes": number(),
                    "finished_rows": number(), "estimate_total_rows": number(), "bps": integer(),
                    "progress": string() })),
        "LoadStatus": object("status of load unit", &[],
            json!({ "finished_bytes": integer(), "total_bytes": integer(), "progress": string(),
                    "meta_binlog": string(), "meta_binlog_gtid": string(), "bps": integer() })),
        "ShardingGroup": object("an unresolved shard DDL group", &[],
            json!({ "target": string(), "ddl_list": strings(), "first_location": string(),
                    "synced": strings(), "unsynced": strings() })),
        "SyncStatus": object("status of sync unit", &[],
            json!({ "total_events": integer(), "total_tps": integer(), "recent_tps": integer(),
                    "master_binlog": string(), "master_binlog_gtid": string(), "syncer_binlog": string(),
                    "syncer_binlog_gtid": string(), "blocking_ddls": strings(),
                    "unresolved_groups": array(r("ShardingGroup")), "synced": boolean(),
                    "binlog_type": string(), "seconds_behind_master": integer(),
                    "io_total_bytes": integer(), "dump_io_total_bytes": integer() })),
        "SubTaskStatus": object("one task on one source", &["name", "source_name", "worker_name", "stage", "unit"],
            json!({ "name": string(), "source_name": string(), "worker_name": string(),
                    "stage": r("TaskStage"), "unit": string(), "unresolved_ddl_lock_id": string(),
                    "load_status": r("LoadStatus"), "sync_status": r("SyncStatus"),
                    "dump_status": r("DumpStatus"), "error_msg": string() })),
        "ClusterMaster": object("a dm-master", &["name", "alive", "leader", "addr"],
            json!({ "name": string(), "alive": boolean(), "leader": boolean(), "addr": string() })),
        "ClusterWorker": object("a dm-worker", &["name", "addr", "bound_stage", "bound_source_name"],
            json!({ "name": string(), "addr": string(),
                    "bound_stage": { "type": "string", "enum": ["offline", "free", "bound"] },
                    "bound_source_name": string() })),
        "GetClusterMasterListResponse": list_of("ClusterMaster"),
        "GetClusterWorkerListResponse": list_of("ClusterWorker"),
    })
}

/// The whole document.
fn spec() -> Value {
    let mut schemas = serde_json::Map::new();
    for part in [source_schemas(), task_schemas(), status_schemas()] {
        if let Value::Object(m) = part {
            schemas.extend(m);
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {
            "title": "dm-rs OpenAPI",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "TiDB Data Migration's /api/v1 on dm-master (followers forward to the leader). Errors answer {error_msg, error_code}.",
        },
        "tags": [
            { "name": "source", "description": "upstream data sources" },
            { "name": "task", "description": "migration tasks" },
            { "name": "cluster", "description": "dm-master and dm-worker members" },
        ],
        "paths": paths(),
        "components": { "schemas": schemas },
    })
}

const DOCS_HTML: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dm-rs OpenAPI</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h2 { border-bottom: 1px solid #ccc; }
.op { border: 1px solid #ddd; border-radius: 4px; margin: .6em 0; padding: .4em .8em; }
.m { display: inline-block; min-width: 4.5em; font-weight: bold; text-transform: uppercase; }
.get { color: #1a7f37; } .post { color: #0550ae; } .put { color: #9a6700; } .delete { color: #cf222e; }
code { background: #f4f4f4; padding: 0 .2em; }
table { border-collapse: collapse; margin: .3em 0 1em; }
td, th { border: 1px solid #ddd; padding: .2em .6em; text-align: left; vertical-align: top; }
.req { color: #cf222e; }
</style>
</head>
<body>
<h1 id="title">dm-rs OpenAPI</h1>
<p id="desc">Loading <a href="/api/v1/dm.json">/api/v1/dm.json</a>...</p>
<h2>Endpoints</h2>
<div id="paths"></div>
<h2>Schemas</h2>
<div id="schemas"></div>
<script>
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
const ref = r => { const n = r.split("/").pop(); return `<a href="#schema-${n}">${n}</a>`; };
function type(s) {
  if (!s) return "";
  if (s.$ref) return ref(s.$ref);
  if (s.oneOf) return s.oneOf.map(type).join(" | ");
  if (s.type === "array") return type(s.items) + "[]";
  if (s.additionalProperties) return "map&lt;string, " + type(s.additionalProperties) + "&gt;";
  return esc(s.type) + (s.enum ? " (" + s.enum.map(esc).join(", ") + ")" : "");
}
function body(content) {
  const s = content && content["application/json"] && content["application/json"].schema;
  return s ? type(s) : "";
}
fetch("/api/v1/dm.json").then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("desc").textContent = doc.info.description || "";
  let html = "";
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      html += `<div class="op"><span class="m ${method}">${method}</span> <code>${esc(path)}</code> ${esc(op.summary)}`;
      const params = op.parameters || [];
      if (params.length) html += "<br>parameters: " + params.map(p => `<code>${esc(p.name)}</code> (${esc(p.in)}, ${type(p.schema)})`).join(", ");
      if (op.requestBody) html += "<br>body: " + body(op.requestBody.content);
      html += "<br>responses: " + Object.entries(op.responses).map(([c, r]) => `${esc(c)} ${esc(r.description)} ${body(r.content)}`).join("; ");
      html += "</div>";
    }
  }
  document.getElementById("paths").innerHTML = html;
  html = "";
  for (const [name, s] of Object.entries(doc.components.schemas)) {
    html += `<h3 id="schema-${esc(name)}">${esc(name)}</h3><p>${esc(s.description)}</p>`;
    if (s.properties) {
      const req = new Set(s.required || []);
      html += "<table><tr><th>field</th><th>type</th></tr>";
      for (const [f, fs] of Object.entries(s.properties))
        html += `<tr><td><code>${esc(f)}</code>${req.has(f) ? ' <span class="req">required</span>' : ""}</td><td>${type(fs)}</td></tr>`;
      html += "</table>";
    } else html += `<p>${type(s)}</p>`;
  }
  document.getElementById("schemas").innerHTML = html;
}).catch(e => { document.getElementById("desc").textContent = "cannot load /api/v1/dm.json: " + e; });
</script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    const SERVED: &[(&str, &[&str])] = &[
        ("/api/v1/sources", &["get", "post"]),
        ("/api/v1/sources/{source-name}", &["get", "put", "delete"]),
        ("/api/v1/sources/{source-name}/status", &["get"]),
        ("/api/v1/sources/{source-name}/enable", &["post"]),
        ("/api/v1/sources/{source-name}/disable", &["post"]),
        ("/api/v1/sources/{source-name}/transfer", &["post"]),
        ("/api/v1/tasks", &["get", "post"]),
        ("/api/v1/tasks/{task-name}", &["get", "put", "delete"]),
        ("/api/v1/tasks/{task-name}/status", &["get"]),
        ("/api/v1/tasks/{task-name}/start", &["post"]),
        ("/api/v1/tasks/{task-name}/stop", &["post"]),
        ("/api/v1/cluster/masters", &["get"]),
        ("/api/v1/cluster/masters/{master-name}", &["delete"]),
        ("/api/v1/cluster/workers", &["get"]),
        ("/api/v1/cluster/workers/{worker-name}", &["delete"]),
        ("/api/v1/docs", &["get"]),
        ("/api/v1/dm.json", &["get"]),
    ];

    #[test]
    fn spec_lists_every_served_path_and_nothing_else() {
        let doc: Value = serde_json::from_str(spec_json()).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.0.0");
        let paths = doc["paths"].as_object().unwrap();
        for (path, methods) in SERVED {
            let ops = paths.get(*path).unwrap_or_else(|| panic!("{path} missing"));
            let mut got: Vec<&str> = ops
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            got.sort();
            let mut want = methods.to_vec();
            want.sort();
            assert_eq!(got, want, "{path}");
        }
        assert_eq!(paths.len(), SERVED.len());
    }

    #[test]
    fn every_reference_resolves() {
        let text = spec_json();
        let doc: Value = serde_json::from_str(text).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut rest = text;
        let mut n = 0;
        while let Some(i) = rest.find("#/components/schemas/") {
            rest = &rest[i + "#/components/schemas/".len()..];
            let name: String = rest.chars().take_while(|c| *c != '"').collect();
            assert!(schemas.contains_key(&name), "dangling $ref {name}");
            n += 1;
        }
        assert!(n > 40, "{n} refs");
    }

    #[test]
    fn schemas_use_the_models_field_names() {
        use crate::api::openapi::model::{ClusterWorker, Source};
        let doc: Value = serde_json::from_str(spec_json()).unwrap();
        let props = |s: &str| -> Vec<String> {
            let mut v: Vec<String> = doc["components"]["schemas"][s]["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            v.sort();
            v
        };
        let keys = |v: Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let source = Source {
            source_name: String::new(),
            host: String::new(),
            port: 0,
            user: String::new(),
            password: Some(String::new()),
            enable_gtid: false,
            enable: false,
            flavor: Some(String::new()),
            task_name_list: Some(vec![]),
            security: Some(Default::default()),
            purge: Some(Default::default()),
            status_list: Some(vec![]),
            relay_config: Some(Default::default()),
        };
        assert_eq!(props("Source"), keys(serde_json::to_value(source).unwrap()));
        assert_eq!(
            props("ClusterWorker"),
            keys(serde_json::to_value(ClusterWorker::default()).unwrap())
        );
    }

    #[test]
    fn docs_page_is_self_contained() {
        let html = docs_html();
        assert!(html.contains("fetch(\"/api/v1/dm.json\")"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external resources"
        );
    }
}
