//! The start-task / check-task precheck (DM's `dm/checker`), called by the master's API: before a task's subtasks are
//! written to etcd, the master connects to every upstream the task reads and to the
//! downstream it writes, and checks what would make the task fail later.
//!
//! Items (DM's `ignore-checking-items` names; `all` skips every item that needs a connection):
//!
//! | item | when | state on problem |
//! |---|---|---|
//! | `source_exist` | always (not ignorable) | fail: the task names a source that was never created |
//! | `upstream_connection` | unless `all` | fail: connect (5 s timeout), the source's `from.session` settings, or a basic query failed |
//! | `version` | always | warning: MySQL outside 5.6.0 ..< 8.5.0, MariaDB below 10.1.2 |
//! | `dump_privilege` | task dumps | fail: `SELECT` on every selected table, `RELOAD` (consistency auto/flush) or `LOCK TABLES` (lock) |
//! | `meta_position` | task does not dump, `meta.binlog-name` set | fail: the binlog file is not on the upstream or `binlog-pos` is past its end |
//! | `server_id` | task syncs | fail: `server_id` is 0 |
//! | `binlog_enable` | task syncs | fail: `log_bin` is not ON |
//! | `binlog_format` | task syncs | fail: not ROW |
//! | `binlog_row_image` | task syncs | fail: not FULL |
//! | `replication_privilege` | task syncs | fail: `REPLICATION SLAVE` and `REPLICATION CLIENT` (MariaDB: `BINLOG MONITOR`) on `*.*` |
//! | `table_schema` | always | warning: selected tables without a primary or unique key (safe-mode replay cannot be idempotent) |
//! | `downstream_connection` | unless `all` | fail: the target cannot be reached, or refuses a `target-database.session` setting |
//! | `target_privilege` | always | warning: the target account lacks CREATE/SELECT/INSERT/UPDATE/DELETE/ALTER/DROP/INDEX on `*.*` |
//!
//! An unknown source is reported as the failed item `source_exist`; [`CheckReport::into_result`]
//! then answers [`codes::SCHEDULER_SOURCE_CFG_NOT_EXIST`], the code DM's OpenAPI gives for a task
//! naming a source that does not exist; any other failure answers
//! [`codes::MASTER_PRECHECK_FAILED`].
//!
//! Sources are checked concurrently (one connection each) together with the downstream.
//! Not checked (DM has them): `online_ddl`, `binlog_db`, `conn_number`, shard-table schema
//! consistency (`schema_of_shard_tables`, `auto_increment_ID`), and Lightning's physical-import
//! items, which dm-rs does not have.

pub mod grants;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::future::join_all;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, Row};
use serde::Serialize;
use serde_json::json;
use tracing::info;

use self::grants::{Grants, lack_message, lacking_global, read_grants};
use crate::config::checking::CheckingItem as Item;
use crate::config::rules::BaList;
use crate::config::subtask::SubTaskConfig;
use crate::config::{SecretKey, SourceConfig, TaskConfig};
use crate::db::upstream::BinlogSettings;
use crate::error::{DmError, codes};
use crate::sql::filter::BaFilter;
use crate::sql::quote_string;
use crate::units::dump::catalog::{TableRef, list_objects, text};

/// Longest wait for one connection (upstream or downstream).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time the checks of one server may take once connected.
pub const SERVER_CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// How many table names a message lists before summarising the rest.
const MAX_LISTED_TABLES: usize = 10;

/// Outcome of one check item. Serialized with DM's words: `success`, `warn`, `fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CheckState {
    #[serde(rename = "success")]
    Success,
    #[serde(rename = "warn")]
    Warning,
    #[serde(rename = "fail")]
    Fail,
}

/// One check of one source (or of the downstream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckItem {
    /// DM's checking item (`replication_privilege`, `binlog_format`, ...), or one of
    /// [`Item::SourceExist`], [`Item::UpstreamConnection`], [`Item::DownstreamConnection`].
    pub name: Item,
    /// The source the item checked; empty for the downstream.
    pub source: String,
    pub state: CheckState,
    /// What was found; empty on success.
    pub message: String,
    /// What to do about it; empty on success.
    pub instruction: String,
}

impl CheckItem {
    fn new(
        name: Item,
        source: &str,
        state: CheckState,
        message: String,
        instruction: String,
    ) -> Self {
        Self {
            name,
            source: source.to_string(),
            state,
            message,
            instruction,
        }
    }

    fn success(name: Item, source: &str) -> Self {
        Self::new(
            name,
            source,
            CheckState::Success,
            String::new(),
            String::new(),
        )
    }

