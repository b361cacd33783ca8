//! Conversions between the OpenAPI models and dm-rs configs and status views, with DM's
//! semantics (`config/source_converter.go`, `config/task_converters.go` in DM):
//!
//! - A [`Source`] becomes a [`SourceConfig`]; on update, keys the OpenAPI cannot express
//!   (server-id, filters, checker, ...) and an absent password are kept from the old config.
//! - A [`Task`] becomes a [`TaskConfig`]: every source shares one dump, load and sync config
//!   (`dump-01`, `load-01`, `sync-01`); each `table_migrate_rule` of a source adds a route (when
//!   it has a target), one binlog event filter per named `binlog_filter_rule` template (action
//!   Ignore, on the rule's schema/table), and a block-allow-list entry (`do-tables` for a
//!   table, `do-dbs` for a whole schema). Equal rules of different sources share one name.
//!   The result then goes through task.yaml's own validation; every problem of the request
//!   (unknown keys, conversion problems, validation issues) comes back in one error.
//! - A [`TaskConfig`] becomes a [`Task`] view the other way round (passwords `******`).
//! - A worker's query-status answer becomes OpenAPI [`SubTaskStatus`]es.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::model::{
    DumpStatus, LoadStatus, Purge, RelayConfig, Security, ShardingGroup, Source, SubTaskStatus,
    SyncStatus, Task, TaskBinLogFilterRule, TaskFullMigrateConf, TaskIncrMigrateConf,
    TaskSourceConf, TaskSourceConfig, TaskTableMigrateRule, TaskTableMigrateRuleSource,
    TaskTableMigrateRuleTarget, TaskTargetDataBase, TaskTargetSession, parse_value,
};
use crate::config::ConfigFile;
use crate::config::db::{DbConfig, Security as DbSecurity, SessionValue};
use crate::config::rules::{BaList, BinlogEventRule, RouteRule, TableRef};
use crate::config::task::Keyword;
use crate::config::task::{LoaderConfig, Meta, MySqlInstance, MydumperConfig, SyncerConfig};
use crate::config::{Issues, Secret, SourceConfig, TaskConfig};
use crate::error::{DmError, codes};
use crate::messages::rpc::{self, ProcessError, QueryStatusResponse, SubTaskStatusView};

/// What answers show in place of a password.
pub const REDACTED_PASSWORD: &str = "******";

/// `{"error_msg": <DM text of e>, "error_code": e.code}`, the body of every error answer.
pub fn error_body(e: &DmError) -> Value {
    json!({ "error_msg": rpc::error_msg(e), "error_code": e.code })
}

fn security_to_db(s: &Security) -> DbSecurity {
    DbSecurity {
        ssl_ca_bytes: s.ssl_ca_content.clone(),
        ssl_cert_bytes: s.ssl_cert_content.clone(),
        ssl_key_bytes: s.ssl_key_content.clone(),
        cert_allowed_cn: s.cert_allowed_cn.clone().unwrap_or_default(),
        ..DbSecurity::default()
    }
}

/// The view of TLS settings in answers: the allowed CNs only, never key material.
fn security_view(s: &DbSecurity) -> Security {
    Security {
        cert_allowed_cn: Some(s.cert_allowed_cn.clone()),
        ..Security::default()
    }
}

/// A source config from an OpenAPI source. With `previous` (update), an absent password (or
/// the `******` placeholder) keeps the old one, and keys the OpenAPI has no field for keep
/// their old values. The result is validated as source.yaml is.
pub fn source_to_config(
    s: &Source,
    previous: Option<&SourceConfig>,
) -> Result<SourceConfig, DmError> {
    let mut cfg = previous.cloned().unwrap_or_default();
    cfg.source_id = s.source_name.clone();
    cfg.enable = s.enable;
    cfg.enable_gtid = s.enable_gtid;
    cfg.flavor = s.flavor.clone().unwrap_or_default();
    cfg.from.host = s.host.clone();
    cfg.from.port = s.port;
    cfg.from.user = s.user.clone();
    match (&s.password, previous) {
        (None, Some(_)) => {}
        (Some(p), Some(_)) if p == REDACTED_PASSWORD => {}
        (p, _) => cfg.from.password = Secret::new(p.clone().unwrap_or_default()),
    }
    cfg.from.security = s.security.as_ref().map(security_to_db);
    let purge_default = crate::config::source::PurgeConfig::default();
    if let Some(p) = &s.purge {
        cfg.purge.interval = p.interval.unwrap_or(purge_default.interval);
        cfg.purge.expires = p.expires.unwrap_or(purge_default.expires);
        cfg.purge.remain_space = p.remain_space.unwrap_or(purge_default.remain_space);
    }
    if let Some(r) = &s.relay_config {
        if let Some(v) = r.enable_relay {
            cfg.enable_relay = v;
        }
        if let Some(v) = &r.relay_binlog_name {
            cfg.relay_binlog_name = v.clone();
        }
        if let Some(v) = &r.relay_binlog_gtid {
            cfg.relay_binlog_gtid = v.clone();
        }
        if let Some(v) = &r.relay_dir {
            cfg.relay_dir = v.clone();
        }
    }
    let mut issues = Issues::default();
    cfg.validate(&mut issues);
    issues.into_result(
        &format!("source `{}`", s.source_name),
        &codes::CONFIG_YAML_TRANSFORM,
    )?;
    Ok(cfg)
}

