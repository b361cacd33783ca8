//! Which tables and events a subtask replicates: DM's block-allow-list and binlog event
//! filter, compiled once from the config rules.
//!
//! Name patterns: a name starting with `~` is a regular expression over the rest; otherwise
//! `*` matches any run and `?` one character, everything else literally. Matching ignores case
//! unless the task is `case-sensitive`.

use regex::{Regex, RegexBuilder};

use crate::config::rules::{BaList, BinlogEventRule};
use crate::error::{DmError, codes};

/// Schemas never replicated.
pub const SYSTEM_SCHEMAS: &[&str] = &[
    "mysql",
    "information_schema",
    "performance_schema",
    "sys",
    "metrics_schema",
    "inspection_schema",
];

/// True for MySQL/MariaDB/TiDB system schemas.
pub fn is_system_schema(schema: &str) -> bool {
    SYSTEM_SCHEMAS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(schema))
}

/// A compiled name pattern.
#[derive(Debug, Clone)]
pub struct NamePattern {
    re: Regex,
    /// The pattern matches every name (`*` or empty table pattern).
    any: bool,
    /// The pattern names one name (no wildcard, not a regex).
    exact: bool,
}

impl NamePattern {
    /// Compiles `~regex` or a wildcard pattern.
    pub fn new(pattern: &str, case_sensitive: bool) -> Result<Self, DmError> {
        let source = match pattern.strip_prefix('~') {
            Some(re) => re.to_string(),
            None => {
                let mut s = String::from("^");
                for c in pattern.chars() {
                    match c {
                        '*' => s.push_str(".*"),
                        '?' => s.push('.'),
                        c => s.push_str(&regex::escape(&c.to_string())),
                    }
                }
                s.push('$');
                s
            }
        };
        let re = RegexBuilder::new(&source)
            .case_insensitive(!case_sensitive)
            .build()
            .map_err(|e| {
                DmError::new(
                    &codes::CONFIG_INVALID_REGEX,
                    format!("bad name pattern `{pattern}`"),
                )
                .with_cause(e)
            })?;
        Ok(Self {
            re,
            any: pattern == "*",
            exact: !pattern.starts_with('~') && !pattern.contains(['*', '?']),
        })
    }

    /// Whether the pattern names exactly one name (no wildcard, not a regex).
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        self.any || self.re.is_match(name)
    }
}

fn compile_all(names: &[String], case_sensitive: bool) -> Result<Vec<NamePattern>, DmError> {
    names
        .iter()
        .map(|n| NamePattern::new(n, case_sensitive))
        .collect()
}

/// A compiled block-allow-list (MySQL replication-filter semantics, as DM's).
#[derive(Debug, Clone, Default)]
pub struct BaFilter {
    do_dbs: Vec<NamePattern>,
    ignore_dbs: Vec<NamePattern>,
    do_tables: Vec<(NamePattern, NamePattern)>,
    ignore_tables: Vec<(NamePattern, NamePattern)>,
}

impl BaFilter {
    /// Compiles a rule; `None` means "everything but system schemas".
    pub fn new(rule: Option<&BaList>, case_sensitive: bool) -> Result<Self, DmError> {
        let Some(r) = rule else {
            return Ok(Self::default());
        };
        let pairs = |list: &[crate::config::rules::TableRef]| -> Result<Vec<_>, DmError> {
            list.iter()
                .map(|t| {
                    Ok((
                        NamePattern::new(&t.db_name, case_sensitive)?,
                        NamePattern::new(&t.tbl_name, case_sensitive)?,
                    ))
                })
                .collect()
        };
        Ok(Self {
            do_dbs: compile_all(&r.do_dbs, case_sensitive)?,
            ignore_dbs: compile_all(&r.ignore_dbs, case_sensitive)?,
            do_tables: pairs(&r.do_tables)?,
            ignore_tables: pairs(&r.ignore_tables)?,
        })
    }

    /// Whether `schema`.`table` is replicated; `table` is `None` for schema-level statements
    /// (CREATE/DROP DATABASE).
    pub fn allows(&self, schema: &str, table: Option<&str>) -> bool {
        if is_system_schema(schema) {
            return false;
        }
        if !self.do_dbs.is_empty() {
            // A schema listed only through do-tables still counts for do-dbs' purpose.
            let in_do_dbs = self.do_dbs.iter().any(|p| p.matches(schema))
                || self.do_tables.iter().any(|(d, _)| d.matches(schema));
            if !in_do_dbs {
                return false;
            }
        } else if self.ignore_dbs.iter().any(|p| p.matches(schema)) {
            return false;
        }
        let Some(table) = table else {
            // Schema-level: allowed if some table rule could apply here, or no table rules.
            return self.do_tables.is_empty()
                || self.do_tables.iter().any(|(d, _)| d.matches(schema))
                || self.do_dbs.iter().any(|p| p.matches(schema));
        };
        if self
            .do_tables
            .iter()
            .any(|(d, t)| d.matches(schema) && t.matches(table))
        {
            return true;
        }
        if self
            .ignore_tables
            .iter()
            .any(|(d, t)| d.matches(schema) && t.matches(table))
        {
            return false;
        }
        if self.do_tables.is_empty() {
            return true;
        }
        // do-tables exist but none matched: the table passes only when its whole schema is
        // in do-dbs (do-dbs and do-tables combine as a union).
        self.do_dbs.iter().any(|p| p.matches(schema))
    }
}