    fn fail(
        name: Item,
        source: &str,
        message: impl Into<String>,
        instruction: impl Into<String>,
    ) -> Self {
        Self::new(
            name,
            source,
            CheckState::Fail,
            message.into(),
            instruction.into(),
        )
    }

    fn warn(
        name: Item,
        source: &str,
        message: impl Into<String>,
        instruction: impl Into<String>,
    ) -> Self {
        Self::new(
            name,
            source,
            CheckState::Warning,
            message.into(),
            instruction.into(),
        )
    }

    /// `[source up1] replication_privilege: message` (`[downstream]` for the target).
    fn line(&self) -> String {
        let whose = if self.source.is_empty() {
            "downstream".to_string()
        } else {
            format!("source {}", self.source)
        };
        let mut s = format!("[{whose}] {}: {}", self.name, self.message);
        if !self.instruction.is_empty() {
            s.push_str(" (");
            s.push_str(&self.instruction);
            s.push(')');
        }
        s
    }
}

/// Every item of one precheck run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// False when any item failed (warnings pass).
    pub passed: bool,
    pub items: Vec<CheckItem>,
}

impl CheckReport {
    /// Builds a report; `passed` is derived from the items.
    pub fn new(items: Vec<CheckItem>) -> Self {
        let passed = items.iter().all(|i| i.state != CheckState::Fail);
        Self { passed, items }
    }

    fn count(&self, state: CheckState) -> usize {
        self.items.iter().filter(|i| i.state == state).count()
    }

    /// DM-like JSON: `{"passed":..,"summary":{"passed","total","successful","failed",
    /// "warning"},"results":[{"id","name","desc","state","errors":[{"severity",
    /// "short_error"}],"instruction","extra"}]}`; `extra` names the source (or the downstream).
    pub fn to_json(&self) -> String {
        let results: Vec<_> = self
            .items
            .iter()
            .enumerate()
            .map(|(id, i)| {
                let mut r = json!({
                    "id": id,
                    "name": i.name,
                    "desc": i.name.desc(),
                    "state": i.state,
                    "extra": if i.source.is_empty() { "downstream".to_string() } else { format!("source {}", i.source) },
                });
                if i.state != CheckState::Success {
                    r["errors"] = json!([{ "severity": i.state, "short_error": i.message }]);
                    r["instruction"] = json!(i.instruction);
                }
                r
            })
            .collect();
        json!({
            "passed": self.passed,
            "summary": {
                "passed": self.passed,
                "total": self.items.len(),
                "successful": self.count(CheckState::Success),
                "failed": self.count(CheckState::Fail),
                "warning": self.count(CheckState::Warning),
            },
            "results": results,
        })
        .to_string()
    }

    /// The `check_result` text of DM's answers: `pre-check is passed. ` when every item
    /// succeeded, otherwise [`Self::to_json`].
    pub fn check_result(&self) -> String {
        if self.items.iter().all(|i| i.state == CheckState::Success) {
            "pre-check is passed. ".to_string()
        } else {
            self.to_json()
        }
    }

    /// `Ok(self)` when passed. Otherwise an error listing every failed item:
    /// [`codes::SCHEDULER_SOURCE_CFG_NOT_EXIST`] when a source does not exist, else
    /// [`codes::MASTER_PRECHECK_FAILED`].
    pub fn into_result(self) -> Result<CheckReport, DmError> {
        if self.passed {
            return Ok(self);
        }
        let failed: Vec<&CheckItem> = self
            .items
            .iter()
            .filter(|i| i.state == CheckState::Fail)
            .collect();
        let code = if failed.iter().any(|i| i.name == Item::SourceExist) {
            &codes::SCHEDULER_SOURCE_CFG_NOT_EXIST
        } else {
            &codes::MASTER_PRECHECK_FAILED
        };
        let mut msg = format!(
            "precheck failed: {} of {} item{} failed:",
            failed.len(),
            self.items.len(),
            if self.items.len() == 1 { "" } else { "s" }
        );
        for i in &failed {
            msg.push_str("\n  - ");
            msg.push_str(&i.line());
        }
        Err(DmError::new(code, msg))
    }
}

/// Which items run, from `ignore-checking-items`.
struct Enabled {
    all_off: bool,
    ignored: BTreeSet<Item>,
}

impl Enabled {
    fn new(ignore: &[String]) -> Self {
        Self {
            all_off: ignore.iter().any(|i| i == Item::All.name()),
            ignored: ignore.iter().filter_map(|i| Item::parse(i)).collect(),
        }
    }

