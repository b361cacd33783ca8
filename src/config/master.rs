//! dm-master's TOML config, with DM's keys and defaults.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigDuration, ConfigFile, Issues, Syntax, check_host_port};
use crate::error::{DmError, ErrorCode, codes};

/// `[experimental]` of the master config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct MasterExperimental {
    pub openapi: bool,
}

/// The dm-master config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct MasterConfig {
    pub name: String,
    pub log_level: String,
    pub log_file: String,
    pub log_format: String,
    /// Address of the HTTP API (OpenAPI, dmctl, worker registration).
    pub master_addr: String,
    pub advertise_addr: String,
    pub data_dir: String,
    pub peer_urls: String,
    pub advertise_peer_urls: String,
    pub initial_cluster: String,
    pub initial_cluster_state: String,
    pub join: String,
    pub max_txn_ops: u32,
    pub max_request_bytes: u64,
    pub auto_compaction_mode: String,
    pub auto_compaction_retention: String,
    pub quota_backend_bytes: u64,
    pub openapi: bool,
    pub experimental: MasterExperimental,
    pub rpc_timeout: ConfigDuration,
    pub rpc_rate_limit: f64,
    pub rpc_rate_burst: u32,
    pub ssl_ca: String,
    pub ssl_cert: String,
    pub ssl_key: String,
    pub cert_allowed_cn: Vec<String>,
    pub secret_key_path: String,
    pub v1_sources_path: String,
    /// dm-rs: use this existing etcd cluster (comma-separated client URLs) instead of
    /// starting an etcd member as a child process.
    pub etcd_endpoints: String,
    /// dm-rs: client URLs the embedded etcd member listens on and advertises. Empty (the
    /// default, and DM's behaviour): etcd's client API is served on `master-addr` (gRPC
    /// connections are routed to the member, which listens on a private 127.0.0.1 port) and
    /// advertised as `advertise-addr`, so DM's configs need no etcd port of their own.
    pub etcd_client_urls: String,
    /// dm-rs: the etcd binary run as the embedded member.
    pub etcd_binary: String,
    /// dm-rs: TTL in seconds of the leader's election lease: how long a killed leader keeps
    /// the leadership before a follower takes over (a stopped leader resigns at once). At
    /// least 1. DM uses 60 s; dm-rs defaults to 3 s so that a new leader is elected within
    /// seconds of a leader's `kill -9`.
    pub election_ttl: u64,
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            name: "dm-master".into(),
            log_level: "info".into(),
            log_file: String::new(),
            log_format: "text".into(),
            master_addr: "127.0.0.1:8261".into(),
            advertise_addr: String::new(),
            data_dir: String::new(),
            peer_urls: "http://127.0.0.1:8291".into(),
            advertise_peer_urls: String::new(),
            initial_cluster: String::new(),
            initial_cluster_state: "new".into(),
            join: String::new(),
            max_txn_ops: 2048,
            max_request_bytes: 1_572_864,
            auto_compaction_mode: "periodic".into(),
            auto_compaction_retention: "1h".into(),
            quota_backend_bytes: 2 << 30,
            openapi: false,
            experimental: MasterExperimental::default(),
            rpc_timeout: ConfigDuration::new(Duration::from_secs(30)),
            rpc_rate_limit: 10.0,
            rpc_rate_burst: 40,
            ssl_ca: String::new(),
            ssl_cert: String::new(),
            ssl_key: String::new(),
            cert_allowed_cn: Vec::new(),
            secret_key_path: String::new(),
            v1_sources_path: String::new(),
            etcd_endpoints: String::new(),
            etcd_client_urls: String::new(),
            etcd_binary: "etcd".into(),
            election_ttl: DEFAULT_ELECTION_TTL,
        }
    }
}

