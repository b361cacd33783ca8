//! dm-worker's TOML config, with DM's keys and defaults.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::master::check_log;
use super::{ConfigFile, Issues, Syntax, check_host_port};
use crate::error::{DmError, ErrorCode, codes};

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

impl ConfigFile for WorkerConfig {
    const KIND: &'static str = "dm-worker config";
    const SYNTAX: Syntax = Syntax::Toml;
    const UNKNOWN_KEY: &'static ErrorCode = &codes::WORKER_UNDECODED_ITEM_FROM_FILE;
    const INVALID: &'static ErrorCode = &codes::WORKER_DECODE_CONFIG_FROM_FILE;

    fn adjust(&mut self) {
        self.fill_defaults();
    }

    fn validate(&self, issues: &mut Issues) {
        self.check(issues);
    }
}

impl WorkerConfig {
    /// Reads, parses and validates a worker config file; one error lists every problem.
    pub fn load(path: &Path) -> Result<Self, DmError> {
        Self::load_with(Some(path), |_| {})
    }

    /// Parses and validates worker TOML; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, DmError> {
        Self::parse_checked(text, file, |_| {})
    }

    /// Fills derived defaults.
    fn fill_defaults(&mut self) {
        if self.advertise_addr.is_empty() {
            self.advertise_addr = self.worker_addr.clone();
        }
    }

    /// Pushes every problem into `issues`.
    fn check(&self, issues: &mut Issues) {
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