/// The OpenAPI view of a source config: password `******`, no TLS key material, no status.
pub fn config_to_source(cfg: &SourceConfig) -> Source {
    Source {
        source_name: cfg.source_id.clone(),
        host: cfg.from.host.clone(),
        port: cfg.from.port,
        user: cfg.from.user.clone(),
        password: Some(REDACTED_PASSWORD.to_string()),
        enable_gtid: cfg.enable_gtid,
        enable: cfg.enable,
        flavor: (!cfg.flavor.is_empty()).then(|| cfg.flavor.clone()),
        task_name_list: None,
        security: cfg.from.security.as_ref().map(security_view),
        purge: Some(Purge {
            interval: Some(cfg.purge.interval),
            expires: Some(cfg.purge.expires),
            remain_space: Some(cfg.purge.remain_space),
        }),
        status_list: None,
        relay_config: Some(RelayConfig {
            enable_relay: Some(cfg.enable_relay),
            relay_binlog_name: Some(cfg.relay_binlog_name.clone()),
            relay_binlog_gtid: Some(cfg.relay_binlog_gtid.clone()),
            relay_dir: Some(cfg.relay_dir.clone()),
        }),
    }
}

/// The task of a POST/PUT `/api/v1/tasks` body's `task` value: an OpenAPI [`Task`] object, or
/// (dm-rs extension) a string holding task.yaml. Unknown keys, conversion problems and the
/// task's validation issues all come back in one error.
pub fn task_from_request(v: Value) -> Result<TaskConfig, DmError> {
    match v {
        Value::String(yaml) => TaskConfig::from_yaml(&yaml, "task"),
        other => {
            let mut issues = Issues::default();
            let parsed: Option<Task> = parse_value(other, "task", &mut issues);
            let name = parsed.as_ref().map(|t| t.name.clone()).unwrap_or_default();
            let cfg = parsed.map(|t| build_task_config(&t, &mut issues));
            if let Some(cfg) = &cfg {
                cfg.validate(&mut issues);
            }
            issues.into_result(&format!("task `{name}`"), &codes::CONFIG_YAML_TRANSFORM)?;
            finish(cfg.expect("no issues means converted"))
        }
    }
}

/// A task config from an OpenAPI task, validated as task.yaml is.
pub fn task_to_config(t: &Task) -> Result<TaskConfig, DmError> {
    let mut issues = Issues::default();
    let cfg = build_task_config(t, &mut issues);
    cfg.validate(&mut issues);
    issues.into_result(&format!("task `{}`", t.name), &codes::CONFIG_YAML_TRANSFORM)?;
    finish(cfg)
}

/// Runs a validated config through task.yaml's loader, which folds aliases and fills
/// derived defaults exactly as for a file.
fn finish(cfg: TaskConfig) -> Result<TaskConfig, DmError> {
    let yaml = serde_yaml_ng::to_string(&cfg).map_err(|e| {
        DmError::new(&codes::OPENAPI_COMMON, "cannot render the task as YAML").with_cause(e)
    })?;
    TaskConfig::from_yaml(&yaml, &format!("task `{}`", cfg.name))
}

/// Named rules collected across sources; equal rules share one name (`route-01`, ...).
struct Named<T> {
    prefix: &'static str,
    items: Vec<(String, T)>,
}

impl<T: PartialEq + Clone> Named<T> {
    fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            items: Vec::new(),
        }
    }

    fn name_of(&mut self, rule: &T) -> String {
        if let Some((n, _)) = self.items.iter().find(|(_, r)| r == rule) {
            return n.clone();
        }
        let name = format!("{}-{:02}", self.prefix, self.items.len() + 1);
        self.items.push((name.clone(), rule.clone()));
        name
    }

    fn into_map(self) -> BTreeMap<String, T> {
        self.items.into_iter().collect()
    }
}

fn target_db(t: &TaskTargetDataBase) -> DbConfig {
    let mut db = DbConfig {
        host: t.host.clone(),
        port: t.port,
        user: t.user.clone(),
        password: Secret::new(t.password.clone()),
        security: t.security.as_ref().map(security_to_db),
        ..DbConfig::default()
    };
    if let Some(fk) = t
        .session
        .as_ref()
        .and_then(|s| s.foreign_key_checks.as_ref())
    {
        let v = fk
            .parse::<i64>()
            .map(SessionValue::Int)
            .unwrap_or_else(|_| SessionValue::Text(fk.clone()));
        db.session.insert("foreign_key_checks".into(), v);
    }
    db
}