/// Adds `http://` to every comma-separated item that has no scheme (DM's `WrapSchemes`).
pub fn wrap_schemes(urls: &str) -> String {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            if u.starts_with("http://") || u.starts_with("https://") {
                u.to_string()
            } else {
                format!("http://{u}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Default `election-ttl` in seconds (DM: 60).
pub const DEFAULT_ELECTION_TTL: u64 = 3;

/// Log levels both binaries accept.
pub const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error", "fatal"];

/// Checks `log-level` and `log-format` (shared with the worker config).
pub fn check_log(level: &str, format: &str, issues: &mut Issues) {
    if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
        issues.push(
            "log-level",
            &codes::CONFIG_INVALID_VALUE,
            format!("`{level}` is not one of {}", LOG_LEVELS.join(", ")),
        );
    }
    if !["text", "json"].contains(&format) {
        issues.push(
            "log-format",
            &codes::CONFIG_INVALID_VALUE,
            format!("`{format}` is not text or json"),
        );
    }
}

fn check_urls(key: &str, urls: &str, issues: &mut Issues) {
    for u in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let rest = u
            .strip_prefix("http://")
            .or_else(|| u.strip_prefix("https://"));
        match rest {
            Some(hp) if check_host_port(hp.trim_end_matches('/')).is_ok() => {}
            _ => issues.push(
                key,
                &codes::MASTER_CONFIG_TOML_TRANSFORM,
                format!("`{u}` is not a URL like http://127.0.0.1:8291"),
            ),
        }
    }
}

impl ConfigFile for MasterConfig {
    const KIND: &'static str = "dm-master config";
    const SYNTAX: Syntax = Syntax::Toml;
    const UNKNOWN_KEY: &'static ErrorCode = &codes::MASTER_CONFIG_UNKNOWN_ITEM;
    const INVALID: &'static ErrorCode = &codes::MASTER_CONFIG_TOML_TRANSFORM;

    fn adjust(&mut self) {
        self.fill_defaults();
    }

    fn validate(&self, issues: &mut Issues) {
        self.check(issues);
    }
}

impl MasterConfig {
    /// Reads, parses and validates a master config file; one error lists every problem.
    pub fn load(path: &Path) -> Result<Self, DmError> {
        Self::load_with(Some(path), |_| {})
    }

    /// Parses and validates master TOML; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, DmError> {
        Self::parse_checked(text, file, |_| {})
    }

    /// Fills derived defaults (DM's `default.<name>` data dir, advertise addresses, a
    /// single-member initial cluster).
    fn fill_defaults(&mut self) {
        if self.data_dir.is_empty() {
            self.data_dir = format!("default.{}", self.name);
        }
        if self.advertise_addr.is_empty() {
            self.advertise_addr = self.master_addr.clone();
        }
        // DM accepts peer URLs without a scheme (`peer-urls = "127.0.0.1:8291"`) and adds
        // `http://`; so do we, for every URL list of the member.
        self.peer_urls = wrap_schemes(&self.peer_urls);
        self.advertise_peer_urls = wrap_schemes(&self.advertise_peer_urls);
        if self.advertise_peer_urls.is_empty() {
            self.advertise_peer_urls = self.peer_urls.clone();
        }
        self.initial_cluster = self
            .initial_cluster
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|m| match m.split_once('=') {
                Some((n, u)) => format!("{n}={}", wrap_schemes(u)),
                None => m.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",");
        if self.initial_cluster.is_empty() && self.join.is_empty() {
            self.initial_cluster = self
                .advertise_peer_urls
                .split(',')
                .map(|u| format!("{}={u}", self.name))
                .collect::<Vec<_>>()
                .join(",");
        }
        self.etcd_client_urls = wrap_schemes(&self.etcd_client_urls);
        self.etcd_endpoints = wrap_schemes(&self.etcd_endpoints);
    }

    /// True when etcd's client API is served on `master-addr` (no `etcd-client-urls`, no
    /// external `etcd-endpoints`).
    pub fn muxes_etcd(&self) -> bool {
        self.etcd_client_urls.is_empty() && self.etcd_endpoints.trim().is_empty()
    }

    /// Pushes every problem into `issues`.
    fn check(&self, issues: &mut Issues) {
        if self.name.trim().is_empty() {
            issues.push("name", &codes::CONFIG_MISSING_KEY, "name is empty");
        }
        check_log(&self.log_level, &self.log_format, issues);
        if let Err(e) = check_host_port(&self.master_addr) {
            issues.push("master-addr", &codes::MASTER_HOST_PORT_NOT_VALID, e);
        }
        match check_host_port(&self.advertise_addr) {
            Err(e) => issues.push("advertise-addr", &codes::MASTER_ADVERTISE_ADDR_NOT_VALID, e),
            Ok(())
                if self.advertise_addr.starts_with(':')
                    || self.advertise_addr.starts_with("0.0.0.0:") =>
            {
                issues.push(
                    "advertise-addr",
                    &codes::MASTER_ADVERTISE_ADDR_NOT_VALID,
                    format!(
                        "`{}` is not an address other members can reach; set advertise-addr",
                        self.advertise_addr
                    ),
                )
            }
            Ok(()) => {}
        }
        check_urls("peer-urls", &self.peer_urls, issues);
        check_urls("advertise-peer-urls", &self.advertise_peer_urls, issues);
        for member in self
            .initial_cluster
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            match member.split_once('=') {
                Some((n, u)) if !n.is_empty() => check_urls("initial-cluster", u, issues),
                _ => issues.push(
                    "initial-cluster",
                    &codes::MASTER_CONFIG_TOML_TRANSFORM,
                    format!("`{member}` is not name=url"),
                ),
            }
        }
        if !["new", "existing"].contains(&self.initial_cluster_state.as_str()) {
            issues.push(
                "initial-cluster-state",
                &codes::MASTER_CONFIG_TOML_TRANSFORM,
                format!("`{}` is not new or existing", self.initial_cluster_state),
            );
        }
        for j in self
            .join
            .split(',')
            .map(str::trim)
            .filter(|j| !j.is_empty())
        {
            if let Err(e) = check_host_port(
                j.trim_start_matches("http://")
                    .trim_start_matches("https://"),
            ) {
                issues.push("join", &codes::MASTER_HOST_PORT_NOT_VALID, e);
            }
        }
        check_urls("etcd-endpoints", &self.etcd_endpoints, issues);
        check_urls("etcd-client-urls", &self.etcd_client_urls, issues);
        if let Err(e) = self.rpc_timeout.check() {
            issues.push("rpc-timeout", &codes::MASTER_CONFIG_TOML_TRANSFORM, e);
        }
        if self.rpc_rate_limit <= 0.0 {
            issues.push(
                "rpc-rate-limit",
                &codes::MASTER_CONFIG_TOML_TRANSFORM,
                "rpc-rate-limit must be positive",
            );
        }
        if self.rpc_rate_burst == 0 {
            issues.push(
                "rpc-rate-burst",
                &codes::MASTER_CONFIG_TOML_TRANSFORM,
                "rpc-rate-burst must be at least 1",
            );
        }
        if self.election_ttl == 0 {
            issues.push(
                "election-ttl",
                &codes::MASTER_CONFIG_TOML_TRANSFORM,
                "election-ttl must be at least 1 (seconds)",
            );
        }
        if !["periodic", "revision"].contains(&self.auto_compaction_mode.as_str()) {
            issues.push(
                "auto-compaction-mode",
                &codes::MASTER_CONFIG_TOML_TRANSFORM,
                format!(
                    "`{}` is not periodic or revision",
                    self.auto_compaction_mode
                ),
            );
        }
        if !self.secret_key_path.is_empty()
            && let Err(e) = super::SecretKey::from_file(Path::new(&self.secret_key_path))
        {
            issues.push("secret-key-path", &codes::CONFIG_SECRET_KEY, e.message);
        }
    }

    /// The election lease TTL (`election-ttl`).
    pub fn election_ttl(&self) -> Duration {
        Duration::from_secs(self.election_ttl)
    }

    /// The external etcd endpoints, when configured.
    pub fn external_etcd(&self) -> Vec<String> {
        self.etcd_endpoints
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_form_configs_get_schemes_and_serve_etcd_on_master_addr() {
        let cfg = MasterConfig::from_toml(
            "name = \"master1\"\nmaster-addr = \":8261\"\nadvertise-addr = \"127.0.0.1:8261\"\n\
             peer-urls = \"127.0.0.1:8291\"\n\
             initial-cluster = \"master1=http://127.0.0.1:8291,master2=127.0.0.1:8292\"\n",
            "m.toml",
        )
        .unwrap();
        assert_eq!(cfg.peer_urls, "http://127.0.0.1:8291");
        assert_eq!(cfg.advertise_peer_urls, "http://127.0.0.1:8291");
        assert_eq!(
            cfg.initial_cluster,
            "master1=http://127.0.0.1:8291,master2=http://127.0.0.1:8292"
        );
        assert!(cfg.muxes_etcd());
        let own =
            MasterConfig::from_toml("etcd-client-urls = \"127.0.0.1:2379\"\n", "m.toml").unwrap();
        assert_eq!(own.etcd_client_urls, "http://127.0.0.1:2379");
        assert!(!own.muxes_etcd());
    }

    #[test]
    fn election_ttl_defaults_to_3s_and_must_be_positive() {
        let cfg = MasterConfig::from_toml("", "m.toml").unwrap();
        assert_eq!(cfg.election_ttl(), Duration::from_secs(3));
        let cfg = MasterConfig::from_toml("election-ttl = 60\n", "m.toml").unwrap();
        assert_eq!(cfg.election_ttl, 60);
        let err = MasterConfig::from_toml("election-ttl = 0\n", "m.toml").unwrap_err();
        assert!(err.chain().contains("election-ttl"), "{}", err.chain());
    }
}