    fn on(&self, item: Item) -> bool {
        !self.all_off && !self.ignored.contains(&item)
    }
}

/// Runs the precheck of `task` against the upstreams named in `sources` (by source-id) and
/// the task's target. `key` decrypts DM cipher-text passwords.
pub async fn check_task(
    task: &TaskConfig,
    sources: &BTreeMap<String, SourceConfig>,
    key: Option<&SecretKey>,
) -> CheckReport {
    let enabled = Enabled::new(&task.ignore_checking_items);
    let subtasks = task.subtasks();
    let mut items = Vec::new();
    for st in &subtasks {
        if !sources.contains_key(&st.source_id) {
            items.push(CheckItem::fail(
                Item::SourceExist,
                &st.source_id,
                format!("source `{}` does not exist", st.source_id),
                "Create the source first (`dmctl operate-source create` or POST /api/v1/sources), or fix the source-id in mysql-instances.",
            ));
        }
    }
    if enabled.all_off {
        return CheckReport::new(items);
    }
    let upstreams = subtasks.iter().filter_map(|st| {
        sources
            .get(&st.source_id)
            .map(|src| check_source(st, src, key, &enabled))
    });
    let (per_source, downstream) =
        futures_util::future::join(join_all(upstreams), check_downstream(task, key, &enabled))
            .await;
    items.extend(per_source.into_iter().flatten());
    items.extend(downstream);
    let report = CheckReport::new(items);
    info!(
        task = %task.name,
        passed = report.passed,
        failed = report.count(CheckState::Fail),
        warnings = report.count(CheckState::Warning),
        "precheck finished"
    );
    report
}

/// Connects with [`CONNECT_TIMEOUT`].
async fn connect(opts: Opts) -> Result<Conn, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}

/// Runs a connection's `session` statements as the units will, so a setting the server
/// refuses fails the precheck instead of every unit start.
async fn try_session(conn: &mut Conn, session: &[String]) -> Result<(), String> {
    for sql in session {
        tokio::time::timeout(CONNECT_TIMEOUT, conn.query_drop(sql))
            .await
            .map_err(|_| format!("`{sql}` did not answer in time"))?
            .map_err(|e| format!("`{sql}`: {e}"))?;
    }
    Ok(())
}

fn addr(db: &crate::config::db::DbConfig) -> String {
    format!("{}@{}:{}", db.user, db.host, db.port)
}

/// Every item of one source.
async fn check_source(
    st: &SubTaskConfig,
    src: &SourceConfig,
    key: Option<&SecretKey>,
    enabled: &Enabled,
) -> Vec<CheckItem> {
    let id = st.source_id.as_str();
    let mut conn = match connect(src.from.to_opts(key)).await {
        Ok(c) => c,
        Err(e) => {
            return vec![CheckItem::fail(
                Item::UpstreamConnection,
                id,
                format!("cannot connect to {}: {e}", addr(&src.from)),
                "Check that the upstream is running and reachable from dm-master, and the source's host, port, user and password.",
            )];
        }
    };
    if let Err(e) = try_session(&mut conn, &src.from.session_sql()).await {
        let _ = conn.disconnect().await;
        return vec![CheckItem::fail(
            Item::UpstreamConnection,
            id,
            format!(
                "{} refused the source's `from.session`: {e}",
                addr(&src.from)
            ),
            "Remove or correct the session variable in the source's `from.session` (variables of another server kind, e.g. TiDB's `tidb_*` on MySQL, do not exist).",
        )];
    }
    let items = match tokio::time::timeout(
        SERVER_CHECK_TIMEOUT,
        source_items(&mut conn, st, enabled),
    )
    .await
    {
        Ok(Ok(items)) => items,
        Ok(Err(e)) => vec![CheckItem::fail(
            Item::UpstreamConnection,
            id,
            format!("querying {} failed: {e}", addr(&src.from)),
            "Check the upstream is healthy and the account may read its variables.",
        )],
        Err(_) => vec![CheckItem::fail(
            Item::UpstreamConnection,
            id,
            format!(
                "the checks of {} took longer than {} s",
                addr(&src.from),
                SERVER_CHECK_TIMEOUT.as_secs()
            ),
            "Check the upstream is not overloaded or locked, then check again.",
        )],
    };
    let _ = conn.disconnect().await;
    items
}

/// The upstream's version and the variables the items need.
struct ServerFacts {
    version: String,
    vars: BTreeMap<String, String>,
}