fn unit_configs(t: &Task, issues: &mut Issues) -> (MydumperConfig, LoaderConfig, SyncerConfig) {
    let mut dump = MydumperConfig::default();
    let mut load = LoaderConfig::default();
    let mut sync = SyncerConfig::default();
    if !t.on_duplicate.is_empty() {
        load.on_duplicate_logical = t.on_duplicate.clone();
    }
    if let Some(f) = &t.source_config.full_migrate_conf {
        apply_full(f, &mut dump, &mut load, issues);
    }
    if let Some(i) = &t.source_config.incr_migrate_conf {
        if let Some(v) = i.repl_threads {
            sync.worker_count = v;
        }
        if let Some(v) = i.repl_batch {
            sync.batch = v;
        }
        if let Some(v) = i.safe_mode {
            sync.safe_mode = v;
        }
    }
    (dump, load, sync)
}

fn apply_full(
    f: &TaskFullMigrateConf,
    dump: &mut MydumperConfig,
    load: &mut LoaderConfig,
    issues: &mut Issues,
) {
    if let Some(v) = f.export_threads {
        dump.threads = v;
    }
    if let Some(v) = &f.consistency {
        dump.extra_args = format!("--consistency {v}");
    }
    if let Some(v) = f.import_threads {
        load.pool_size = v;
    }
    let strings: [(&Option<String>, &mut String); 8] = [
        (&f.data_dir, &mut load.dir),
        (&f.import_mode, &mut load.import_mode),
        (&f.sorting_dir, &mut load.sorting_dir_physical),
        (&f.disk_quota, &mut load.disk_quota_physical),
        (&f.checksum, &mut load.checksum_physical),
        (&f.analyze, &mut load.analyze),
        (&f.compress_kv_pairs, &mut load.compress_kv_pairs),
        (&f.pd_addr, &mut load.pd_addr),
    ];
    for (from, to) in strings {
        if let Some(v) = from {
            *to = v.clone();
        }
    }
    if let Some(v) = &f.on_duplicate_logical {
        load.on_duplicate_logical = v.clone();
    }
    if let Some(v) = &f.on_duplicate_physical {
        load.on_duplicate_physical = v.clone();
    }
    if let Some(v) = f.range_concurrency {
        load.range_concurrency = v;
    }
    if f.security.is_some() {
        issues.push(
            "task.source_config.full_migrate_conf.security",
            &codes::CONFIG_FEATURE_NOT_SUPPORTED,
            "TLS for the physical import's TiDB cluster is not supported: dm-rs loads logically through target_config",
        );
    }
}

/// Per source: its routes, filters and block-allow-list from the migrate rules.
fn source_rules(
    t: &Task,
    source: &str,
    issues: &mut Issues,
) -> (Vec<RouteRule>, Vec<BinlogEventRule>, Option<BaList>) {
    let templates = t.binlog_filter_rule.clone().unwrap_or_default();
    let mut routes = Vec::new();
    let mut filters = Vec::new();
    let mut ba = BaList::default();
    for (i, rule) in t.table_migrate_rule.iter().enumerate() {
        let src = &rule.source;
        if src.source_name != source {
            continue;
        }
        if let Some(target) = &rule.target
            && (target.schema.is_some() || target.table.is_some())
        {
            routes.push(RouteRule {
                schema_pattern: src.schema.clone(),
                table_pattern: src.table.clone(),
                target_schema: target.schema.clone().unwrap_or_default(),
                target_table: target.table.clone().unwrap_or_default(),
                ..RouteRule::default()
            });
        }
        for (j, name) in rule.binlog_filter_rule.iter().flatten().enumerate() {
            let Some(tpl) = templates.get(name) else {
                issues.push(
                    format!("task.table_migrate_rule[{i}].binlog_filter_rule[{j}]"),
                    &codes::CONFIG_FILTER_RULE_NOT_FOUND,
                    format!("`{name}` is not defined in `binlog_filter_rule`"),
                );
                continue;
            };
            filters.push(BinlogEventRule {
                schema_pattern: src.schema.clone(),
                table_pattern: src.table.clone(),
                events: tpl.ignore_event.clone().unwrap_or_default(),
                sql_pattern: tpl.ignore_sql.clone().unwrap_or_default(),
                action: "Ignore".into(),
            });
        }
        if src.table.is_empty() {
            if !ba.do_dbs.contains(&src.schema) {
                ba.do_dbs.push(src.schema.clone());
            }
        } else {
            ba.do_tables.push(TableRef {
                db_name: src.schema.clone(),
                tbl_name: src.table.clone(),
            });
        }
    }
    let ba = (!ba.do_dbs.is_empty() || !ba.do_tables.is_empty()).then_some(ba);
    (routes, filters, ba)
}

