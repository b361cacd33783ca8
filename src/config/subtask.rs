//! A task expanded for one source: the unit configs resolved, the named rules inlined, and
//! (once the source is known) the upstream connection and flavor filled in. The master stores
//! it in etcd as TOML, as DM does; a worker runs it.

use serde::{Deserialize, Serialize};

use super::db::DbConfig;
use super::rules::{BaList, BinlogEventRule, ExpressionFilter, RouteRule};
use super::source::SourceConfig;
use super::task::ShardMode;
use super::task::{
    Experimental, LoaderConfig, Meta, MydumperConfig, SyncerConfig, TaskConfig, TaskMode,
    ValidatorConfig,
};
use crate::error::{DmError, codes};

/// One source's share of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SubTaskConfig {
    pub name: String,
    pub task_mode: TaskMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_mode: Option<ShardMode>,
    pub strict_optimistic_shard_mode: bool,
    pub online_ddl: bool,
    pub shadow_table_rules: Vec<String>,
    pub trash_table_rules: Vec<String>,
    pub case_sensitive: bool,
    #[serde(rename = "collation_compatible")]
    pub collation_compatible: String,
    pub ignore_checking_items: Vec<String>,
    pub meta_schema: String,
    pub timezone: String,
    pub clean_dump_file: bool,
    pub source_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub meta: Option<Meta>,
    // Filled from the source config by `apply_source`.
    #[serde(default)]
    pub flavor: String,
    #[serde(default)]
    pub server_id: u32,
    #[serde(default)]
    pub enable_gtid: bool,
    #[serde(default)]
    pub use_relay: bool,
    #[serde(default)]
    pub relay_dir: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from: Option<DbConfig>,
    pub to: DbConfig,
    pub route_rules: Vec<RouteRule>,
    /// dm-rs: positions in `route_rules` of the rules other sources of the task use too, so
    /// that their targets merge tables of several sources.
    #[serde(default)]
    pub shared_route_rules: Vec<usize>,
    pub filter_rules: Vec<BinlogEventRule>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub block_allow_list: Option<BaList>,
    pub expression_filter: Vec<ExpressionFilter>,
    pub mydumper: MydumperConfig,
    pub loader: LoaderConfig,
    pub syncer: SyncerConfig,
    pub validator: ValidatorConfig,
    pub experimental: Experimental,
}

impl TaskConfig {
    /// Expands a validated task into one subtask per `mysql-instances` item, in file order.
    pub fn subtasks(&self) -> Vec<SubTaskConfig> {
        let to = self.target_database.clone().unwrap_or_default();
        self.mysql_instances
            .iter()
            .map(|inst| {
                let mut mydumper = inst
                    .mydumper
                    .clone()
                    .or_else(|| self.mydumpers.get(&inst.mydumper_config_name).cloned())
                    .unwrap_or_default();
                if inst.mydumper_thread > 0 {
                    mydumper.threads = inst.mydumper_thread;
                }
                let mut loader = inst
                    .loader
                    .clone()
                    .or_else(|| self.loaders.get(&inst.loader_config_name).cloned())
                    .unwrap_or_default();
                if inst.loader_thread > 0 {
                    loader.pool_size = inst.loader_thread;
                }
                // DM keeps each task's dump apart when it dumps itself.
                if self.mode().dumps() {
                    loader.dir = format!("{}.{}", loader.dir.trim_end_matches('/'), self.name);
                }
                let mut syncer = inst
                    .syncer
                    .clone()
                    .or_else(|| self.syncers.get(&inst.syncer_config_name).cloned())
                    .unwrap_or_default();
                if inst.syncer_thread > 0 {
                    syncer.worker_count = inst.syncer_thread;
                }
                let validator = self
                    .validators
                    .get(&inst.validator_config_name)
                    .cloned()
                    .unwrap_or_default();
                SubTaskConfig {
                    name: self.name.clone(),
                    task_mode: self.mode(),
                    shard_mode: self.shard(),
                    strict_optimistic_shard_mode: self.strict_optimistic_shard_mode,
                    online_ddl: self.online_ddl,
                    shadow_table_rules: self.shadow_table_rules.clone(),
                    trash_table_rules: self.trash_table_rules.clone(),
                    case_sensitive: self.case_sensitive,
                    collation_compatible: self.collation_compatible.clone(),
                    ignore_checking_items: self.ignore_checking_items.clone(),
                    meta_schema: self.meta_schema.clone(),
                    timezone: self.timezone.clone(),
                    clean_dump_file: self.clean_dump_file,
                    source_id: inst.source_id.clone(),
                    meta: inst.meta.clone(),
                    flavor: String::new(),
                    server_id: 0,
                    enable_gtid: false,
                    use_relay: false,
                    relay_dir: String::new(),
                    from: None,
                    to: to.clone(),
                    route_rules: pick(&inst.route_rules, &self.routes),
                    shared_route_rules: inst
                        .route_rules
                        .iter()
                        .filter(|n| self.routes.contains_key(*n))
                        .enumerate()
                        .filter(|(_, n)| {
                            self.mysql_instances
                                .iter()
                                .filter(|i| i.route_rules.contains(n))
                                .count()
                                > 1
                        })
                        .map(|(i, _)| i)
                        .collect(),
                    filter_rules: pick(&inst.filter_rules, &self.filters),
                    block_allow_list: self.block_allow_list.get(&inst.block_allow_list).cloned(),
                    expression_filter: pick(&inst.expression_filters, &self.expression_filter),
                    mydumper,
                    loader,
                    syncer,
                    validator,
                    experimental: self.experimental.clone(),
                }
            })
            .collect()
    }
}

/// The rules of `map` named in `names`, in `names`' order (validation checked they exist).
fn pick<T: Clone>(names: &[String], map: &std::collections::BTreeMap<String, T>) -> Vec<T> {
    names.iter().filter_map(|n| map.get(n).cloned()).collect()
}

impl SubTaskConfig {
    /// Fills the upstream side from the source's config. The source's binlog event filters
    /// come first; a task rule with the same schema and table pattern replaces the source's.
    pub fn apply_source(&mut self, src: &SourceConfig) {
        self.from = Some(src.from.clone());
        self.flavor = src.flavor.clone();
        self.server_id = src.server_id;
        self.enable_gtid = src.enable_gtid;
        self.use_relay = src.enable_relay;
        self.relay_dir = src.relay_dir.clone();
        self.case_sensitive = self.case_sensitive || src.case_sensitive;
        let mut merged: Vec<BinlogEventRule> = src
            .filters
            .iter()
            .filter(|s| {
                !self.filter_rules.iter().any(|t| {
                    t.schema_pattern == s.schema_pattern && t.table_pattern == s.table_pattern
                })
            })
            .cloned()
            .collect();
        merged.append(&mut self.filter_rules);
        self.filter_rules = merged;
    }

    /// The TOML form stored in etcd.
    pub fn to_toml(&self) -> Result<String, DmError> {
        toml::to_string(self).map_err(|e| {
            DmError::new(
                &codes::CONFIG_TOML_TRANSFORM,
                format!(
                    "encoding subtask `{}` of source `{}`",
                    self.name, self.source_id
                ),
            )
            .with_cause(e)
        })
    }

    /// Reads the TOML form back.
    pub fn from_toml(text: &str) -> Result<Self, DmError> {
        toml::from_str(text).map_err(|e| {
            DmError::new(&codes::CONFIG_TOML_TRANSFORM, "decoding a subtask config").with_cause(e)
        })
    }
}