async fn server_facts(conn: &mut Conn) -> Result<ServerFacts, String> {
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| e.to_string())?;
    let rows: Vec<Row> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
             ('log_bin', 'binlog_format', 'binlog_row_image', 'server_id')",
        )
        .await
        .map_err(|e| e.to_string())?;
    let vars = rows
        .iter()
        .filter_map(|r| {
            Some((
                text(r, 0)?.to_ascii_lowercase(),
                text(r, 1).unwrap_or_default(),
            ))
        })
        .collect();
    Ok(ServerFacts {
        version: version.unwrap_or_default(),
        vars,
    })
}

/// The items of one connected source.
async fn source_items(
    conn: &mut Conn,
    st: &SubTaskConfig,
    enabled: &Enabled,
) -> Result<Vec<CheckItem>, String> {
    let id = st.source_id.as_str();
    let facts = server_facts(conn).await?;
    let mut items = vec![CheckItem::success(Item::UpstreamConnection, id)];
    let mode = st.task_mode;
    if enabled.on(Item::Version) {
        items.push(check_version(id, &facts.version));
    }
    let need_tables =
        enabled.on(Item::TableSchema) || (mode.dumps() && enabled.on(Item::DumpPrivilege));
    let tables = if need_tables {
        let filter = BaFilter::new(st.block_allow_list.as_ref(), st.case_sensitive)
            .map_err(|e| e.chain())?;
        list_objects(conn, &filter)
            .await
            .map_err(|e| e.chain())?
            .tables
    } else {
        Vec::new()
    };
    let need_grants = (mode.dumps() && enabled.on(Item::DumpPrivilege))
        || (mode.syncs() && enabled.on(Item::ReplicationPrivilege));
    let grants = if need_grants {
        Some(read_grants(conn).await)
    } else {
        None
    };
    if mode.dumps() && enabled.on(Item::DumpPrivilege) {
        let consistency = st.mydumper.consistency().to_ascii_lowercase();
        items.push(match grants.as_ref().expect("read above") {
            Ok(g) => check_dump_privilege(
                id,
                g,
                &tables,
                &literal_schemas(st.block_allow_list.as_ref()),
                &consistency,
            ),
            Err(e) => grants_unreadable(Item::DumpPrivilege, id, e),
        });
    } else if !mode.dumps()
        && enabled.on(Item::MetaPosition)
        && let Some(meta) = st.meta.as_ref().filter(|m| !m.binlog_name.is_empty())
    {
        items.push(check_meta_position(conn, id, &meta.binlog_name, meta.binlog_pos).await);
    }
    if mode.syncs() {
        items.extend(check_binlog_vars(id, &facts, enabled));
        if enabled.on(Item::ReplicationPrivilege) {
            items.push(match grants.as_ref().expect("read above") {
                Ok(g) => check_replication_privilege(id, g),
                Err(e) => grants_unreadable(Item::ReplicationPrivilege, id, e),
            });
        }
    }
    if enabled.on(Item::TableSchema) {
        let keyed = keyed_tables(conn, &tables).await?;
        items.push(check_table_keys(id, &tables, &keyed));
    }
    Ok(items)
}

fn grants_unreadable(item: Item, source: &str, e: &str) -> CheckItem {
    CheckItem::fail(
        item,
        source,
        format!("cannot read the account's grants: {e}"),
        "Check the account may run SHOW GRANTS, or ignore this item.",
    )
}

/// Parses `5.7.18-log`, `10.11.6-MariaDB-0+deb12u1-log` into (major, minor, patch).
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let head = v.split('-').next()?;
    let mut parts = head.split('.').map(|p| p.parse::<u32>().ok());
    let (a, b, c) = (parts.next()??, parts.next()??, parts.next()??);
    Some((a, b, c))
}

fn check_version(source: &str, version: &str) -> CheckItem {
    let is_mariadb = version.to_ascii_lowercase().contains("mariadb");
    let Some(v) = parse_version(version) else {
        return CheckItem::warn(
            Item::Version,
            source,
            format!("cannot parse the upstream version `{version}`"),
            "Use MySQL 5.6 to 8.4 or MariaDB 10.1.2 or later.",
        );
    };
    let (min, max) = if is_mariadb {
        ((10, 1, 2), (u32::MAX, 0, 0))
    } else {
        ((5, 6, 0), (8, 5, 0))
    };
    if v < min {
        CheckItem::warn(
            Item::Version,
            source,
            format!(
                "version suggested at least {}.{}.{} but got {version}",
                min.0, min.1, min.2
            ),
            "Upgrade the upstream before migrating; otherwise data inconsistency or task errors may occur.",
        )
    } else if v >= max {
        CheckItem::warn(
            Item::Version,
            source,
            format!(
                "version suggested earlier than {}.{}.{} but got {version}",
                max.0, max.1, max.2
            ),
            "Use a supported upstream version; otherwise data inconsistency or task errors may occur.",
        )
    } else {
        CheckItem::success(Item::Version, source)
    }
}