fn build_task_config(t: &Task, issues: &mut Issues) -> TaskConfig {
    let mut cfg = TaskConfig {
        name: t.name.clone(),
        task_mode: Keyword::from(t.task_mode.as_str()),
        shard_mode: Keyword::from(t.shard_mode.as_deref().unwrap_or_default()),
        strict_optimistic_shard_mode: t.strict_optimistic_shard_mode.unwrap_or(false),
        timezone: t.timezone.clone().unwrap_or_default(),
        online_ddl: t.enhance_online_schema_change,
        target_database: Some(target_db(&t.target_config)),
        ignore_checking_items: t.ignore_checking_items.clone().unwrap_or_default(),
        ..TaskConfig::default()
    };
    if let Some(m) = &t.meta_schema {
        cfg.meta_schema = m.clone();
    }
    let names: BTreeSet<&str> = t
        .source_config
        .source_conf
        .iter()
        .map(|s| s.source_name.as_str())
        .collect();
    for (i, rule) in t.table_migrate_rule.iter().enumerate() {
        if !names.contains(rule.source.source_name.as_str()) {
            issues.push(
                format!("task.table_migrate_rule[{i}].source.source_name"),
                &codes::CONFIG_SOURCE_ID_NOT_FOUND,
                format!(
                    "`{}` is not listed in source_config.source_conf",
                    rule.source.source_name
                ),
            );
        }
    }
    let (dump, load, sync) = unit_configs(t, issues);
    cfg.mydumpers.insert("dump-01".into(), dump);
    cfg.loaders.insert("load-01".into(), load);
    cfg.syncers.insert("sync-01".into(), sync);
    let mut routes = Named::new("route");
    let mut filters = Named::new("filter");
    let mut balists = Named::new("balist");
    for sc in &t.source_config.source_conf {
        let (r, f, ba) = source_rules(t, &sc.source_name, issues);
        let meta = (sc.binlog_name.is_some()
            || sc.binlog_pos.is_some()
            || sc.binlog_gtid.is_some())
        .then(|| Meta {
            binlog_name: sc.binlog_name.clone().unwrap_or_default(),
            binlog_pos: sc.binlog_pos.unwrap_or(0),
            binlog_gtid: sc.binlog_gtid.clone().unwrap_or_default(),
        });
        cfg.mysql_instances.push(MySqlInstance {
            source_id: sc.source_name.clone(),
            meta,
            route_rules: r.iter().map(|x| routes.name_of(x)).collect(),
            filter_rules: f.iter().map(|x| filters.name_of(x)).collect(),
            block_allow_list: ba.map(|b| balists.name_of(&b)).unwrap_or_default(),
            mydumper_config_name: "dump-01".into(),
            loader_config_name: "load-01".into(),
            syncer_config_name: "sync-01".into(),
            ..MySqlInstance::default()
        });
    }
    cfg.routes = routes.into_map();
    cfg.filters = filters.into_map();
    cfg.block_allow_list = balists.into_map();
    cfg
}

/// The (schema, table) patterns of a subtask's routes and block-allow-list entries.
fn rule_patterns(st: &crate::config::SubTaskConfig) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = st
        .route_rules
        .iter()
        .map(|r| (r.schema_pattern.as_str(), r.table_pattern.as_str()))
        .collect();
    if let Some(ba) = &st.block_allow_list {
        v.extend(ba.do_dbs.iter().map(|d| (d.as_str(), "")));
        v.extend(
            ba.do_tables
                .iter()
                .map(|t| (t.db_name.as_str(), t.tbl_name.as_str())),
        );
    }
    v
}