/// The kind of a binlog event as the event filter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Insert,
    Update,
    Delete,
    /// A DDL, with its filter name (`create table`, `drop column`, ...).
    Ddl(&'static str),
}

impl EventKind {
    fn is_dml(self) -> bool {
        matches!(self, Self::Insert | Self::Update | Self::Delete)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Ddl(n) => n,
        }
    }
}

/// What the filter says about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterAction {
    Do,
    Ignore,
    Error,
}

#[derive(Debug, Clone)]
struct CompiledEventRule {
    schema: NamePattern,
    table: Option<NamePattern>,
    events: Vec<String>,
    sql: Vec<Regex>,
    action: FilterAction,
}

/// A compiled list of binlog event filter rules (the task's rules plus the source's).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    rules: Vec<CompiledEventRule>,
}

impl EventFilter {
    /// Compiles `rules` in order.
    pub fn new(rules: &[BinlogEventRule], case_sensitive: bool) -> Result<Self, DmError> {
        let rules = rules
            .iter()
            .map(|r| {
                let action = match r.action.to_ascii_lowercase().as_str() {
                    "do" => FilterAction::Do,
                    "error" => FilterAction::Error,
                    _ => FilterAction::Ignore,
                };
                let sql = r
                    .sql_pattern
                    .iter()
                    .map(|p| {
                        RegexBuilder::new(p)
                            .case_insensitive(true)
                            .build()
                            .map_err(|e| {
                                DmError::new(
                                    &codes::CONFIG_INVALID_REGEX,
                                    format!("bad sql-pattern `{p}`"),
                                )
                                .with_cause(e)
                            })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(CompiledEventRule {
                    schema: NamePattern::new(&r.schema_pattern, case_sensitive)?,
                    table: if r.table_pattern.is_empty() {
                        None
                    } else {
                        Some(NamePattern::new(&r.table_pattern, case_sensitive)?)
                    },
                    events: r
                        .events
                        .iter()
                        .map(|e| e.trim().to_ascii_lowercase())
                        .collect(),
                    sql,
                    action,
                })
            })
            .collect::<Result<_, DmError>>()?;
        Ok(Self { rules })
    }

    /// True when no rule is configured (the common case: skip the work).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The action for an event of `kind` on `schema`.`table` (`sql` is the statement for
    /// DDL, empty for rows events). Table-level rules of a matching table come before
    /// schema-level rules; within a level the first deciding rule wins. A `Do` rule that
    /// matches the table but not the event ignores the event.
    pub fn action(
        &self,
        schema: &str,
        table: Option<&str>,
        kind: EventKind,
        sql: &str,
    ) -> FilterAction {
        let applies = |r: &CompiledEventRule, table_level: bool| {
            r.schema.matches(schema)
                && match (&r.table, table) {
                    (Some(p), Some(t)) => table_level && p.matches(t),
                    (None, _) => !table_level,
                    (Some(_), None) => false,
                }
        };
        for table_level in [true, false] {
            for r in self.rules.iter().filter(|r| applies(r, table_level)) {
                let event_hit = r.events.iter().any(|e| event_matches(e, kind));
                let sql_hit = !sql.is_empty() && r.sql.iter().any(|re| re.is_match(sql));
                let hit = event_hit || sql_hit;
                match r.action {
                    FilterAction::Do if !hit => return FilterAction::Ignore,
                    FilterAction::Do => return FilterAction::Do,
                    action if hit => return action,
                    _ => {}
                }
            }
        }
        FilterAction::Do
    }
}

fn event_matches(rule_event: &str, kind: EventKind) -> bool {
    match rule_event {
        "all" => true,
        "all dml" => kind.is_dml(),
        "all ddl" => !kind.is_dml(),
        "none" | "none dml" | "none ddl" => false,
        "create schema" => kind.name() == "create database",
        "drop schema" => kind.name() == "drop database",
        "alter schema" => kind.name() == "alter database",
        e => e == kind.name() || (e == "alter table" && is_alter_sub_kind(kind.name())),
    }
}

/// ALTER TABLE sub-kinds are also `alter table` events.
fn is_alter_sub_kind(name: &str) -> bool {
    matches!(
        name,
        "add column"
            | "drop column"
            | "modify column"
            | "rename column"
            | "rename index"
            | "drop primary key"
            | "drop unique key"
            | "modify default value"
            | "modify constraint"
            | "modify columns order"
            | "modify charset"
            | "modify collation"
            | "remove auto increment"
            | "modify storage engine"
            | "add table partition"
            | "drop table partition"
            | "truncate table partition"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules::TableRef;

    fn tref(d: &str, t: &str) -> TableRef {
        TableRef {
            db_name: d.into(),
            tbl_name: t.into(),
        }
    }

    #[test]
    fn patterns() {
        let p = NamePattern::new("shop_*", false).unwrap();
        assert!(p.matches("shop_1") && p.matches("SHOP_x") && !p.matches("xshop_1"));
        assert!(!NamePattern::new("shop_*", true).unwrap().matches("SHOP_1"));
        assert!(NamePattern::new("t?", false).unwrap().matches("t1"));
        assert!(
            NamePattern::new("~^log_[0-9]+$", false)
                .unwrap()
                .matches("log_12")
        );
        assert!(
            !NamePattern::new("a.b", false).unwrap().matches("axb"),
            "dots are literal"
        );
    }

    #[test]
    fn ba_list_semantics() {
        let all = BaFilter::new(None, false).unwrap();
        assert!(all.allows("db", Some("t")));
        assert!(!all.allows("mysql", Some("user")));

        let rule = BaList {
            do_dbs: vec!["shop".into(), "~^log_\\d+$".into()],
            ignore_tables: vec![tref("shop", "tmp_*")],
            ..Default::default()
        };
        let f = BaFilter::new(Some(&rule), false).unwrap();
        assert!(f.allows("shop", Some("orders")));
        assert!(!f.allows("shop", Some("tmp_1")));
        assert!(f.allows("log_7", Some("x")));
        assert!(!f.allows("other", Some("orders")));
        assert!(f.allows("shop", None));
        assert!(!f.allows("other", None));

        let tables_only = BaList {
            do_tables: vec![tref("a", "t1")],
            ignore_dbs: vec!["b".into()],
            ..Default::default()
        };
        let f = BaFilter::new(Some(&tables_only), false).unwrap();
        assert!(f.allows("a", Some("t1")));
        assert!(!f.allows("a", Some("t2")));
        assert!(!f.allows("b", Some("t1")));
        assert!(f.allows("a", None));

        let ignore = BaList {
            ignore_dbs: vec!["x*".into()],
            ..Default::default()
        };
        let f = BaFilter::new(Some(&ignore), false).unwrap();
        assert!(!f.allows("xy", Some("t")) && f.allows("yx", Some("t")));
    }

    fn rule(
        schema: &str,
        table: &str,
        events: &[&str],
        sql: &[&str],
        action: &str,
    ) -> BinlogEventRule {
        BinlogEventRule {
            schema_pattern: schema.into(),
            table_pattern: table.into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            sql_pattern: sql.iter().map(|s| s.to_string()).collect(),
            action: action.into(),
        }
    }

    #[test]
    fn event_filter_semantics() {
        let f = EventFilter::new(
            &[
                rule("shop", "orders", &["delete"], &[], "Ignore"),
                rule(
                    "shop",
                    "",
                    &["truncate table"],
                    &["^DROP\\s+TABLE"],
                    "Error",
                ),
                rule("log*", "", &["all dml"], &[], "Do"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            f.action("shop", Some("orders"), EventKind::Delete, ""),
            FilterAction::Ignore
        );
        assert_eq!(
            f.action("shop", Some("orders"), EventKind::Insert, ""),
            FilterAction::Do
        );
        assert_eq!(
            f.action("shop", Some("items"), EventKind::Delete, ""),
            FilterAction::Do
        );
        assert_eq!(
            f.action(
                "shop",
                Some("t"),
                EventKind::Ddl("truncate table"),
                "TRUNCATE t"
            ),
            FilterAction::Error
        );
        assert_eq!(
            f.action(
                "shop",
                Some("t"),
                EventKind::Ddl("drop table"),
                "DROP TABLE t"
            ),
            FilterAction::Error
        );
        assert_eq!(
            f.action("log_1", Some("t"), EventKind::Insert, ""),
            FilterAction::Do
        );
        assert_eq!(
            f.action(
                "log_1",
                Some("t"),
                EventKind::Ddl("create table"),
                "CREATE TABLE t (a int)"
            ),
            FilterAction::Ignore
        );
        assert_eq!(
            f.action("other", Some("t"), EventKind::Delete, ""),
            FilterAction::Do
        );
        let alter =
            EventFilter::new(&[rule("*", "", &["alter table"], &[], "Ignore")], false).unwrap();
        assert_eq!(
            alter.action(
                "a",
                Some("t"),
                EventKind::Ddl("add column"),
                "ALTER TABLE t ADD c INT"
            ),
            FilterAction::Ignore
        );
    }
}
