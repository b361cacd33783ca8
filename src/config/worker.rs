//! dm-worker's TOML config, with DM's keys and defaults.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::master::check_log;
use super::{Issues, check_host_port, parse_toml, read_file};
use crate::error::{DmError, codes};

/// The dm-worker config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct WorkerConfig {
    pub name: String,
    pub log_level: String,
    pub log_file: String,
    pub log_format: String,
    /// Masters to register with (comma-separated host:port).
    pub join: String,
    /// dm-rs extension: etcd client URLs (comma-separated `http://host:port`). When set, the
    /// worker uses this etcd directly instead of registering with the `join` masters (tests,
    /// single-master setups); it then writes its own registration key.
    pub etcd_endpoints: String,
    /// Address of the worker's HTTP server (/status, /metrics, internal API).
    pub worker_addr: String,
    pub advertise_addr: String,
    /// Seconds of the keepalive lease.
    pub keepalive_ttl: u64,
    /// Seconds of the keepalive lease while relay is on.
    pub relay_keepalive_ttl: u64,
    pub relay_dir: String,
    pub ssl_ca: String,
    pub ssl_cert: String,
    pub ssl_key: String,
    pub cert_allowed_cn: Vec<String>,
    pub redact_info_log: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            log_level: "info".into(),
            log_file: String::new(),
            log_format: "text".into(),
            join: String::new(),
            etcd_endpoints: String::new(),
            worker_addr: "127.0.0.1:8262".into(),
            advertise_addr: String::new(),
            keepalive_ttl: 60,
            relay_keepalive_ttl: 1800,
            relay_dir: String::new(),
            ssl_ca: String::new(),
            ssl_cert: String::new(),
            ssl_key: String::new(),
            cert_allowed_cn: Vec::new(),
            redact_info_log: false,
        }
    }
}

impl WorkerConfig {
    /// Reads, parses and validates a worker config file; one error lists every problem.
    pub fn load(path: &Path) -> Result<Self, DmError> {
        Self::load_with(Some(path), |_| {})
    }

    /// Reads `path` (or starts from the defaults), applies command-line `overrides`, then
    /// validates; one error lists every problem.
    pub fn load_with(
        path: Option<&Path>,
        overrides: impl FnOnce(&mut Self),
    ) -> Result<Self, DmError> {
        let (text, file) = match path {
            Some(p) => (read_file(p)?, p.display().to_string()),
            None => (String::new(), "command-line flags".to_string()),
        };
        Self::parse_checked(&text, &file, overrides)
    }

    /// Parses and validates worker TOML; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, DmError> {
        Self::parse_checked(text, file, |_| {})
    }

    fn parse_checked(
        text: &str,
        file: &str,
        overrides: impl FnOnce(&mut Self),
    ) -> Result<Self, DmError> {
        let mut issues = Issues::default();
        let mut parsed: Option<Self> = parse_toml(
            text,
            &mut issues,
            &codes::WORKER_UNDECODED_ITEM_FROM_FILE,
            &codes::WORKER_DECODE_CONFIG_FROM_FILE,
        );
        // Semantic checks also run when there are unknown keys, so one error shows all.
        if let Some(cfg) = parsed.as_mut() {
            overrides(cfg);
            cfg.adjust();
            cfg.validate(&mut issues);
        }
        issues.into_result(
            &format!("dm-worker config `{file}`"),
            &codes::WORKER_DECODE_CONFIG_FROM_FILE,
        )?;
        Ok(parsed.expect("no issues means parsed"))
    }

    /// Fills derived defaults.
    pub fn adjust(&mut self) {
        if self.advertise_addr.is_empty() {
            self.advertise_addr = self.worker_addr.clone();
        }
    }

    /// Pushes every problem into `issues`.
    pub fn validate(&self, issues: &mut Issues) {
        if self.name.trim().is_empty() {
            issues.push(
                "name",
                &codes::CONFIG_MISSING_KEY,
                "name is empty; every worker needs a unique name",
            );
        }
        check_log(&self.log_level, &self.log_format, issues);
        if self.join.trim().is_empty() && self.etcd_endpoints.trim().is_empty() {
            issues.push(
                "join",
                &codes::CONFIG_MISSING_KEY,
                "join is empty; give the dm-master addresses",
            );
        }
        for e in self.etcd_endpoints() {
            match e.strip_prefix("http://") {
                Some(hp) => {
                    if let Err(err) = check_host_port(hp) {
                        issues.push("etcd-endpoints", &codes::WORKER_INVALID_FLAG, err);
                    }
                }
                None => issues.push(
                    "etcd-endpoints",
                    &codes::WORKER_INVALID_FLAG,
                    format!("`{e}` is not an http://host:port URL"),
                ),
            }
        }
        for j in self
            .join
            .split(',')
            .map(str::trim)
            .filter(|j| !j.is_empty())
        {
            if let Err(e) = check_host_port(j.trim_start_matches("http://")) {
                issues.push("join", &codes::WORKER_INVALID_FLAG, e);
            }
        }
        if let Err(e) = check_host_port(&self.worker_addr) {
            issues.push("worker-addr", &codes::WORKER_INVALID_FLAG, e);
        }
        // A derived advertise-addr repeats worker-addr's problem; report it once.
        if self.advertise_addr == self.worker_addr {
        } else if let Err(e) = check_host_port(&self.advertise_addr) {
            issues.push("advertise-addr", &codes::WORKER_INVALID_FLAG, e);
        }
        if self.keepalive_ttl == 0 {
            issues.push(
                "keepalive-ttl",
                &codes::CONFIG_INVALID_VALUE,
                "keepalive-ttl must be at least 1 second",
            );
        }
        if self.relay_keepalive_ttl < self.keepalive_ttl {
            issues.push(
                "relay-keepalive-ttl",
                &codes::CONFIG_INVALID_VALUE,
                "relay-keepalive-ttl must be at least keepalive-ttl",
            );
        }
    }

    /// The etcd client URLs given directly (empty: ask the masters).
    pub fn etcd_endpoints(&self) -> Vec<String> {
        self.etcd_endpoints
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// The master addresses to register with.
    pub fn masters(&self) -> Vec<String> {
        self.join
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}