/// The OpenAPI view of a task config (DM's `TaskConfigToOpenAPITask`): passwords `******`,
/// TLS without key material, filter templates named `<source>-filter-rule-<i>`.
pub fn config_to_task(cfg: &TaskConfig) -> Task {
    let subtasks = cfg.subtasks();
    let target = cfg.target_database.clone().unwrap_or_default();
    let first_inst = cfg.mysql_instances.first();
    let dump = first_inst
        .and_then(|i| {
            i.mydumper
                .clone()
                .or_else(|| cfg.mydumpers.get(&i.mydumper_config_name).cloned())
        })
        .unwrap_or_default();
    let load = first_inst
        .and_then(|i| {
            i.loader
                .clone()
                .or_else(|| cfg.loaders.get(&i.loader_config_name).cloned())
        })
        .unwrap_or_default();
    let first = subtasks.first();
    let mut filter_templates = BTreeMap::new();
    let mut rules: Vec<TaskTableMigrateRule> = Vec::new();
    let mut seen = BTreeSet::new();
    for st in &subtasks {
        let source = st.source_id.as_str();
        let filter_names: Vec<String> = (0..st.filter_rules.len())
            .map(|i| format!("{source}-filter-rule-{i}"))
            .collect();
        for (name, f) in filter_names.iter().zip(&st.filter_rules) {
            filter_templates.insert(
                name.clone(),
                TaskBinLogFilterRule {
                    ignore_event: (!f.events.is_empty()).then(|| f.events.clone()),
                    ignore_sql: (!f.sql_pattern.is_empty()).then(|| f.sql_pattern.clone()),
                },
            );
        }
        // A filter made from a migrate rule has that rule's patterns; a filter matching no
        // rule (from a task.yaml) goes with every rule of the source, as DM does.
        let own = |schema: &str, table: &str| -> Vec<String> {
            filter_names
                .iter()
                .zip(&st.filter_rules)
                .filter(|(_, f)| {
                    (f.schema_pattern == schema && f.table_pattern == table)
                        || !rule_patterns(st)
                            .contains(&(f.schema_pattern.as_str(), f.table_pattern.as_str()))
                })
                .map(|(n, _)| n.clone())
                .collect()
        };
        let mut push = |schema: &str, table: &str, target: Option<TaskTableMigrateRuleTarget>| {
            if !seen.insert((source.to_string(), schema.to_string(), table.to_string())) {
                return;
            }
            let names = own(schema, table);
            rules.push(TaskTableMigrateRule {
                source: TaskTableMigrateRuleSource {
                    source_name: source.to_string(),
                    schema: schema.to_string(),
                    table: table.to_string(),
                },
                target,
                binlog_filter_rule: (!names.is_empty()).then_some(names),
            });
        };
        for r in &st.route_rules {
            let target = (!r.target_schema.is_empty()).then(|| TaskTableMigrateRuleTarget {
                schema: Some(r.target_schema.clone()),
                table: (!r.target_table.is_empty()).then(|| r.target_table.clone()),
            });
            push(&r.schema_pattern, &r.table_pattern, target);
        }
        if let Some(ba) = &st.block_allow_list {
            for db in &ba.do_dbs {
                push(db, "", None);
            }
            for t in &ba.do_tables {
                push(&t.db_name, &t.tbl_name, None);
            }
        }
    }
    let consistency = dump.consistency();
    Task {
        name: cfg.name.clone(),
        task_mode: cfg.task_mode.text().to_string(),
        shard_mode: cfg
            .shard()
            .map(|m| Keyword::Known(Some(m)).text().to_string()),
        strict_optimistic_shard_mode: Some(cfg.strict_optimistic_shard_mode),
        meta_schema: Some(cfg.meta_schema.clone()),
        timezone: (!cfg.timezone.is_empty()).then(|| cfg.timezone.clone()),
        enhance_online_schema_change: cfg.online_ddl,
        on_duplicate: load.on_duplicate(),
        target_config: TaskTargetDataBase {
            host: target.host.clone(),
            port: target.port,
            user: target.user.clone(),
            password: REDACTED_PASSWORD.to_string(),
            security: target.security.as_ref().map(security_view),
            session: target.session_var("foreign_key_checks").map(|v| {
                let on = v == "1" || v.eq_ignore_ascii_case("on") || v.eq_ignore_ascii_case("true");
                TaskTargetSession {
                    foreign_key_checks: Some(if on { "1" } else { "0" }.to_string()),
                }
            }),
        },
        binlog_filter_rule: (!filter_templates.is_empty()).then_some(filter_templates),
        table_migrate_rule: rules,
        source_config: TaskSourceConfig {
            full_migrate_conf: Some(TaskFullMigrateConf {
                export_threads: Some(dump.threads),
                import_threads: Some(load.pool_size),
                data_dir: Some(load.dir.clone()),
                consistency: Some(consistency),
                import_mode: Some(load.import_mode.clone()),
                on_duplicate_logical: Some(load.on_duplicate()),
                ..TaskFullMigrateConf::default()
            }),
            incr_migrate_conf: first.map(|st| TaskIncrMigrateConf {
                repl_threads: Some(st.syncer.worker_count),
                repl_batch: Some(st.syncer.batch),
                safe_mode: Some(st.syncer.safe_mode),
            }),
            source_conf: cfg
                .mysql_instances
                .iter()
                .map(|i| TaskSourceConf {
                    source_name: i.source_id.clone(),
                    binlog_name: i.meta.as_ref().map(|m| m.binlog_name.clone()),
                    binlog_pos: i.meta.as_ref().map(|m| m.binlog_pos),
                    binlog_gtid: i.meta.as_ref().map(|m| m.binlog_gtid.clone()),
                })
                .collect(),
        },
        ignore_checking_items: (!cfg.ignore_checking_items.is_empty())
            .then(|| cfg.ignore_checking_items.clone()),
        status_list: None,
    }
}

