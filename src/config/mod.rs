//! Configuration files with DM's key names, defaults and meaning: `task.yaml`, `source.yaml`,
//! and the dm-master / dm-worker TOML files.
//!
//! Loading is three steps kept apart:
//! 1. **parse** ([`parse_yaml`], [`parse_toml`]): serde into the typed structs. Every key the
//!    structs do not know is collected with its full path (`mysql-instances[0].route-rule`)
//!    instead of failing on the first one, so the user sees all typos at once. (This replaces
//!    `#[serde(deny_unknown_fields)]`, which stops at the first unknown key and names no path.)
//! 2. **validate**: pure checks that push every problem into [`Issues`] (missing names, rule
//!    references that do not exist, bad regexes and durations, out-of-range values).
//! 3. **adjust**: queries against the upstream (flavor, server-id, ...), done later by the
//!    actor that owns the connection, never here.
//!
//! Unknown keys, type errors and validation problems of one file come back as one [`DmError`]
//! that lists each problem with its file, key and code.

pub mod checking;
pub mod db;
pub mod duration;
pub mod master;
pub mod rules;
pub mod secret;
pub mod size;
pub mod source;
pub mod subtask;
pub mod task;
pub mod worker;

#[cfg(test)]
mod file_tests;

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{DmError, ErrorCode, codes};

pub use duration::ConfigDuration;
pub use master::MasterConfig;
pub use secret::{Secret, SecretKey};
pub use source::SourceConfig;
pub use subtask::SubTaskConfig;
pub use task::TaskConfig;
pub use worker::WorkerConfig;

/// One problem found in a config file.
#[derive(Debug, Clone)]
pub struct ConfigIssue {
    /// Path of the key, `a.b[0].c`; empty for the whole file.
    pub key: String,
    pub code: &'static ErrorCode,
    pub problem: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "[code={}] {}", self.code.code, self.problem)
        } else {
            write!(
                f,
                "[code={}] `{}`: {}",
                self.code.code, self.key, self.problem
            )
        }
    }
}

/// Problems collected while parsing and validating one file.
#[derive(Debug, Default)]
pub struct Issues {
    list: Vec<ConfigIssue>,
}

impl Issues {
    /// Records a problem at `key`.
    pub fn push(
        &mut self,
        key: impl Into<String>,
        code: &'static ErrorCode,
        problem: impl Into<String>,
    ) {
        self.list.push(ConfigIssue {
            key: key.into(),
            code,
            problem: problem.into(),
        });
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems in the order found.
    pub fn list(&self) -> &[ConfigIssue] {
        &self.list
    }

    /// Checks a duration key, recording a problem with `code` when it does not parse.
    pub fn check_duration(&mut self, key: &str, d: &ConfigDuration, code: &'static ErrorCode) {
        if let Err(e) = d.check() {
            self.push(key, code, e);
        }
    }

    /// Checks a regular expression, recording [`codes::CONFIG_INVALID_REGEX`] when it does not
    /// compile. Returns the compiled regex.
    pub fn check_regex(&mut self, key: &str, pattern: &str) -> Option<regex::Regex> {
        match regex::Regex::new(pattern) {
            Ok(r) => Some(r),
            Err(e) => {
                let first_line = e.to_string();
                let detail = first_line.lines().last().unwrap_or("").trim().to_string();
                self.push(
                    key,
                    &codes::CONFIG_INVALID_REGEX,
                    format!("bad regular expression `{pattern}`: {detail}"),
                );
                None
            }
        }
    }

    /// `Ok` when empty; otherwise one error listing every problem. `file` names the file (or
    /// the API body) and `kind` is the code used when the problems have different codes.
    pub fn into_result(self, file: &str, kind: &'static ErrorCode) -> Result<(), DmError> {
        if self.list.is_empty() {
            return Ok(());
        }
        let code = if self.list.iter().all(|i| i.code == self.list[0].code) {
            self.list[0].code
        } else {
            kind
        };
        let n = self.list.len();
        let mut msg = format!("{file} has {n} problem{}:", if n == 1 { "" } else { "s" });
        for issue in &self.list {
            msg.push_str("\n  - ");
            msg.push_str(&issue.to_string());
        }
        let mut err = DmError::new(code, msg);
        if code == kind && n > 1 {
            err = err.with_workaround(codes::CONFIG_YAML_TRANSFORM.workaround);
        } else {
            err = err.with_workaround(code.workaround);
        }
        Err(err)
    }
}

/// The syntax of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Yaml,
    Toml,
}

