//! Errors at every boundary: one [`DmError`] with DM's code, class, scope, level, message and
//! workaround.
//!
//! Codes are API (users grep for them and dashboards count them), so numbers and class names
//! follow DM's `pkg/terror` catalogue: each class owns a contiguous range starting at its base
//! (config 20001, sync-unit 36001, ...). dm-rs adds classes only in ranges DM leaves free
//! (`actor` at 45001). Whether an error may be retried is data on its code
//! ([`ErrorCode::resumable`]), never a match on message text.

pub mod codes;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use codes::{ALL_CODES, ErrorCode};

/// DM's error classes, with the first code of each range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    Database,
    Functional,
    Config,
    BinlogOp,
    Checkpoint,
    TaskCheck,
    RelayEventLib,
    RelayUnit,
    DumpUnit,
    LoadUnit,
    SyncUnit,
    DmMaster,
    DmWorker,
    DmTracer,
    Ha,
    Validator,
    SchemaTracker,
    /// dm-rs: actor supervision (free range in DM's table).
    Actor,
    Scheduler,
    Dmctl,
    Openapi,
    NotSet,
}

impl ErrorClass {
    /// Every class in code order.
    pub const ALL: [ErrorClass; 22] = [
        Self::Database,
        Self::Functional,
        Self::Config,
        Self::BinlogOp,
        Self::Checkpoint,
        Self::TaskCheck,
        Self::RelayEventLib,
        Self::RelayUnit,
        Self::DumpUnit,
        Self::LoadUnit,
        Self::SyncUnit,
        Self::DmMaster,
        Self::DmWorker,
        Self::DmTracer,
        Self::Ha,
        Self::Validator,
        Self::SchemaTracker,
        Self::Actor,
        Self::Scheduler,
        Self::Dmctl,
        Self::Openapi,
        Self::NotSet,
    ];

    /// First code of the class's range.
    pub const fn base(self) -> u32 {
        match self {
            Self::Database => 10001,
            Self::Functional => 11001,
            Self::Config => 20001,
            Self::BinlogOp => 22001,
            Self::Checkpoint => 24001,
            Self::TaskCheck => 26001,
            Self::RelayEventLib => 28001,
            Self::RelayUnit => 30001,
            Self::DumpUnit => 32001,
            Self::LoadUnit => 34001,
            Self::SyncUnit => 36001,
            Self::DmMaster => 38001,
            Self::DmWorker => 40001,
            Self::DmTracer => 42001,
            Self::Ha => 42501,
            Self::Validator => 43001,
            Self::SchemaTracker => 44001,
            Self::Actor => 45001,
            Self::Scheduler => 46001,
            Self::Dmctl => 48001,
            Self::Openapi => 49001,
            Self::NotSet => 50000,
        }
    }

    /// One past the last code of the range (the next class's base).
    pub fn end(self) -> u32 {
        let i = Self::ALL.iter().position(|c| *c == self).expect("listed");
        Self::ALL.get(i + 1).map_or(50001, |c| c.base())
    }

    /// DM's class name (`sync-unit`, `dm-master`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Functional => "functional",
            Self::Config => "config",
            Self::BinlogOp => "binlog-op",
            Self::Checkpoint => "checkpoint",
            Self::TaskCheck => "task-check",
            Self::RelayEventLib => "relay-event-lib",
            Self::RelayUnit => "relay-unit",
            Self::DumpUnit => "dump-unit",
            Self::LoadUnit => "load-unit",
            Self::SyncUnit => "sync-unit",
            Self::DmMaster => "dm-master",
            Self::DmWorker => "dm-worker",
            Self::DmTracer => "dm-tracer",
            Self::Ha => "ha",
            Self::Validator => "validator",
            Self::SchemaTracker => "schema-tracker",
            Self::Actor => "actor",
            Self::Scheduler => "scheduler",
            Self::Dmctl => "dmctl",
            Self::Openapi => "openapi",
            Self::NotSet => "not-set",
        }
    }
}

/// Where the fault lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorScope {
    NotSet,
    Upstream,
    Downstream,
    Internal,
}