/// DM's text of unit errors: one `[code=…], Message: …, RawCause: …, Workaround: ….` line each.
fn process_errors_text(errors: &[ProcessError]) -> String {
    let mut s = String::new();
    for e in errors {
        s.push_str(&format!(
            "[code={}:class={}:scope={}:level={}], Message: {}",
            e.err_code, e.err_class, e.err_scope, e.err_level, e.message
        ));
        if !e.raw_cause.is_empty() {
            s.push_str(&format!(", RawCause: {}", e.raw_cause));
        }
        if !e.workaround.is_empty() {
            s.push_str(&format!(", Workaround: {}", e.workaround));
        }
        s.push_str(".\n");
    }
    s
}

/// One subtask's status view as OpenAPI's [`SubTaskStatus`], on `source` bound to `worker`.
/// `error_msg` lists the subtask's errors (or, failing those, `source_errors`).
pub fn subtask_status(
    view: &SubTaskStatusView,
    source: &str,
    worker: &str,
    source_errors: &[ProcessError],
) -> SubTaskStatus {
    let errors = view
        .result
        .as_ref()
        .map(|r| r.errors.as_slice())
        .filter(|e| !e.is_empty())
        .unwrap_or(source_errors);
    SubTaskStatus {
        name: view.name.clone(),
        source_name: source.to_string(),
        worker_name: worker.to_string(),
        stage: view.stage.clone(),
        unit: view.unit.clone(),
        unresolved_ddl_lock_id: Some(view.unresolved_ddl_lock_id.clone()),
        load_status: view.load.as_ref().map(|l| LoadStatus {
            finished_bytes: l.finished_bytes,
            total_bytes: l.total_bytes,
            progress: l.progress.clone(),
            meta_binlog: l.meta_binlog.clone(),
            meta_binlog_gtid: l.meta_binlog_gtid.clone(),
            bps: l.bps,
        }),
        sync_status: view.sync.as_ref().map(|s| SyncStatus {
            total_events: s.total_events,
            total_tps: s.total_tps,
            recent_tps: s.recent_tps,
            master_binlog: s.master_binlog.clone(),
            master_binlog_gtid: s.master_binlog_gtid.clone(),
            syncer_binlog: s.syncer_binlog.clone(),
            syncer_binlog_gtid: s.syncer_binlog_gtid.clone(),
            blocking_ddls: s.blocking_ddls.clone(),
            unresolved_groups: Vec::<ShardingGroup>::new(),
            synced: s.synced,
            binlog_type: s.binlog_type.clone(),
            seconds_behind_master: s.seconds_behind_master,
            io_total_bytes: 0,
            dump_io_total_bytes: 0,
        }),
        dump_status: view.dump.as_ref().map(|d| DumpStatus {
            total_tables: d.total_tables,
            completed_tables: d.completed_tables,
            finished_bytes: d.finished_bytes,
            finished_rows: d.finished_rows,
            estimate_total_rows: d.estimate_total_rows,
            bps: d.bps,
            progress: d.progress.clone(),
        }),
        error_msg: (!errors.is_empty()).then(|| process_errors_text(errors)),
    }
}