/// One kind of config file, and the one path every kind goes through: read → parse (every
/// unknown key with its path) → command-line overrides → [`ConfigFile::adjust`] →
/// [`ConfigFile::validate`] (every problem at once, each coded) → one error, or the config
/// after [`ConfigFile::finish`].
pub trait ConfigFile: DeserializeOwned {
    /// How errors name the file: `dm-worker config`, `task config`, ...
    const KIND: &'static str;
    const SYNTAX: Syntax;
    /// The code of unknown keys.
    const UNKNOWN_KEY: &'static ErrorCode;
    /// The code of a file that does not parse, and of the whole error.
    const INVALID: &'static ErrorCode;

    /// Fills derived defaults before validation.
    fn adjust(&mut self) {}
    /// Pushes every problem into `issues`.
    fn validate(&self, issues: &mut Issues);
    /// Folds aliases and deprecated keys into their current form, once valid.
    fn finish(&mut self) {}

    /// Parses and validates `text`; `file` names it in errors, `overrides` (command-line
    /// flags) are applied before the checks.
    fn parse_checked(
        text: &str,
        file: &str,
        overrides: impl FnOnce(&mut Self),
    ) -> Result<Self, DmError> {
        let mut issues = Issues::default();
        let mut parsed: Option<Self> = match Self::SYNTAX {
            Syntax::Yaml => parse_yaml(text, &mut issues),
            Syntax::Toml => parse_toml(text, &mut issues, Self::UNKNOWN_KEY, Self::INVALID),
        };
        // Semantic checks also run when there are unknown keys, so one error shows all.
        if let Some(cfg) = parsed.as_mut() {
            overrides(cfg);
            cfg.adjust();
            cfg.validate(&mut issues);
        }
        issues.into_result(&format!("{} `{file}`", Self::KIND), Self::INVALID)?;
        let mut cfg = parsed.expect("no issues means parsed");
        cfg.finish();
        Ok(cfg)
    }

    /// Reads `path` (or, without one, starts from the defaults: empty TOML), applies
    /// `overrides`, then parses and validates.
    fn load_with(path: Option<&Path>, overrides: impl FnOnce(&mut Self)) -> Result<Self, DmError> {
        let (text, file) = match path {
            Some(p) => (read_file(p)?, p.display().to_string()),
            None => (String::new(), "command-line flags".to_string()),
        };
        Self::parse_checked(&text, &file, overrides)
    }
}

/// Reads a config file, naming it in the error.
pub fn read_file(path: &Path) -> Result<String, DmError> {
    std::fs::read_to_string(path).map_err(|e| {
        DmError::new(
            &codes::CONFIG_READ_CFG_FROM_FILE,
            format!("cannot read config file `{}`", path.display()),
        )
        .with_cause(e)
    })
}

fn render_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match p {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", render_path(parent)),
        P::Map { parent, key } => {
            let head = render_path(parent);
            if head.is_empty() {
                key.to_string()
            } else {
                format!("{head}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            render_path(parent)
        }
    }
}

fn render_error_path(p: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Deserializes through `de`, collecting unknown keys (with [`codes::CONFIG_UNKNOWN_KEY`] or
/// `unknown_code`) and a type error (with `syntax_code`) into `issues`.
fn parse_with<'de, T, D>(
    de: D,
    issues: &mut Issues,
    unknown_code: &'static ErrorCode,
    syntax_code: &'static ErrorCode,
    strip_location: impl Fn(&str) -> String,
) -> Option<T>
where
    T: DeserializeOwned,
    D: serde::Deserializer<'de>,
    D::Error: fmt::Display,
{
    let mut unknown = Vec::new();
    let mut record = |p: serde_ignored::Path<'_>| unknown.push(render_path(&p));
    let tracked = serde_ignored::Deserializer::new(de, &mut record);
    let result: Result<T, _> = serde_path_to_error::deserialize(tracked);
    for key in unknown {
        issues.push(key, unknown_code, "unknown key");
    }
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let key = render_error_path(e.path());
            issues.push(key, syntax_code, strip_location(&e.inner().to_string()));
            None
        }
    }
}

