//! `task.yaml`: one migration task over one or more sources, with DM's keys and defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::db::DbConfig;
use super::rules::{BaList, BinlogEventRule, ExpressionFilter, RouteRule, RuleMap};
use super::size::parse_size;
use super::{ConfigDuration, ConfigFile, Issues, Syntax, read_file};
use crate::error::{DmError, ErrorCode, codes};

/// Longest source-id DM accepts (it becomes part of checkpoint keys and table names).
pub const MAX_SOURCE_ID_LEN: usize = 32;

/// What a task does: which units its subtasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskMode {
    /// dump → load → sync
    #[serde(rename = "all")]
    All,
    /// dump → load
    #[serde(rename = "full")]
    Full,
    /// sync only
    #[serde(rename = "incremental")]
    Incremental,
    /// dump only
    #[serde(rename = "dump")]
    Dump,
    /// load only (from an existing dump directory)
    #[serde(rename = "load")]
    Load,
    /// load → sync
    #[serde(rename = "load&sync")]
    LoadSync,
}

impl TaskMode {
    /// Parses DM's names.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "all" => Self::All,
            "full" => Self::Full,
            "incremental" => Self::Incremental,
            "dump" => Self::Dump,
            "load" => Self::Load,
            "load&sync" => Self::LoadSync,
            _ => return None,
        })
    }

    /// DM's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Full => "full",
            Self::Incremental => "incremental",
            Self::Dump => "dump",
            Self::Load => "load",
            Self::LoadSync => "load&sync",
        }
    }

    /// Whether the subtask runs a dump unit.
    pub fn dumps(self) -> bool {
        matches!(self, Self::All | Self::Full | Self::Dump)
    }

    /// Whether the subtask runs a load unit.
    pub fn loads(self) -> bool {
        matches!(self, Self::All | Self::Full | Self::Load | Self::LoadSync)
    }

    /// Whether the subtask runs a sync unit.
    pub fn syncs(self) -> bool {
        matches!(self, Self::All | Self::Incremental | Self::LoadSync)
    }
}

/// How shard DDL is coordinated across the upstream tables merged into one target table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardMode {
    Pessimistic,
    Optimistic,
}

/// A keyword a setting takes (`task-mode`, `shard-mode`).
pub trait KeywordValue: Copy {
    /// The value named `s`, if known.
    fn parse(s: &str) -> Option<Self>;
    /// Its name in the file.
    fn name(self) -> &'static str;
}

impl KeywordValue for TaskMode {
    fn parse(s: &str) -> Option<Self> {
        TaskMode::parse(s)
    }
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// `shard-mode`: empty means no shard DDL coordination.
impl KeywordValue for Option<ShardMode> {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "" => Some(None),
            "pessimistic" => Some(Some(ShardMode::Pessimistic)),
            "optimistic" => Some(Some(ShardMode::Optimistic)),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            None => "",
            Some(ShardMode::Pessimistic) => "pessimistic",
            Some(ShardMode::Optimistic) => "optimistic",
        }
    }
}

/// A keyword setting as the file wrote it: a value dm-rs knows, or text that validation
/// refuses with the setting's own error code. (Failing the deserialization instead would stop
/// the parse at the first bad keyword, and one error could no longer list every problem of
/// the file.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyword<T> {
    Known(T),
    Unknown(String),
}

impl<T: KeywordValue> Keyword<T> {
    /// The value, when known (always, once validated).
    pub fn known(&self) -> Option<T> {
        match self {
            Keyword::Known(t) => Some(*t),
            Keyword::Unknown(_) => None,
        }
    }

    /// The text as written.
    pub fn text(&self) -> &str {
        match self {
            Keyword::Known(t) => t.name(),
            Keyword::Unknown(s) => s,
        }
    }
}

impl<T: KeywordValue> From<&str> for Keyword<T> {
    fn from(s: &str) -> Self {
        match T::parse(s) {
            Some(t) => Keyword::Known(t),
            None => Keyword::Unknown(s.to_string()),
        }
    }
}

impl<T: KeywordValue> Serialize for Keyword<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text())
    }
}

impl<'de, T: KeywordValue> Deserialize<'de> for Keyword<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Keyword::from(s.as_str()))
    }
}

/// `meta` of a `mysql-instances` item: where an incremental task starts without a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Meta {
    pub binlog_name: String,
    pub binlog_pos: u32,
    pub binlog_gtid: String,
}

/// `mydumpers.<name>` / `mysql-instances[].mydumper`: the dump unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct MydumperConfig {
    /// Legacy mydumper binary path; accepted and unused (dm-rs dumps by itself).
    pub mydumper_path: String,
    pub threads: u32,
    /// Target size of one data file; a bare number is MiB.
    pub chunk_filesize: String,
    /// Bytes of one INSERT statement in the dump files (0 = 1 MB).
    pub statement_size: u64,
    /// Rows per chunk when a table splits by key ranges (0 = DM's 200000).
    pub rows: u64,
    #[serde(rename = "where")]
    pub where_clause: String,
    pub skip_tz_utc: bool,
    /// Dumpling-style flags (`--consistency flush`, `-B db`, `-T db.t`, `--no-locks`).
    pub extra_args: String,
}