/// `server_id`, `binlog_enable`, `binlog_format`, `binlog_row_image`.
fn check_binlog_vars(source: &str, facts: &ServerFacts, enabled: &Enabled) -> Vec<CheckItem> {
    let var = |n: &str| facts.vars.get(n).cloned().unwrap_or_default();
    let mut items = Vec::new();
    if enabled.on(Item::ServerId) {
        let id = var("server_id");
        items.push(if id.parse::<u64>().unwrap_or(0) > 0 {
            CheckItem::success(Item::ServerId, source)
        } else {
            CheckItem::fail(Item::ServerId,
                source,
                format!("server_id is `{id}`, it must be greater than 0"),
                "Set server_id greater than 0 in the upstream's my.cnf (and SET GLOBAL server_id), or errors might happen in master/slave switchover.",
            )
        });
    }
    let binlog = BinlogSettings::from_vars(|n| facts.vars.get(n).cloned());
    if enabled.on(Item::BinlogEnable) {
        let v = &binlog.log_bin;
        items.push(if binlog.log_bin_on() {
            CheckItem::success(Item::BinlogEnable, source)
        } else {
            CheckItem::fail(
                Item::BinlogEnable,
                source,
                format!("log_bin is `{v}`, and should be ON"),
                codes::TASK_CHECK_BINLOG_DISABLED.workaround,
            )
        });
    }
    if enabled.on(Item::BinlogFormat) {
        let v = &binlog.format;
        items.push(if binlog.row_format() {
            CheckItem::success(Item::BinlogFormat, source)
        } else {
            CheckItem::fail(Item::BinlogFormat,
                source,
                format!("binlog_format is `{v}`, and should be ROW"),
                "Execute `SET GLOBAL binlog_format = ROW` on the upstream and set it in my.cnf, then check again.",
            )
        });
    }
    if enabled.on(Item::BinlogRowImage) {
        let v = &binlog.row_image;
        items.push(if binlog.full_image() {
            CheckItem::success(Item::BinlogRowImage, source)
        } else {
            CheckItem::fail(Item::BinlogRowImage,
                source,
                format!("binlog_row_image is `{v}`, and should be FULL"),
                "Execute `SET GLOBAL binlog_row_image = FULL` on the upstream and set it in my.cnf, then check again.",
            )
        });
    }
    items
}

/// `meta.binlog-name` is one of the upstream's binlog files and `binlog-pos` within it.
async fn check_meta_position(conn: &mut Conn, source: &str, name: &str, pos: u32) -> CheckItem {
    let rows: Vec<Row> = match conn.query("SHOW BINARY LOGS").await {
        Ok(r) => r,
        Err(e) => {
            return CheckItem::fail(
                Item::MetaPosition,
                source,
                format!("cannot list the upstream's binlog files: {e}"),
                "Grant REPLICATION CLIENT (MariaDB: BINLOG MONITOR) to the account, or ignore `meta_position`.",
            );
        }
    };
    let files: Vec<(String, u64)> = rows
        .iter()
        .filter_map(|r| Some((text(r, 0)?, text(r, 1)?.parse().ok()?)))
        .collect();
    match files.iter().find(|(f, _)| f == name) {
        None => CheckItem::fail(
            Item::MetaPosition,
            source,
            format!(
                "binlog file `{name}` of meta is not on the upstream (it has {} files)",
                files.len()
            ),
            "Set meta.binlog-name to a file listed by SHOW BINARY LOGS; a purged file cannot be replicated from.",
        ),
        Some((_, size)) if u64::from(pos) > *size => CheckItem::fail(
            Item::MetaPosition,
            source,
            format!("binlog-pos {pos} is past the end of `{name}` ({size} bytes)"),
            "Set meta.binlog-pos to an event start inside the file.",
        ),
        Some(_) => CheckItem::success(Item::MetaPosition, source),
    }
}

