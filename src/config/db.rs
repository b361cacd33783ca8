//! Database connection configs: the task's `target-database` and the source's `from`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Issues, Secret};
use crate::error::codes;

/// TLS settings of a connection (DM's `security` block).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Security {
    pub ssl_ca: String,
    pub ssl_cert: String,
    pub ssl_key: String,
    pub cert_allowed_cn: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ssl_ca_bytes: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ssl_key_bytes: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ssl_cert_bytes: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ssl_ca_base64: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ssl_key_base64: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ssl_cert_base64: String,
}

/// A session variable value: YAML writes `foreign_key_checks: 1` as a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SessionValue {
    Int(i64),
    Bool(bool),
    Text(String),
}

impl SessionValue {
    /// The value as SQL text.
    pub fn as_text(&self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Bool(b) => if *b { "1" } else { "0" }.into(),
            Self::Text(s) => s.clone(),
        }
    }
}

/// `host`, `port`, `user`, `password` and session settings of a MySQL-protocol server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_allowed_packet: Option<u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub session: BTreeMap<String, SessionValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 3306,
            user: String::new(),
            password: Secret::default(),
            max_allowed_packet: None,
            session: BTreeMap::new(),
            security: None,
        }
    }
}

impl DbConfig {
    /// Pushes every problem at `key`.
    pub fn validate(&self, key: &str, issues: &mut Issues) {
        if self.host.is_empty() {
            issues.push(
                format!("{key}.host"),
                &codes::CONFIG_MISSING_KEY,
                "host is empty",
            );
        }
        if self.port == 0 {
            issues.push(
                format!("{key}.port"),
                &codes::CONFIG_INVALID_VALUE,
                "port is 0",
            );
        }
        if self.user.is_empty() {
            issues.push(
                format!("{key}.user"),
                &codes::CONFIG_MISSING_KEY,
                "user is empty",
            );
        }
    }

    /// Connection options (the password decrypted with `key` when it is DM cipher text).
    /// Session variables are not included: the connection's owner sets them.
    pub fn to_opts(&self, key: Option<&super::SecretKey>) -> mysql_async::Opts {
        let mut b = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .prefer_socket(false)
            .stmt_cache_size(0);
        if !self.password.is_empty() {
            b = b.pass(Some(self.password.plain(key)));
        }
        b.into()
    }

    /// `SET` statements for the `session` map (values quoted unless numeric).
    pub fn session_sql(&self) -> Vec<String> {
        self.session
            .iter()
            .map(|(k, v)| match v {
                SessionValue::Int(_) | SessionValue::Bool(_) => {
                    format!("SET SESSION {k} = {}", v.as_text())
                }
                SessionValue::Text(t) => {
                    format!("SET SESSION {k} = {}", crate::syntax::quote_string(t))
                }
            })
            .collect()
    }

    /// The session variable `name` (case-insensitive), as text.
    pub fn session_var(&self, name: &str) -> Option<String> {
        self.session
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_text())
    }
}