impl Default for MydumperConfig {
    fn default() -> Self {
        Self {
            mydumper_path: String::new(),
            threads: 4,
            chunk_filesize: "64".into(),
            statement_size: 0,
            rows: 0,
            where_clause: String::new(),
            skip_tz_utc: true,
            extra_args: String::new(),
        }
    }
}

/// Rows per chunk DM uses when `rows` is unset.
pub const DEFAULT_DUMP_ROWS: u64 = 200_000;

impl MydumperConfig {
    fn validate(&self, key: &str, issues: &mut Issues) {
        if self.threads == 0 {
            issues.push(
                format!("{key}.threads"),
                &codes::CONFIG_INVALID_VALUE,
                "threads must be at least 1",
            );
        }
        if let Err(e) = parse_size(&self.chunk_filesize, 1 << 20) {
            issues.push(
                format!("{key}.chunk-filesize"),
                &codes::CONFIG_INVALID_CHUNK_FILE_SIZE,
                e,
            );
        }
    }

    /// Effective rows per chunk.
    pub fn rows_per_chunk(&self) -> u64 {
        if self.rows == 0 {
            DEFAULT_DUMP_ROWS
        } else {
            self.rows
        }
    }

    /// `--consistency` from `extra-args`, `auto` when not given.
    pub fn consistency(&self) -> String {
        let args: Vec<&str> = self.extra_args.split_whitespace().collect();
        for (i, a) in args.iter().enumerate() {
            if let Some(v) = a.strip_prefix("--consistency=") {
                return v.to_string();
            }
            if *a == "--consistency"
                && let Some(v) = args.get(i + 1)
            {
                return v.to_string();
            }
        }
        "auto".into()
    }
}

/// `loaders.<name>` / `mysql-instances[].loader`: the load unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct LoaderConfig {
    pub pool_size: u32,
    pub dir: String,
    pub sql_mode: String,
    pub import_mode: String,
    /// Deprecated alias of `on-duplicate-logical`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub on_duplicate: String,
    pub on_duplicate_logical: String,
    pub on_duplicate_physical: String,
    pub disk_quota_physical: String,
    pub checksum_physical: String,
    pub analyze: String,
    pub range_concurrency: u32,
    pub compress_kv_pairs: String,
    pub pd_addr: String,
    pub sorting_dir_physical: String,
    /// dm-rs: how rows reach the target in the logical import: `auto` (LOAD DATA LOCAL INFILE
    /// when the target is MySQL/MariaDB with `local_infile` on, else INSERT), `load-data` or
    /// `insert`.
    pub data_statement: String,
    /// dm-rs: create tables the load creates without their non-unique secondary indexes and
    /// add them after the table's rows are loaded (faster on InnoDB).
    pub defer_secondary_indexes: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            pool_size: 16,
            dir: "./dumped_data".into(),
            sql_mode: String::new(),
            import_mode: "logical".into(),
            on_duplicate: String::new(),
            on_duplicate_logical: "replace".into(),
            on_duplicate_physical: "none".into(),
            disk_quota_physical: String::new(),
            checksum_physical: "required".into(),
            analyze: "optional".into(),
            range_concurrency: 0,
            compress_kv_pairs: String::new(),
            pd_addr: String::new(),
            sorting_dir_physical: String::new(),
            data_statement: "auto".into(),
            defer_secondary_indexes: true,
        }
    }
}