fn check_replication_privilege(source: &str, grants: &Grants) -> CheckItem {
    let lacking = lacking_global(grants, &["REPLICATION SLAVE", "REPLICATION CLIENT"]);
    if lacking.is_empty() {
        return CheckItem::success(Item::ReplicationPrivilege, source);
    }
    CheckItem::fail(
        Item::ReplicationPrivilege,
        source,
        lack_message(&lacking),
        format!(
            "Grant the required privileges to the account: GRANT {} ON *.* TO <user>@<host> (MariaDB shows REPLICATION CLIENT as BINLOG MONITOR).",
            lacking.join(", ")
        ),
    )
}

fn list_tables(tables: &[&TableRef]) -> String {
    let mut s = tables
        .iter()
        .take(MAX_LISTED_TABLES)
        .map(|t| format!("`{}`.`{}`", t.schema, t.name))
        .collect::<Vec<_>>()
        .join(", ");
    if tables.len() > MAX_LISTED_TABLES {
        s.push_str(&format!(" and {} more", tables.len() - MAX_LISTED_TABLES));
    }
    s
}

/// The schemas a block-allow-list names literally (no wildcard, no `~regex`).
fn literal_schemas(ba: Option<&BaList>) -> BTreeSet<String> {
    let Some(ba) = ba else {
        return BTreeSet::new();
    };
    ba.do_dbs
        .iter()
        .chain(ba.do_tables.iter().map(|t| &t.db_name))
        .filter(|d| !d.starts_with('~') && !d.contains(['*', '?']))
        .cloned()
        .collect()
}

/// `tables` are the selected tables the account can see; `literal_dbs` the schemas the
/// block-allow-list names, which must be readable even when no table of them is visible (an
/// account without SELECT sees none).
fn check_dump_privilege(
    source: &str,
    grants: &Grants,
    tables: &[TableRef],
    literal_dbs: &BTreeSet<String>,
    consistency: &str,
) -> CheckItem {
    let mut problems = Vec::new();
    let mut grant = Vec::new();
    let global: &[&str] = match consistency {
        "auto" | "flush" => &["RELOAD"],
        "lock" => &["LOCK TABLES"],
        _ => &[],
    };
    let lacking = lacking_global(grants, global);
    if !lacking.is_empty() {
        problems.push(lack_message(&lacking));
        grant.push(format!(
            "GRANT {} ON *.* TO <user>@<host>",
            lacking.join(", ")
        ));
    }
    let no_select: Vec<&TableRef> = tables
        .iter()
        .filter(|t| !grants.has_on_table("SELECT", &t.schema, &t.name))
        .collect();
    if !no_select.is_empty() {
        problems.push(format!(
            "lack of SELECT privilege on {}",
            list_tables(&no_select)
        ));
        grant.push("GRANT SELECT ON <each selected schema>.* TO <user>@<host>".to_string());
    }
    let unreadable: Vec<&str> = literal_dbs
        .iter()
        .filter(|db| !tables.iter().any(|t| &t.schema == *db) && !grants.has_on_db("SELECT", db))
        .map(String::as_str)
        .collect();
    if !unreadable.is_empty() {
        problems.push(format!(
            "lack of SELECT privilege on schema {}",
            unreadable
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if no_select.is_empty() {
            grant.push("GRANT SELECT ON <each selected schema>.* TO <user>@<host>".to_string());
        }
    }
    if problems.is_empty() {
        return CheckItem::success(Item::DumpPrivilege, source);
    }
    CheckItem::fail(
        Item::DumpPrivilege,
        source,
        problems.join("; "),
        format!(
            "Grant the required privileges to the account: {} (consistency `{consistency}`; `--consistency none` in the mydumper extra-args needs no RELOAD or LOCK TABLES).",
            grant.join("; ")
        ),
    )
}

/// The tables of `tables` that have a primary or unique key.
async fn keyed_tables(
    conn: &mut Conn,
    tables: &[TableRef],
) -> Result<BTreeSet<(String, String)>, String> {
    let schemas: BTreeSet<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
    if schemas.is_empty() {
        return Ok(BTreeSet::new());
    }
    let sql = format!(
        // STATISTICS, not TABLE_CONSTRAINTS: MariaDB hides constraint rows from an account
        // with only SELECT on the tables (DM's recommended privileges), but not index rows.
        "SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME FROM information_schema.STATISTICS \
         WHERE NON_UNIQUE = 0 AND TABLE_SCHEMA IN ({})",
        schemas
            .iter()
            .map(|s| quote_string(s))
            .collect::<Vec<_>>()
            .join(",")
    );
    let rows: Vec<Row> = conn.query(sql).await.map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((text(r, 0)?, text(r, 1)?)))
        .collect())
}