/// Parses YAML text into `T`. Unknown keys and a syntax or type error are recorded in `issues`;
/// `None` when the structure could not be built at all.
pub fn parse_yaml<T: DeserializeOwned>(text: &str, issues: &mut Issues) -> Option<T> {
    if text.trim().is_empty() {
        issues.push("", &codes::CONFIG_YAML_TRANSFORM, "the file is empty");
        return None;
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    parse_with(
        de,
        issues,
        &codes::CONFIG_UNKNOWN_KEY,
        &codes::CONFIG_YAML_TRANSFORM,
        |m| m.to_string(),
    )
}

/// Parses TOML text into `T`; as [`parse_yaml`], with the caller's codes for unknown keys
/// and syntax errors (dm-master and dm-worker have their own).
pub fn parse_toml<T: DeserializeOwned>(
    text: &str,
    issues: &mut Issues,
    unknown_code: &'static ErrorCode,
    syntax_code: &'static ErrorCode,
) -> Option<T> {
    let de = toml::Deserializer::new(text);
    parse_with(de, issues, unknown_code, syntax_code, |m| {
        // toml's message is multi-line with a caret diagram; keep its first and last lines.
        let lines: Vec<&str> = m.lines().filter(|l| !l.trim().is_empty()).collect();
        match lines.as_slice() {
            [] => String::new(),
            [one] => one.to_string(),
            [first, .., last] => format!("{} ({})", last.trim(), first.trim()),
        }
    })
}

/// Validates `host:port` (an empty host means every interface, as in DM's `:8261`).
pub fn check_host_port(addr: &str) -> Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{addr}` is not host:port"))?;
    if host.contains(char::is_whitespace) {
        return Err(format!("`{addr}` has whitespace in the host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("`{addr}` has an invalid port `{port}`"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, rename_all = "kebab-case")]
    struct Inner {
        worker_count: u32,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, rename_all = "kebab-case")]
    struct Outer {
        name: String,
        list: Vec<Inner>,
        map: BTreeMap<String, Inner>,
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_path() {
        let text = "name: x\nnmae: y\nlist:\n  - worker-count: 1\n    wroker-count: 2\nmap:\n  a:\n    zzz: 1\n";
        let mut issues = Issues::default();
        let v: Outer = parse_yaml(text, &mut issues).unwrap();
        assert_eq!(v.name, "x");
        let keys: Vec<_> = issues.list().iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["nmae", "list[0].wroker-count", "map.a.zzz"]);
    }

    #[test]
    fn type_errors_name_the_key() {
        let mut issues = Issues::default();
        let v: Option<Outer> = parse_yaml("list:\n  - worker-count: abc\n", &mut issues);
        assert!(v.is_none());
        assert_eq!(issues.list()[0].key, "list[0].worker-count");
        let err = issues
            .into_result("t.yaml", &codes::CONFIG_YAML_TRANSFORM)
            .unwrap_err();
        assert_eq!(err.code, 20003);
        assert!(err.message.contains("t.yaml has 1 problem"));
    }

    #[test]
    fn toml_unknown_keys_use_the_callers_code() {
        let mut issues = Issues::default();
        let _: Option<Outer> = parse_toml(
            "name = \"a\"\nfoo = 1\n[map.x]\nbar = 2\n",
            &mut issues,
            &codes::WORKER_UNDECODED_ITEM_FROM_FILE,
            &codes::WORKER_DECODE_CONFIG_FROM_FILE,
        );
        let keys: Vec<_> = issues.list().iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["foo", "map.x.bar"]);
        assert!(issues.list().iter().all(|i| i.code.code == 40004));
    }

    #[test]
    fn host_port() {
        assert!(check_host_port("127.0.0.1:8261").is_ok());
        assert!(check_host_port(":8261").is_ok());
        assert!(check_host_port("127.0.0.1").is_err());
        assert!(check_host_port("h:99999").is_err());
    }
}