impl LoaderConfig {
    fn validate(&self, key: &str, issues: &mut Issues) {
        if self.pool_size == 0 {
            issues.push(
                format!("{key}.pool-size"),
                &codes::CONFIG_INVALID_VALUE,
                "pool-size must be at least 1",
            );
        }
        match self.import_mode.to_ascii_lowercase().as_str() {
            "" | "logical" | "sql" | "loader" => {}
            m @ ("physical" | "import-into") => issues.push(
                format!("{key}.import-mode"),
                &codes::CONFIG_FEATURE_NOT_SUPPORTED,
                format!("import-mode `{m}` needs TiDB Lightning's TiDB-only backends, which dm-rs does not have; use `logical`"),
            ),
            m => issues.push(format!("{key}.import-mode"), &codes::CONFIG_INVALID_LOAD_MODE, format!("unknown import-mode `{m}`")),
        }
        if !["", "auto", "load-data", "insert"].contains(&self.data_statement.as_str()) {
            issues.push(
                format!("{key}.data-statement"),
                &codes::CONFIG_INVALID_VALUE,
                format!(
                    "`{}` is not one of auto, load-data, insert",
                    self.data_statement
                ),
            );
        }
        let dup = if self.on_duplicate_logical.is_empty() {
            &self.on_duplicate
        } else {
            &self.on_duplicate_logical
        };
        if !["", "replace", "error", "ignore"].contains(&dup.to_ascii_lowercase().as_str()) {
            issues.push(
                format!("{key}.on-duplicate-logical"),
                &codes::CONFIG_INVALID_LOAD_DUPLICATE_RESOLUTION,
                format!("`{dup}` is not one of replace, error, ignore"),
            );
        }
        if !["", "none", "manual"].contains(&self.on_duplicate_physical.as_str()) {
            issues.push(
                format!("{key}.on-duplicate-physical"),
                &codes::CONFIG_INVALID_LOAD_PHYSICAL_DUPLICATE_RESOLUTION,
                format!(
                    "`{}` is not one of none, manual",
                    self.on_duplicate_physical
                ),
            );
        }
        for (field, v, code) in [
            (
                "checksum-physical",
                &self.checksum_physical,
                &codes::CONFIG_INVALID_LOAD_PHYSICAL_CHECKSUM,
            ),
            (
                "analyze",
                &self.analyze,
                &codes::CONFIG_INVALID_LOAD_ANALYZE,
            ),
        ] {
            if !["", "required", "optional", "off"].contains(&v.as_str()) {
                issues.push(
                    format!("{key}.{field}"),
                    code,
                    format!("`{v}` is not one of required, optional, off"),
                );
            }
        }
        let lower = self.dir.to_ascii_lowercase();
        if ["s3://", "gs://", "gcs://", "azure://", "azblob://"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            issues.push(
                format!("{key}.dir"),
                &codes::CONFIG_LOADER_S3_NOT_SUPPORT,
                format!(
                    "`{}` is object storage; dm-rs loads from local directories",
                    self.dir
                ),
            );
        } else if self.dir.trim().is_empty() {
            issues.push(
                format!("{key}.dir"),
                &codes::CONFIG_LOADER_DIR_INVALID,
                "dir is empty",
            );
        }
    }

    /// The effective on-duplicate behaviour: `replace`, `error` or `ignore`.
    pub fn on_duplicate(&self) -> String {
        let v = if self.on_duplicate_logical.is_empty() {
            &self.on_duplicate
        } else {
            &self.on_duplicate_logical
        };
        if v.is_empty() {
            "replace".into()
        } else {
            v.to_ascii_lowercase()
        }
    }
}

/// `syncers.<name>` / `mysql-instances[].syncer`: the sync unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct SyncerConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub meta_file: String,
    pub worker_count: u32,
    pub batch: u32,
    pub queue_size: u32,
    /// Seconds between checkpoint flushes (an integer in DM).
    pub checkpoint_flush_interval: u64,
    pub compact: bool,
    pub multiple_rows: bool,
    pub safe_mode: bool,
    /// Safe mode after every start; empty means twice `checkpoint-flush-interval`.
    pub safe_mode_duration: ConfigDuration,
    /// Deprecated keys, accepted and ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retry: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_fix_gtid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_gtid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_detect: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ansi_quotes: Option<bool>,
}

impl Default for SyncerConfig {
    fn default() -> Self {
        Self {
            meta_file: String::new(),
            worker_count: 16,
            batch: 100,
            queue_size: 1024,
            checkpoint_flush_interval: 30,
            compact: false,
            multiple_rows: false,
            safe_mode: false,
            safe_mode_duration: ConfigDuration::from_text(""),
            max_retry: None,
            auto_fix_gtid: None,
            enable_gtid: None,
            disable_detect: None,
            enable_ansi_quotes: None,
        }
    }
}

impl SyncerConfig {
    fn validate(&self, key: &str, issues: &mut Issues) {
        for (field, v) in [
            ("worker-count", self.worker_count),
            ("batch", self.batch),
            ("queue-size", self.queue_size),
        ] {
            if v == 0 {
                issues.push(
                    format!("{key}.{field}"),
                    &codes::CONFIG_INVALID_VALUE,
                    format!("{field} must be at least 1"),
                );
            }
        }
        if self.checkpoint_flush_interval == 0 {
            issues.push(
                format!("{key}.checkpoint-flush-interval"),
                &codes::CONFIG_INVALID_VALUE,
                "checkpoint-flush-interval must be at least 1 second",
            );
        }
        if !self.safe_mode_duration.is_empty() {
            match self.safe_mode_duration.check() {
                Err(e) => issues.push(
                    format!("{key}.safe-mode-duration"),
                    &codes::CONFIG_INVALID_SAFE_MODE_DURATION,
                    e,
                ),
                Ok(d) if d.is_zero() && self.safe_mode => issues.push(
                    format!("{key}.safe-mode-duration"),
                    &codes::CONFIG_CONFLICT_SAFE_MODE_DURATION_AND_SAFE_MODE,
                    "safe-mode is true but safe-mode-duration is 0s",
                ),
                Ok(_) => {}
            }
        }
    }