fn check_table_keys(
    source: &str,
    tables: &[TableRef],
    keyed: &BTreeSet<(String, String)>,
) -> CheckItem {
    let unkeyed: Vec<&TableRef> = tables
        .iter()
        .filter(|t| !keyed.contains(&(t.schema.clone(), t.name.clone())))
        .collect();
    if unkeyed.is_empty() {
        return CheckItem::success(Item::TableSchema, source);
    }
    CheckItem::warn(
        Item::TableSchema,
        source,
        format!(
            "{} table{} without a primary key or unique key: {}",
            unkeyed.len(),
            if unkeyed.len() == 1 { "" } else { "s" },
            list_tables(&unkeyed)
        ),
        "Add a primary key or a unique key to these tables: without one, replaying changes after a restart (safe mode) can duplicate rows downstream.",
    )
}

/// `downstream_connection` and `target_privilege`.
async fn check_downstream(
    task: &TaskConfig,
    key: Option<&SecretKey>,
    enabled: &Enabled,
) -> Vec<CheckItem> {
    let Some(target) = task.target_database.as_ref() else {
        return vec![CheckItem::fail(
            Item::DownstreamConnection,
            "",
            "the task has no target-database",
            "Set target-database in the task.",
        )];
    };
    let mut conn = match connect(target.to_opts(key)).await {
        Ok(c) => c,
        Err(e) => {
            return vec![CheckItem::fail(
                Item::DownstreamConnection,
                "",
                format!("cannot connect to {}: {e}", addr(target)),
                "Check that the target is running and reachable from dm-master, and target-database's host, port, user and password.",
            )];
        }
    };
    if let Err(e) = try_session(&mut conn, &target.session_sql()).await {
        let _ = conn.disconnect().await;
        return vec![CheckItem::fail(
            Item::DownstreamConnection,
            "",
            format!(
                "{} refused the task's `target-database.session`: {e}",
                addr(target)
            ),
            "Remove or correct the session variable in `target-database.session` (variables of another server kind, e.g. TiDB's `tidb_*` on MySQL or MariaDB, do not exist).",
        )];
    }
    let mut items = vec![CheckItem::success(Item::DownstreamConnection, "")];
    if enabled.on(Item::TargetPrivilege) {
        let grants = tokio::time::timeout(SERVER_CHECK_TIMEOUT, read_grants(&mut conn)).await;
        items.push(match grants {
            Ok(Ok(g)) => check_target_privilege(&g),
            Ok(Err(e)) => CheckItem::warn(
                Item::TargetPrivilege,
                "",
                format!("cannot read the target account's grants: {e}"),
                "Check the account may run SHOW GRANTS, or ignore `target_privilege`.",
            ),
            Err(_) => CheckItem::warn(
                Item::TargetPrivilege,
                "",
                "SHOW GRANTS on the target did not answer in time",
                "Check the target is not overloaded.",
            ),
        });
    }
    let _ = conn.disconnect().await;
    items
}

