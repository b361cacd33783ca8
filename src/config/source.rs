//! `source.yaml`: one upstream MySQL/MariaDB server (or replica group), with DM's keys.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::db::DbConfig;
use super::rules::BinlogEventRule;
use super::task::MAX_SOURCE_ID_LEN;
use super::{ConfigDuration, ConfigFile, Issues, Syntax, read_file};
use crate::error::{DmError, ErrorCode, codes};

/// `purge`: relay log purging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct PurgeConfig {
    /// Seconds between purge checks.
    pub interval: u64,
    /// Hours after which relay files are purged (0 = never by age).
    pub expires: u64,
    /// GB of free space below which the oldest relay files are purged.
    pub remain_space: u64,
}

impl Default for PurgeConfig {
    fn default() -> Self {
        Self {
            interval: 3600,
            expires: 0,
            remain_space: 15,
        }
    }
}

/// `checker`: the auto-resume backoff of the source's subtasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct CheckerConfig {
    pub check_enable: bool,
    pub backoff_rollback: ConfigDuration,
    pub backoff_max: ConfigDuration,
    pub check_interval: ConfigDuration,
    pub backoff_min: ConfigDuration,
    pub backoff_jitter: bool,
    pub backoff_factor: f64,
}

impl Default for CheckerConfig {
    fn default() -> Self {
        Self {
            check_enable: true,
            backoff_rollback: ConfigDuration::new(Duration::from_secs(300)),
            backoff_max: ConfigDuration::new(Duration::from_secs(300)),
            check_interval: ConfigDuration::new(Duration::from_secs(5)),
            backoff_min: ConfigDuration::new(Duration::from_secs(1)),
            backoff_jitter: true,
            backoff_factor: 2.0,
        }
    }
}

/// A whole `source.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct SourceConfig {
    pub source_id: String,
    pub enable: bool,
    pub enable_gtid: bool,
    pub enable_relay: bool,
    pub relay_binlog_name: String,
    pub relay_binlog_gtid: String,
    pub relay_dir: String,
    /// `mysql`, `mariadb`, or empty to detect from the server's version.
    pub flavor: String,
    /// Replica server id used for binlog streams; 0 = pick one not used upstream.
    pub server_id: u32,
    pub charset: String,
    pub case_sensitive: bool,
    pub from: DbConfig,
    pub purge: PurgeConfig,
    pub checker: CheckerConfig,
    /// Binlog event filters applied to every task of this source.
    pub filters: Vec<BinlogEventRule>,
    /// Deprecated keys, accepted and ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_fix_gtid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracer: Option<serde_yaml_ng::Value>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            source_id: String::new(),
            enable: true,
            enable_gtid: false,
            enable_relay: false,
            relay_binlog_name: String::new(),
            relay_binlog_gtid: String::new(),
            relay_dir: "relay-dir".into(),
            flavor: String::new(),
            server_id: 0,
            charset: String::new(),
            case_sensitive: false,
            from: DbConfig::default(),
            purge: PurgeConfig::default(),
            checker: CheckerConfig::default(),
            filters: Vec::new(),
            auto_fix_gtid: None,
            meta_dir: None,
            tracer: None,
        }
    }
}

impl ConfigFile for SourceConfig {
    const KIND: &'static str = "source config";
    const SYNTAX: Syntax = Syntax::Yaml;
    const UNKNOWN_KEY: &'static ErrorCode = &codes::CONFIG_UNKNOWN_KEY;
    const INVALID: &'static ErrorCode = &codes::CONFIG_YAML_TRANSFORM;

    fn validate(&self, issues: &mut Issues) {
        self.check(issues);
    }
}

impl SourceConfig {
    /// Reads, parses and validates a source file; one error lists every problem.
    pub fn load(path: &Path) -> Result<Self, DmError> {
        let text = read_file(path)?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates source YAML; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, DmError> {
        Self::parse_checked(text, file, |_| {})
    }

    /// Pushes every problem of the source into `issues`.
    fn check(&self, issues: &mut Issues) {
        let id = &self.source_id;
        if id.is_empty() {
            issues.push(
                "source-id",
                &codes::CONFIG_EMPTY_SOURCE_ID,
                "source-id is empty",
            );
        } else if id.chars().count() > MAX_SOURCE_ID_LEN {
            issues.push(
                "source-id",
                &codes::CONFIG_TOO_LONG_SOURCE_ID,
                format!(
                    "source-id `{id}` has {} characters, at most {MAX_SOURCE_ID_LEN} allowed",
                    id.chars().count()
                ),
            );
        }
        if !["", "mysql", "mariadb"].contains(&self.flavor.as_str()) {
            issues.push(
                "flavor",
                &codes::NOT_SUPPORTED_FLAVOR,
                format!("`{}` is not mysql or mariadb", self.flavor),
            );
        }
        self.from.validate("from", issues);
        if !self.relay_binlog_gtid.is_empty()
            && let Err(e) = crate::binlog::gtid::GtidSet::parse_any(&self.relay_binlog_gtid)
        {
            issues.push("relay-binlog-gtid", &codes::PARSE_GTID, e);
        }
        let c = &self.checker;
        for (field, d) in [
            ("backoff-rollback", &c.backoff_rollback),
            ("backoff-max", &c.backoff_max),
            ("check-interval", &c.check_interval),
            ("backoff-min", &c.backoff_min),
        ] {
            issues.check_duration(
                &format!("checker.{field}"),
                d,
                &codes::CONFIG_INVALID_DURATION,
            );
        }
        if c.backoff_max.check().is_ok()
            && c.backoff_min.check().is_ok()
            && c.backoff_max.get() < c.backoff_min.get()
        {
            issues.push(
                "checker.backoff-max",
                &codes::CONFIG_CHECKER_MAX_TOO_SMALL,
                format!(
                    "backoff-max {} is less than backoff-min {}",
                    c.backoff_max, c.backoff_min
                ),
            );
        }
        if c.backoff_factor < 1.0 {
            issues.push(
                "checker.backoff-factor",
                &codes::CONFIG_INVALID_VALUE,
                "backoff-factor must be at least 1",
            );
        }
        for (i, f) in self.filters.iter().enumerate() {
            f.validate(&format!("filters[{i}]"), issues);
        }
    }
}