    /// Checkpoint flush interval.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_secs(self.checkpoint_flush_interval)
    }

    /// Safe mode after every start (DM: twice the flush interval unless set).
    pub fn safe_mode_window(&self) -> Duration {
        if self.safe_mode_duration.is_empty() {
            2 * self.flush_interval()
        } else {
            self.safe_mode_duration.get()
        }
    }
}

/// `validators.<name>`: the continuous validator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ValidatorConfig {
    pub mode: String,
    pub worker_count: u32,
    pub row_error_delay: ConfigDuration,
    pub validate_interval: ConfigDuration,
    pub check_interval: ConfigDuration,
    pub meta_flush_interval: ConfigDuration,
    pub batch_query_size: u32,
    pub max_pending_row_size: String,
    pub max_pending_row_count: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub start_time: String,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        Self {
            mode: "none".into(),
            worker_count: 4,
            row_error_delay: ConfigDuration::new(Duration::from_secs(30 * 60)),
            validate_interval: ConfigDuration::new(Duration::from_secs(10)),
            check_interval: ConfigDuration::new(Duration::from_secs(5)),
            meta_flush_interval: ConfigDuration::new(Duration::from_secs(5 * 60)),
            batch_query_size: 100,
            max_pending_row_size: "500m".into(),
            max_pending_row_count: i32::MAX as u64,
            start_time: String::new(),
        }
    }
}

impl ValidatorConfig {
    fn validate(&self, key: &str, issues: &mut Issues) {
        if !["none", "fast", "full"].contains(&self.mode.as_str()) {
            issues.push(
                format!("{key}.mode"),
                &codes::CONFIG_VALIDATION_MODE,
                format!("`{}` is not one of none, fast, full", self.mode),
            );
        }
        for (field, d) in [
            ("row-error-delay", &self.row_error_delay),
            ("validate-interval", &self.validate_interval),
            ("check-interval", &self.check_interval),
            ("meta-flush-interval", &self.meta_flush_interval),
        ] {
            issues.check_duration(
                &format!("{key}.{field}"),
                d,
                &codes::CONFIG_INVALID_DURATION,
            );
        }
        if let Err(e) = parse_size(&self.max_pending_row_size, 1) {
            issues.push(
                format!("{key}.max-pending-row-size"),
                &codes::CONFIG_INVALID_VALUE,
                e,
            );
        }
        if self.worker_count == 0 {
            issues.push(
                format!("{key}.worker-count"),
                &codes::CONFIG_INVALID_VALUE,
                "worker-count must be at least 1",
            );
        }
    }
}

/// One item of `mysql-instances`: a source taking part in the task and the rules it uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct MySqlInstance {
    pub source_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    pub filter_rules: Vec<String>,
    /// Deprecated (column mapping was removed from DM); non-empty is an error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub column_mapping_rules: Vec<String>,
    pub route_rules: Vec<String>,
    pub expression_filters: Vec<String>,
    /// Deprecated alias of `block-allow-list`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub black_white_list: String,
    pub block_allow_list: String,
    pub mydumper_config_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mydumper: Option<MydumperConfig>,
    pub mydumper_thread: u32,
    pub loader_config_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loader: Option<LoaderConfig>,
    pub loader_thread: u32,
    pub syncer_config_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syncer: Option<SyncerConfig>,
    pub syncer_thread: u32,
    pub validator_config_name: String,
}

/// `online-ddl` table name rules and experimental switches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Experimental {
    pub async_checkpoint_flush: bool,
}

/// A whole `task.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct TaskConfig {
    pub name: String,
    pub task_mode: Keyword<TaskMode>,
    /// Legacy switch: `true` with an empty `shard-mode` means pessimistic.
    pub is_sharding: bool,
    pub shard_mode: Keyword<Option<ShardMode>>,
    pub strict_optimistic_shard_mode: bool,
    pub ignore_checking_items: Vec<String>,
    pub meta_schema: String,
    pub timezone: String,
    pub case_sensitive: bool,
    #[serde(rename = "collation_compatible")]
    pub collation_compatible: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_database: Option<DbConfig>,
    pub online_ddl: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub online_ddl_scheme: String,
    pub shadow_table_rules: Vec<String>,
    pub trash_table_rules: Vec<String>,
    pub routes: RuleMap<RouteRule>,
    pub filters: RuleMap<BinlogEventRule>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub column_mappings: RuleMap<serde_yaml_ng::Value>,
    pub expression_filter: RuleMap<ExpressionFilter>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub black_white_list: RuleMap<BaList>,
    pub block_allow_list: RuleMap<BaList>,
    pub mydumpers: RuleMap<MydumperConfig>,
    pub loaders: RuleMap<LoaderConfig>,
    pub syncers: RuleMap<SyncerConfig>,
    pub validators: RuleMap<ValidatorConfig>,
    pub mysql_instances: Vec<MySqlInstance>,
    pub clean_dump_file: bool,
    pub experimental: Experimental,
    /// Deprecated keys, accepted and ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_heartbeat: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_update_interval: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_report_interval: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ansi_quotes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_meta: Option<bool>,
}