fn check_target_privilege(grants: &Grants) -> CheckItem {
    let lacking = lacking_global(
        grants,
        &[
            "CREATE", "SELECT", "INSERT", "UPDATE", "DELETE", "ALTER", "DROP", "INDEX",
        ],
    );
    if lacking.is_empty() {
        return CheckItem::success(Item::TargetPrivilege, "");
    }
    // The tables written are not all known in advance, so this is a warning, as in DM.
    CheckItem::warn(
        Item::TargetPrivilege,
        "",
        lack_message(&lacking),
        format!(
            "Grant the privileges to the target account: GRANT {} ON *.* TO <user>@<host>.",
            lacking.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str) -> TableRef {
        TableRef {
            schema: schema.into(),
            name: name.into(),
            rows_estimate: 0,
            avg_row_length: 0,
        }
    }

    #[test]
    fn replication_privilege_lists_what_is_missing() {
        let g = Grants::parse(&["GRANT SELECT, RELOAD ON *.* TO `u`@`%`"]);
        let item = check_replication_privilege("s1", &g);
        assert_eq!(item.state, CheckState::Fail);
        assert!(
            item.message.contains("REPLICATION SLAVE"),
            "{}",
            item.message
        );
        assert!(item.message.contains("REPLICATION CLIENT"));
        assert!(
            item.instruction
                .contains("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.*")
        );
    }

    #[test]
    fn dump_privilege_depends_on_consistency() {
        let g = Grants::parse(&["GRANT SELECT ON `d`.* TO `u`@`%`"]);
        let tables = [table("d", "t1"), table("e", "t2")];
        let none_named = BTreeSet::new();
        let flush = check_dump_privilege("s", &g, &tables, &none_named, "flush");
        assert_eq!(flush.state, CheckState::Fail);
        assert!(flush.message.contains("RELOAD"));
        assert!(flush.message.contains("`e`.`t2`"));
        assert!(!flush.message.contains("`d`.`t1`"));
        let none = check_dump_privilege("s", &g, &tables[..1], &none_named, "none");
        assert_eq!(none.state, CheckState::Success);
        let lock = check_dump_privilege("s", &g, &tables[..1], &none_named, "lock");
        assert!(lock.message.contains("LOCK TABLES"));
        // A named schema with no visible table must be readable.
        let named: BTreeSet<String> = ["d".to_string(), "hidden".to_string()].into();
        let item = check_dump_privilege("s", &g, &tables[..1], &named, "none");
        assert_eq!(item.state, CheckState::Fail);
        assert!(item.message.contains("schema `hidden`"), "{}", item.message);
        assert!(!item.message.contains("`d`"), "{}", item.message);
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("10.11.6-MariaDB-0+deb12u1-log"),
            Some((10, 11, 6))
        );
        assert_eq!(parse_version("8.0.36"), Some((8, 0, 36)));
        assert_eq!(parse_version("garbage"), None);
        assert_eq!(
            check_version("s", "10.11.6-MariaDB-log").state,
            CheckState::Success
        );
        assert_eq!(
            check_version("s", "10.0.1-MariaDB").state,
            CheckState::Warning
        );
        assert_eq!(check_version("s", "5.7.40-log").state, CheckState::Success);
        assert_eq!(check_version("s", "5.5.1").state, CheckState::Warning);
        assert_eq!(check_version("s", "9.1.0").state, CheckState::Warning);
    }

    #[test]
    fn binlog_vars_and_ignored_items() {
        let facts = ServerFacts {
            version: "10.11.6-MariaDB".into(),
            vars: [
                ("log_bin", "ON"),
                ("binlog_format", "MIXED"),
                ("binlog_row_image", "MINIMAL"),
                ("server_id", "0"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        };
        let items = check_binlog_vars("s", &facts, &Enabled::new(&[]));
        let state = |n: &str| items.iter().find(|i| i.name == n).map(|i| i.state);
        assert_eq!(state("binlog_enable"), Some(CheckState::Success));
        assert_eq!(state("binlog_format"), Some(CheckState::Fail));
        assert_eq!(state("binlog_row_image"), Some(CheckState::Fail));
        assert_eq!(state("server_id"), Some(CheckState::Fail));
        let ignored = check_binlog_vars("s", &facts, &Enabled::new(&["binlog_format".into()]));
        assert!(ignored.iter().all(|i| i.name != "binlog_format"));
        assert!(check_binlog_vars("s", &facts, &Enabled::new(&["all".into()])).is_empty());
    }

    #[test]
    fn report_json_and_result() {
        let ok = CheckReport::new(vec![
            CheckItem::success(Item::Version, "s1"),
            CheckItem::warn(Item::TableSchema, "s1", "1 table without a key", "add one"),
        ]);
        assert!(ok.passed);
        let v: serde_json::Value = serde_json::from_str(&ok.to_json()).unwrap();
        assert_eq!(v["summary"]["total"], 2);
        assert_eq!(v["summary"]["warning"], 1);
        assert_eq!(v["results"][1]["state"], "warn");
        assert_eq!(
            v["results"][1]["errors"][0]["short_error"],
            "1 table without a key"
        );
        assert!(ok.clone().into_result().is_ok());
        assert_ne!(ok.check_result(), "pre-check is passed. ");

        let bad = CheckReport::new(vec![CheckItem::fail(
            Item::ReplicationPrivilege,
            "s1",
            "lack of REPLICATION SLAVE global (*.*) privilege",
            "grant it",
        )]);
        assert!(!bad.passed);
        let e = bad.into_result().unwrap_err();
        assert_eq!(e.code, codes::MASTER_PRECHECK_FAILED.code);
        assert!(
            e.message
                .contains("[source s1] replication_privilege: lack of REPLICATION SLAVE"),
            "{}",
            e.message
        );

        let missing = CheckReport::new(vec![CheckItem::fail(
            Item::SourceExist,
            "nope",
            "source `nope` does not exist",
            "",
        )]);
        assert_eq!(
            missing.into_result().unwrap_err().code,
            codes::SCHEDULER_SOURCE_CFG_NOT_EXIST.code
        );
        assert_eq!(
            CheckReport::new(vec![]).check_result(),
            "pre-check is passed. "
        );
    }
}