/// Task `task`'s status from one worker's query-status answer, as DM's `getTaskStatus`
/// builds it: a failed answer gives a status with only names and `error_msg`.
pub fn task_status_from_worker(task: &str, resp: &QueryStatusResponse) -> SubTaskStatus {
    let source = &resp.source_status.source;
    let worker = &resp.source_status.worker;
    let view = resp
        .sub_task_status
        .iter()
        .find(|s| s.name == task)
        .filter(|_| resp.result);
    match view {
        Some(v) => {
            let source_errors = resp
                .source_status
                .result
                .as_ref()
                .map(|r| r.errors.as_slice())
                .unwrap_or(&[]);
            subtask_status(v, source, worker, source_errors)
        }
        None => SubTaskStatus {
            name: task.to_string(),
            source_name: source.clone(),
            worker_name: worker.clone(),
            error_msg: Some(if resp.msg.is_empty() {
                format!("task `{task}` has no subtask on source `{source}`")
            } else {
                resp.msg.clone()
            }),
            ..SubTaskStatus::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::openapi::model::from_value;
    use crate::messages::rpc::{ProcessResult, SourceStatusView, SyncStatusView};

    fn source() -> Source {
        from_value(
            json!({
                "source_name": "mysql-01", "host": "127.0.0.1", "port": 3307, "user": "root",
                "password": "s3cret", "enable_gtid": true, "enable": true, "flavor": "mariadb",
                "purge": {"expires": 7},
                "relay_config": {"enable_relay": true, "relay_dir": "/r"},
                "security": {"ssl_ca_content": "CA", "ssl_cert_content": "C", "ssl_key_content": "K", "cert_allowed_cn": ["x"]},
            }),
            "b",
        )
        .unwrap()
    }

    #[test]
    fn source_round_trip_redacts_the_password() {
        let cfg = source_to_config(&source(), None).unwrap();
        assert_eq!(cfg.source_id, "mysql-01");
        assert_eq!(cfg.from.port, 3307);
        assert_eq!(cfg.from.password.expose(), "s3cret");
        assert_eq!(cfg.purge.expires, 7);
        assert_eq!(cfg.purge.interval, 3600);
        assert!(cfg.enable_relay && cfg.enable_gtid);
        assert_eq!(cfg.relay_dir, "/r");
        assert_eq!(cfg.from.security.as_ref().unwrap().ssl_key_bytes, "K");

        let view = config_to_source(&cfg);
        assert_eq!(view.password.as_deref(), Some("******"));
        let text = serde_json::to_string(&view).unwrap();
        assert!(
            !text.contains("s3cret") && !text.contains("\"K\""),
            "{text}"
        );
        assert_eq!(
            view.security.unwrap().cert_allowed_cn,
            Some(vec!["x".to_string()])
        );
    }

    #[test]
    fn update_keeps_the_old_password_and_hidden_keys() {
        let mut old = source_to_config(&source(), None).unwrap();
        old.server_id = 4242;
        let mut s = source();
        s.password = None;
        s.port = 3308;
        let cfg = source_to_config(&s, Some(&old)).unwrap();
        assert_eq!(cfg.from.password.expose(), "s3cret");
        assert_eq!(cfg.server_id, 4242);
        assert_eq!(cfg.from.port, 3308);
        s.password = Some("******".into());
        assert_eq!(
            source_to_config(&s, Some(&old))
                .unwrap()
                .from
                .password
                .expose(),
            "s3cret"
        );
        s.password = Some("new".into());
        assert_eq!(
            source_to_config(&s, Some(&old))
                .unwrap()
                .from
                .password
                .expose(),
            "new"
        );
    }

    #[test]
    fn bad_source_lists_every_problem() {
        let mut s = source();
        s.host.clear();
        s.user.clear();
        s.flavor = Some("oracle".into());
        let e = source_to_config(&s, None).unwrap_err();
        assert_eq!(e.class, crate::error::ErrorClass::Config);
        for k in ["from.host", "from.user", "flavor"] {
            assert!(e.message.contains(k), "{k}: {}", e.message);
        }
    }

    fn task_json() -> Value {
        json!({
            "name": "t1", "task_mode": "all", "shard_mode": "pessimistic",
            "meta_schema": "dm_meta", "enhance_online_schema_change": true, "on_duplicate": "error",
            "target_config": {"host": "127.0.0.1", "port": 4000, "user": "root", "password": "pw",
                              "session": {"foreign_key_checks": "1"}},
            "binlog_filter_rule": {"no-drop": {"ignore_event": ["drop table"], "ignore_sql": ["^TRUNCATE"]}},
            "table_migrate_rule": [
                {"source": {"source_name": "s1", "schema": "db_*", "table": "t_*"},
                 "target": {"schema": "db", "table": "t"}, "binlog_filter_rule": ["no-drop"]},
                {"source": {"source_name": "s2", "schema": "db_*", "table": "t_*"},
                 "target": {"schema": "db", "table": "t"}},
                {"source": {"source_name": "s1", "schema": "other", "table": ""}},
            ],
            "source_config": {
                "full_migrate_conf": {"export_threads": 2, "import_threads": 3, "data_dir": "/d", "consistency": "none"},
                "incr_migrate_conf": {"repl_threads": 5, "repl_batch": 50, "safe_mode": true},
                "source_conf": [{"source_name": "s1", "binlog_name": "mysql-bin.000002", "binlog_pos": 4},
                                {"source_name": "s2"}],
            },
            "ignore_checking_items": ["version"],
        })
    }

    #[test]
    fn task_becomes_routes_filters_and_block_allow_lists() {
        let cfg = task_from_request(task_json()).unwrap();
        assert_eq!(cfg.name, "t1");
        assert_eq!(cfg.shard_mode.text(), "pessimistic");
        assert!(cfg.is_sharding);
        assert_eq!(cfg.ignore_checking_items, vec!["version".to_string()]);
        assert_eq!(
            cfg.routes.len(),
            1,
            "equal routes of s1 and s2 share a name"
        );
        let route = &cfg.routes["route-01"];
        assert_eq!(
            (route.target_schema.as_str(), route.target_table.as_str()),
            ("db", "t")
        );
        let filter = &cfg.filters["filter-01"];
        assert_eq!(filter.action, "Ignore");
        assert_eq!(filter.events, vec!["drop table".to_string()]);
        assert_eq!(filter.table_pattern, "t_*");
        let subs = cfg.subtasks();
        let s1 = &subs[0];
        assert_eq!(s1.source_id, "s1");
        assert_eq!(s1.meta.as_ref().unwrap().binlog_name, "mysql-bin.000002");
        let ba = s1.block_allow_list.as_ref().unwrap();
        assert_eq!(ba.do_dbs, vec!["other".to_string()]);
        assert_eq!(ba.do_tables[0].tbl_name, "t_*");
        assert_eq!(s1.filter_rules.len(), 1);
        assert!(subs[1].filter_rules.is_empty());
        assert!(subs[1].meta.is_none());
        assert_eq!(s1.mydumper.threads, 2);
        assert_eq!(s1.mydumper.consistency(), "none");
        assert_eq!(s1.loader.pool_size, 3);
        assert_eq!(s1.loader.on_duplicate(), "error");
        assert_eq!(
            (s1.syncer.worker_count, s1.syncer.batch, s1.syncer.safe_mode),
            (5, 50, true)
        );
        assert_eq!(
            cfg.target_database
                .as_ref()
                .unwrap()
                .session_var("foreign_key_checks")
                .as_deref(),
            Some("1")
        );
    }

    #[test]
    fn task_view_round_trips_through_the_config() {
        let cfg = task_from_request(task_json()).unwrap();
        let view = config_to_task(&cfg);
        assert_eq!(view.target_config.password, "******");
        assert!(!serde_json::to_string(&view).unwrap().contains("\"pw\""));
        let mut body = serde_json::to_value(&view).unwrap();
        body["target_config"]["password"] = json!("pw");
        let again = task_from_request(body).unwrap();
        assert_eq!(again.subtasks(), cfg.subtasks());
        assert_eq!(view.source_config.source_conf[0].binlog_pos, Some(4));
        assert_eq!(
            view.binlog_filter_rule.as_ref().unwrap()["s1-filter-rule-0"].ignore_sql,
            Some(vec!["^TRUNCATE".to_string()])
        );
    }

    #[test]
    fn task_as_yaml_string_is_accepted() {
        let yaml = "name: y1\ntask-mode: incremental\ntarget-database:\n  host: 127.0.0.1\n  port: 3306\n  user: root\nmysql-instances:\n  - source-id: s1\n";
        let cfg = task_from_request(Value::String(yaml.into())).unwrap();
        assert_eq!(cfg.name, "y1");
        let e = task_from_request(Value::String("name: y1\nbogus: 1\n".into())).unwrap_err();
        assert!(e.message.contains("bogus"), "{}", e.message);
    }

    #[test]
    fn a_bad_task_lists_every_problem() {
        let mut body = task_json();
        body["task_mode"] = json!("sometimes");
        body["tabel_migrate_rule"] = json!([]);
        body["table_migrate_rule"][0]["binlog_filter_rule"] = json!(["missing"]);
        body["table_migrate_rule"][1]["source"]["source_name"] = json!("s9");
        let e = task_from_request(body).unwrap_err();
        assert_eq!(e.class, crate::error::ErrorClass::Config);
        for k in [
            "`task.tabel_migrate_rule`",
            "`task.table_migrate_rule[0].binlog_filter_rule[0]`",
            "`task.table_migrate_rule[1].source.source_name`",
            "`task-mode`",
        ] {
            assert!(e.message.contains(k), "{k}: {}", e.message);
        }
    }

    #[test]
    fn status_views_and_error_body() {
        let resp = QueryStatusResponse {
            result: true,
            msg: String::new(),
            source_status: SourceStatusView {
                source: "s1".into(),
                worker: "w1".into(),
                result: None,
            },
            sub_task_status: vec![SubTaskStatusView {
                name: "t1".into(),
                stage: "Paused".into(),
                unit: "Sync".into(),
                result: Some(ProcessResult {
                    is_canceled: false,
                    errors: vec![ProcessError::from(&DmError::bare(
                        &codes::SYNC_EXECUTE_FAILED,
                    ))],
                }),
                sync: Some(SyncStatusView {
                    synced: true,
                    master_binlog: "(mysql-bin.000001, 4)".into(),
                    ..SyncStatusView::default()
                }),
                ..SubTaskStatusView::default()
            }],
        };
        let s = task_status_from_worker("t1", &resp);
        assert_eq!(
            (s.source_name.as_str(), s.worker_name.as_str()),
            ("s1", "w1")
        );
        assert_eq!(s.stage, "Paused");
        assert!(s.sync_status.as_ref().unwrap().synced);
        assert!(
            s.error_msg
                .as_ref()
                .unwrap()
                .starts_with("[code=36905:class=sync-unit")
        );
        let missing = task_status_from_worker("t2", &resp);
        assert!(missing.error_msg.unwrap().contains("no subtask"));

        let body = error_body(&DmError::bare(&codes::MASTER_RATE_LIMITED));
        assert_eq!(body["error_code"], 38901);
        assert!(
            body["error_msg"]
                .as_str()
                .unwrap()
                .starts_with("[code=38901:class=dm-master")
        );
    }
}