/// gh-ost and pt-osc ghost table names, DM's defaults.
pub const DEFAULT_SHADOW_TABLE_RULES: &[&str] = &["^_(.+)_(?:new|gho)$"];
/// gh-ost and pt-osc trash table names, DM's defaults.
pub const DEFAULT_TRASH_TABLE_RULES: &[&str] = &["^_(.+)_(?:ghc|del|old)$"];

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            task_mode: Keyword::Unknown(String::new()),
            is_sharding: false,
            shard_mode: Keyword::Known(None),
            strict_optimistic_shard_mode: false,
            ignore_checking_items: Vec::new(),
            meta_schema: "dm_meta".into(),
            timezone: String::new(),
            case_sensitive: false,
            collation_compatible: "loose".into(),
            target_database: None,
            online_ddl: true,
            online_ddl_scheme: String::new(),
            shadow_table_rules: Vec::new(),
            trash_table_rules: Vec::new(),
            routes: BTreeMap::new(),
            filters: BTreeMap::new(),
            column_mappings: BTreeMap::new(),
            expression_filter: BTreeMap::new(),
            black_white_list: BTreeMap::new(),
            block_allow_list: BTreeMap::new(),
            mydumpers: BTreeMap::new(),
            loaders: BTreeMap::new(),
            syncers: BTreeMap::new(),
            validators: BTreeMap::new(),
            mysql_instances: Vec::new(),
            clean_dump_file: true,
            experimental: Experimental::default(),
            enable_heartbeat: None,
            heartbeat_update_interval: None,
            heartbeat_report_interval: None,
            ansi_quotes: None,
            remove_meta: None,
        }
    }
}

/// Checks a `timezone` value: empty, `SYSTEM`, `UTC`, an offset `±hh:mm`, or an IANA name.
pub fn check_timezone(tz: &str) -> Result<(), String> {
    if tz.is_empty() || tz.eq_ignore_ascii_case("system") || tz.eq_ignore_ascii_case("utc") {
        return Ok(());
    }
    let offset = regex::Regex::new(r"^[+-](0?[0-9]|1[0-4]):[0-5][0-9]$").expect("static regex");
    let name =
        regex::Regex::new(r"^[A-Za-z][A-Za-z_+\-]*(/[A-Za-z0-9_+\-]+)*$").expect("static regex");
    if offset.is_match(tz) || name.is_match(tz) {
        Ok(())
    } else {
        Err(format!(
            "`{tz}` is neither an offset like +08:00 nor a zone name like Asia/Shanghai"
        ))
    }
}

impl ConfigFile for TaskConfig {
    const KIND: &'static str = "task config";
    const SYNTAX: Syntax = Syntax::Yaml;
    const UNKNOWN_KEY: &'static ErrorCode = &codes::CONFIG_UNKNOWN_KEY;
    const INVALID: &'static ErrorCode = &codes::CONFIG_YAML_TRANSFORM;

    fn validate(&self, issues: &mut Issues) {
        self.check(issues);
    }

    fn finish(&mut self) {
        self.adjust_defaults();
    }
}