impl ErrorScope {
    /// DM's scope name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NotSet => "not-set",
            Self::Upstream => "upstream",
            Self::Downstream => "downstream",
            Self::Internal => "internal",
        }
    }
}

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorLevel {
    Low,
    Medium,
    High,
}

impl ErrorLevel {
    /// DM's level name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// The error every actor reply, API body, etcd status and process exit carries.
///
/// `Display` is DM's one-line form `[code=N:class=C:scope=S:level=L] message`, without causes;
/// [`DmError::report`] gives the full text (causes and workaround) for logs and CLIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmError {
    pub code: u32,
    pub class: ErrorClass,
    pub scope: ErrorScope,
    pub level: ErrorLevel,
    pub message: String,
    /// The underlying causes, outermost first (already rendered; passwords never appear here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
    pub workaround: String,
    /// Whether auto-resume may retry the failed unit.
    pub resumable: bool,
}

impl DmError {
    /// An error of `code` with a message specific to this occurrence.
    pub fn new(code: &ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.code,
            class: code.class,
            scope: code.scope,
            level: code.level,
            message: message.into(),
            causes: Vec::new(),
            workaround: code.workaround.to_string(),
            resumable: code.resumable,
        }
    }

    /// The code's own message, for errors that need no detail.
    pub fn bare(code: &ErrorCode) -> Self {
        Self::new(code, code.message)
    }

    /// Adds a cause (its `Display` and its source chain).
    pub fn with_cause(mut self, cause: impl std::error::Error) -> Self {
        self.causes.push(cause.to_string());
        let mut src = cause.source();
        while let Some(s) = src {
            self.causes.push(s.to_string());
            src = s.source();
        }
        self
    }

    /// Adds a cause given as text.
    pub fn with_cause_text(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    /// Replaces the code's generic workaround with a specific one.
    pub fn with_workaround(mut self, workaround: impl Into<String>) -> Self {
        self.workaround = workaround.into();
        self
    }

    /// The message followed by every cause, `: `-separated, for one log field.
    pub fn chain(&self) -> String {
        let mut s = self.message.clone();
        for c in &self.causes {
            s.push_str(": ");
            s.push_str(c);
        }
        s
    }

    /// The full multi-line text for a CLI or a log: header, message, causes, workaround.
    pub fn report(&self) -> String {
        let mut s = format!("{self}");
        for c in &self.causes {
            s.push_str("\n  caused by: ");
            s.push_str(c);
        }
        if !self.workaround.is_empty() {
            s.push_str("\n  workaround: ");
            s.push_str(&self.workaround);
        }
        s
    }

    /// The process exit code a binary uses for this error: 2 for bad configuration or usage,
    /// 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self.class {
            ErrorClass::Config => 2,
            _ if matches!(self.code, 38010..=38014 | 40001..=40006) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for DmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[code={}:class={}:scope={}:level={}] {}",
            self.code,
            self.class.name(),
            self.scope.name(),
            self.level.name(),
            self.message
        )
    }
}

impl std::error::Error for DmError {}

/// Module error enums name their code through this trait; the `match` in each impl is
/// exhaustive, so a new variant does not compile without one.
pub trait HasCode {
    fn code(&self) -> &'static ErrorCode;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_dm_form() {
        let e = DmError::new(&codes::CONFIG_TASK_NAME_EMPTY, "task name is empty")
            .with_cause_text("at `name`");
        assert_eq!(
            e.to_string(),
            "[code=20004:class=config:scope=internal:level=medium] task name is empty"
        );
        assert!(e.report().contains("caused by: at `name`"));
        assert!(e.report().contains("workaround: "));
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn serializes_for_api_and_etcd() {
        let e = DmError::bare(&codes::DB_BAD_CONN);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], 10002);
        assert_eq!(v["class"], "database");
        assert_eq!(v["scope"], "not-set");
        let back: DmError = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn class_ranges_are_ordered_and_disjoint() {
        for w in ErrorClass::ALL.windows(2) {
            assert!(w[0].base() < w[1].base(), "{:?} before {:?}", w[0], w[1]);
            assert_eq!(w[0].end(), w[1].base());
        }
    }
}