impl TaskConfig {
    /// Reads, parses and validates a task file; one error lists every problem.
    pub fn load(path: &Path) -> Result<Self, DmError> {
        let text = read_file(path)?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates task YAML; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, DmError> {
        Self::parse_checked(text, file, |_| {})
    }

    /// The task-mode (valid after validation).
    pub fn mode(&self) -> TaskMode {
        self.task_mode.known().unwrap_or(TaskMode::All)
    }

    /// The shard mode, with the legacy `is-sharding` folded in.
    pub fn shard(&self) -> Option<ShardMode> {
        match self.shard_mode.known() {
            Some(Some(m)) => Some(m),
            _ if self.is_sharding => Some(ShardMode::Pessimistic),
            _ => None,
        }
    }

    /// Folds aliases and deprecated keys into their current form (after validation).
    fn adjust_defaults(&mut self) {
        if self.shard_mode == Keyword::Known(None) && self.is_sharding {
            self.shard_mode = Keyword::Known(Some(ShardMode::Pessimistic));
        }
        self.is_sharding = self.shard().is_some();
        if self.block_allow_list.is_empty() && !self.black_white_list.is_empty() {
            self.block_allow_list = std::mem::take(&mut self.black_white_list);
        }
        for inst in &mut self.mysql_instances {
            if inst.block_allow_list.is_empty() && !inst.black_white_list.is_empty() {
                inst.block_allow_list = std::mem::take(&mut inst.black_white_list);
            }
        }
        if !self.online_ddl_scheme.is_empty() {
            self.online_ddl = true;
        }
        if self.shadow_table_rules.is_empty() {
            self.shadow_table_rules = DEFAULT_SHADOW_TABLE_RULES
                .iter()
                .map(|s| s.to_string())
                .collect();
        }
        if self.trash_table_rules.is_empty() {
            self.trash_table_rules = DEFAULT_TRASH_TABLE_RULES
                .iter()
                .map(|s| s.to_string())
                .collect();
        }
    }

    /// Pushes every problem of the task into `issues`.
    fn check(&self, issues: &mut Issues) {
        if self.name.trim().is_empty() {
            issues.push("name", &codes::CONFIG_TASK_NAME_EMPTY, "task name is empty");
        }
        if let Keyword::Unknown(m) = &self.task_mode {
            issues.push(
                "task-mode",
                &codes::CONFIG_INVALID_TASK_MODE,
                format!("`{m}` is not one of all, full, incremental, dump, load, load&sync"),
            );
        }
        if let Keyword::Unknown(m) = &self.shard_mode {
            issues.push(
                "shard-mode",
                &codes::CONFIG_SHARD_MODE_NOT_SUPPORT,
                format!("`{m}` is not pessimistic or optimistic"),
            );
        }
        if self.strict_optimistic_shard_mode && self.shard() != Some(ShardMode::Optimistic) {
            issues.push(
                "strict-optimistic-shard-mode",
                &codes::CONFIG_STRICT_OPTIMISTIC_SHARD_MODE,
                "needs shard-mode optimistic",
            );
        }
        for (i, item) in self.ignore_checking_items.iter().enumerate() {
            if !super::checking::CheckingItem::parse(item).is_some_and(|c| c.ignorable()) {
                issues.push(
                    format!("ignore-checking-items[{i}]"),
                    &codes::CONFIG_CHECK_ITEM_NOT_SUPPORT,
                    format!("unknown checking item `{item}`"),
                );
            }
        }
        if self.meta_schema.trim().is_empty() {
            issues.push(
                "meta-schema",
                &codes::CONFIG_MISSING_KEY,
                "meta-schema is empty",
            );
        }
        if let Err(e) = check_timezone(&self.timezone) {
            issues.push("timezone", &codes::CONFIG_INVALID_TIMEZONE, e);
        }
        if !["loose", "strict"].contains(&self.collation_compatible.as_str()) {
            issues.push(
                "collation_compatible",
                &codes::CONFIG_COLLATION_COMPATIBLE_NOT_SUPPORT,
                format!("`{}` is not loose or strict", self.collation_compatible),
            );
        }
        if !self.online_ddl_scheme.is_empty()
            && !["gh-ost", "pt"].contains(&self.online_ddl_scheme.as_str())
        {
            issues.push(
                "online-ddl-scheme",
                &codes::CONFIG_ONLINE_SCHEME_NOT_SUPPORT,
                format!("`{}` is not gh-ost or pt", self.online_ddl_scheme),
            );
        }
        for (field, rules) in [
            ("shadow-table-rules", &self.shadow_table_rules),
            ("trash-table-rules", &self.trash_table_rules),
        ] {
            for (i, r) in rules.iter().enumerate() {
                match regex::Regex::new(r) {
                    Err(e) => issues.push(
                        format!("{field}[{i}]"),
                        &codes::CONFIG_ONLINE_DDL_INVALID_REGEX,
                        format!(
                            "bad regular expression `{r}`: {}",
                            e.to_string().lines().last().unwrap_or("").trim()
                        ),
                    ),
                    Ok(re) if re.captures_len() != 2 => issues.push(
                        format!("{field}[{i}]"),
                        &codes::CONFIG_ONLINE_DDL_INVALID_REGEX,
                        format!("`{r}` must have exactly one capture group"),
                    ),
                    Ok(_) => {}
                }
            }
        }
        match &self.target_database {
            None => issues.push(
                "target-database",
                &codes::CONFIG_NEED_TARGET_DB,
                "target-database is missing",
            ),
            Some(db) => db.validate("target-database", issues),
        }
        if !self.column_mappings.is_empty() {
            issues.push(
                "column-mappings",
                &codes::CONFIG_COLUMN_MAPPING_DEPRECATED,
                "column-mappings is no longer supported",
            );
        }
        if !self.black_white_list.is_empty() && !self.block_allow_list.is_empty() {
            issues.push(
                "black-white-list",
                &codes::CONFIG_INVALID_VALUE,
                "black-white-list is the old name of block-allow-list; set only one of them",
            );
        }
        for (n, r) in &self.routes {
            r.validate(&format!("routes.{n}"), issues);
        }
        for (n, r) in &self.filters {
            r.validate(&format!("filters.{n}"), issues);
        }
        for (n, r) in &self.expression_filter {
            r.validate(&format!("expression-filter.{n}"), issues);
        }
        for (field, lists) in [
            ("block-allow-list", &self.block_allow_list),
            ("black-white-list", &self.black_white_list),
        ] {
            for (n, r) in lists {
                r.validate(&format!("{field}.{n}"), issues);
            }
        }
        for (n, c) in &self.mydumpers {
            c.validate(&format!("mydumpers.{n}"), issues);
        }
        for (n, c) in &self.loaders {
            c.validate(&format!("loaders.{n}"), issues);
        }
        for (n, c) in &self.syncers {
            c.validate(&format!("syncers.{n}"), issues);
            self.check_foreign_key_options(&format!("syncers.{n}"), c, issues);
        }
        for (n, c) in &self.validators {
            c.validate(&format!("validators.{n}"), issues);
        }
        self.validate_instances(issues);
    }

    fn check_foreign_key_options(&self, key: &str, c: &SyncerConfig, issues: &mut Issues) {
        let fk_on = self
            .target_database
            .as_ref()
            .and_then(|db| db.session_var("foreign_key_checks"))
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("on"));
        if !fk_on {
            return;
        }
        for (field, on) in [("compact", c.compact), ("multiple-rows", c.multiple_rows)] {
            if on {
                issues.push(
                    format!("{key}.{field}"),
                    &codes::CONFIG_FOREIGN_KEY_CHECKS_OPTION,
                    format!("`{field}` cannot be used with foreign_key_checks=1"),
                );
            }
        }
    }

    fn validate_instances(&self, issues: &mut Issues) {
        if self.mysql_instances.is_empty() {
            issues.push(
                "mysql-instances",
                &codes::CONFIG_MYSQL_INSTS_AT_LEAST_ONE,
                "no mysql-instances item",
            );
        }
        let ba_lists = if self.block_allow_list.is_empty() {
            &self.black_white_list
        } else {
            &self.block_allow_list
        };
        let mut used: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut seen_ids: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, inst) in self.mysql_instances.iter().enumerate() {
            let key = format!("mysql-instances[{i}]");
            let id = inst.source_id.as_str();
            if id.is_empty() {
                issues.push(
                    format!("{key}.source-id"),
                    &codes::CONFIG_EMPTY_SOURCE_ID,
                    "source-id is empty",
                );
            } else if id.chars().count() > MAX_SOURCE_ID_LEN {
                issues.push(
                    format!("{key}.source-id"),
                    &codes::CONFIG_TOO_LONG_SOURCE_ID,
                    format!(
                        "source-id `{id}` has {} characters, at most {MAX_SOURCE_ID_LEN} allowed",
                        id.chars().count()
                    ),
                );
            } else if let Some(first) = seen_ids.insert(id, i) {
                issues.push(
                    format!("{key}.source-id"),
                    &codes::CONFIG_MYSQL_INST_SAME_SOURCE_ID,
                    format!("source-id `{id}` is also used by mysql-instances[{first}]"),
                );
            }
            if let Some(meta) = &inst.meta {
                if meta.binlog_name.is_empty() && meta.binlog_gtid.is_empty() {
                    issues.push(
                        format!("{key}.meta"),
                        &codes::CONFIG_META_INVALID,
                        "meta sets neither binlog-name nor binlog-gtid",
                    );
                }
                if !meta.binlog_gtid.is_empty()
                    && let Err(e) = crate::binlog::gtid::GtidSet::parse_any(&meta.binlog_gtid)
                {
                    issues.push(format!("{key}.meta.binlog-gtid"), &codes::PARSE_GTID, e);
                }
            }
            if !inst.column_mapping_rules.is_empty() {
                issues.push(
                    format!("{key}.column-mapping-rules"),
                    &codes::CONFIG_COLUMN_MAPPING_DEPRECATED,
                    "column-mapping-rules is no longer supported",
                );
            }
            let refs: [(&str, &[String], Vec<&str>, &'static crate::error::ErrorCode); 3] = [
                (
                    "route-rules",
                    &inst.route_rules,
                    self.routes.keys().map(String::as_str).collect(),
                    &codes::CONFIG_ROUTE_RULE_NOT_FOUND,
                ),
                (
                    "filter-rules",
                    &inst.filter_rules,
                    self.filters.keys().map(String::as_str).collect(),
                    &codes::CONFIG_FILTER_RULE_NOT_FOUND,
                ),
                (
                    "expression-filters",
                    &inst.expression_filters,
                    self.expression_filter.keys().map(String::as_str).collect(),
                    &codes::CONFIG_EXPR_FILTER_NOT_FOUND,
                ),
            ];
            for (field, names, defined, code) in refs {
                let section = match field {
                    "route-rules" => "routes",
                    "filter-rules" => "filters",
                    _ => "expression-filter",
                };
                let mut dup = BTreeSet::new();
                for (j, n) in names.iter().enumerate() {
                    if !defined.contains(&n.as_str()) {
                        issues.push(
                            format!("{key}.{field}[{j}]"),
                            code,
                            format!("`{n}` is not defined in `{section}`"),
                        );
                    } else if !dup.insert(n.as_str()) {
                        issues.push(
                            format!("{key}.{field}[{j}]"),
                            &codes::CONFIG_INVALID_VALUE,
                            format!("`{n}` is listed twice"),
                        );
                    }
                    used.entry(section).or_default().insert(n.as_str());
                }
            }
            if !inst.block_allow_list.is_empty() && !inst.black_white_list.is_empty() {
                issues.push(
                    format!("{key}.black-white-list"),
                    &codes::CONFIG_INVALID_VALUE,
                    "black-white-list is the old name of block-allow-list; set only one of them",
                );
            }
            let (ba_field, ba) = if inst.block_allow_list.is_empty() {
                ("black-white-list", &inst.black_white_list)
            } else {
                ("block-allow-list", &inst.block_allow_list)
            };
            if !ba.is_empty() {
                if !ba_lists.contains_key(ba) {
                    issues.push(
                        format!("{key}.{ba_field}"),
                        &codes::CONFIG_BA_LIST_NOT_FOUND,
                        format!("`{ba}` is not defined in `block-allow-list`"),
                    );
                }
                used.entry("block-allow-list")
                    .or_default()
                    .insert(ba.as_str());
            }
            self.check_unit_ref(
                issues,
                &key,
                "mydumper",
                &inst.mydumper_config_name,
                inst.mydumper.is_some(),
                self.mydumpers.contains_key(&inst.mydumper_config_name),
                &codes::CONFIG_MYDUMPER_CFG_CONFLICT,
                &codes::CONFIG_MYDUMPER_CFG_NOT_FOUND,
                "mydumpers",
                &mut used,
            );
            self.check_unit_ref(
                issues,
                &key,
                "loader",
                &inst.loader_config_name,
                inst.loader.is_some(),
                self.loaders.contains_key(&inst.loader_config_name),
                &codes::CONFIG_LOADER_CFG_CONFLICT,
                &codes::CONFIG_LOADER_CFG_NOT_FOUND,
                "loaders",
                &mut used,
            );
            self.check_unit_ref(
                issues,
                &key,
                "syncer",
                &inst.syncer_config_name,
                inst.syncer.is_some(),
                self.syncers.contains_key(&inst.syncer_config_name),
                &codes::CONFIG_SYNCER_CFG_CONFLICT,
                &codes::CONFIG_SYNCER_CFG_NOT_FOUND,
                "syncers",
                &mut used,
            );
            if !inst.validator_config_name.is_empty() {
                if !self.validators.contains_key(&inst.validator_config_name) {
                    issues.push(
                        format!("{key}.validator-config-name"),
                        &codes::CONFIG_VALIDATOR_CFG_NOT_FOUND,
                        format!(
                            "`{}` is not defined in `validators`",
                            inst.validator_config_name
                        ),
                    );
                }
                used.entry("validators")
                    .or_default()
                    .insert(inst.validator_config_name.as_str());
            }
            if let Some(c) = &inst.mydumper {
                c.validate(&format!("{key}.mydumper"), issues);
            }
            if let Some(c) = &inst.loader {
                c.validate(&format!("{key}.loader"), issues);
            }
            if let Some(c) = &inst.syncer {
                c.validate(&format!("{key}.syncer"), issues);
                self.check_foreign_key_options(&format!("{key}.syncer"), c, issues);
            }
        }
        // DM rejects global rules no instance uses: they are usually a misspelt reference.
        let globals: [(&str, Vec<&str>); 8] = [
            ("routes", self.routes.keys().map(String::as_str).collect()),
            ("filters", self.filters.keys().map(String::as_str).collect()),
            (
                "expression-filter",
                self.expression_filter.keys().map(String::as_str).collect(),
            ),
            (
                "block-allow-list",
                ba_lists.keys().map(String::as_str).collect(),
            ),
            (
                "mydumpers",
                self.mydumpers.keys().map(String::as_str).collect(),
            ),
            ("loaders", self.loaders.keys().map(String::as_str).collect()),
            ("syncers", self.syncers.keys().map(String::as_str).collect()),
            (
                "validators",
                self.validators.keys().map(String::as_str).collect(),
            ),
        ];
        for (section, names) in globals {
            for n in names {
                if !used.get(section).is_some_and(|u| u.contains(n)) {
                    issues.push(
                        format!("{section}.{n}"),
                        &codes::CONFIG_GLOBAL_CONFIGS_UNUSED,
                        format!("`{n}` is defined but no mysql-instances item uses it"),
                    );
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_unit_ref<'a>(
        &self,
        issues: &mut Issues,
        key: &str,
        unit: &str,
        name: &'a str,
        inline: bool,
        defined: bool,
        conflict: &'static crate::error::ErrorCode,
        not_found: &'static crate::error::ErrorCode,
        section: &'static str,
        used: &mut BTreeMap<&'static str, BTreeSet<&'a str>>,
    ) {
        if name.is_empty() {
            return;
        }
        if inline {
            issues.push(
                format!("{key}.{unit}-config-name"),
                conflict,
                format!("both `{unit}-config-name` and `{unit}` are set"),
            );
        }
        if !defined {
            issues.push(
                format!("{key}.{unit}-config-name"),
                not_found,
                format!("`{name}` is not defined in `{section}`"),
            );
        }
        used.entry(section).or_default().insert(name);
    }
}
