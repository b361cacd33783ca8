//! Rule configs shared by task and source files: table routes, binlog event filters,
//! block-allow-lists and expression filters, with DM's keys and their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Issues;
use crate::error::codes;

/// `routes.<name>`: maps upstream schemas/tables (wildcards `*`, `?`) to a target table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct RouteRule {
    pub schema_pattern: String,
    pub table_pattern: String,
    pub target_schema: String,
    pub target_table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extract_table: Option<ExtractTable>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extract_schema: Option<ExtractSchema>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extract_source: Option<ExtractSource>,
}

/// Fills `target-column` with the part of the table name `table-regexp` captures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ExtractTable {
    pub table_regexp: String,
    pub target_column: String,
}

/// Fills `target-column` with the part of the schema name `schema-regexp` captures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ExtractSchema {
    pub schema_regexp: String,
    pub target_column: String,
}

/// Fills `target-column` with the part of the source-id `source-regexp` captures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ExtractSource {
    pub source_regexp: String,
    pub target_column: String,
}

impl RouteRule {
    /// Pushes every problem of the rule at `key`.
    pub fn validate(&self, key: &str, issues: &mut Issues) {
        let code = &codes::CONFIG_GEN_TABLE_ROUTER;
        if self.schema_pattern.is_empty() {
            issues.push(
                format!("{key}.schema-pattern"),
                code,
                "schema-pattern is empty",
            );
        }
        if self.target_schema.is_empty() {
            issues.push(
                format!("{key}.target-schema"),
                code,
                "target-schema is empty",
            );
        }
        check_wildcard(
            &format!("{key}.schema-pattern"),
            &self.schema_pattern,
            issues,
        );
        check_wildcard(&format!("{key}.table-pattern"), &self.table_pattern, issues);
        let extracts = [
            (
                "extract-table",
                "table-regexp",
                self.extract_table
                    .as_ref()
                    .map(|e| (&e.table_regexp, &e.target_column)),
            ),
            (
                "extract-schema",
                "schema-regexp",
                self.extract_schema
                    .as_ref()
                    .map(|e| (&e.schema_regexp, &e.target_column)),
            ),
            (
                "extract-source",
                "source-regexp",
                self.extract_source
                    .as_ref()
                    .map(|e| (&e.source_regexp, &e.target_column)),
            ),
        ];
        for (name, re_key, ext) in extracts {
            let Some((re, col)) = ext else { continue };
            let k = format!("{key}.{name}");
            if col.is_empty() {
                issues.push(format!("{k}.target-column"), code, "target-column is empty");
            }
            if re.is_empty() {
                issues.push(format!("{k}.{re_key}"), code, format!("{re_key} is empty"));
            } else {
                issues.check_regex(&format!("{k}.{re_key}"), re);
            }
        }
    }
}

/// DM's schema/table patterns: letters plus `*` (any run) and `?` (one character).
fn check_wildcard(key: &str, pattern: &str, issues: &mut Issues) {
    if pattern.contains(['\n', '\r', '\0']) {
        issues.push(
            key,
            &codes::CONFIG_INVALID_VALUE,
            "pattern has control characters",
        );
    }
}

/// The binlog event types a filter rule may name (lower case; matched case-insensitively).
pub const EVENT_TYPES: &[&str] = &[
    "all",
    "all dml",
    "all ddl",
    "none",
    "none dml",
    "none ddl",
    "insert",
    "update",
    "delete",
    "create database",
    "drop database",
    "alter database",
    "create schema",
    "drop schema",
    "alter schema",
    "create table",
    "drop table",
    "truncate table",
    "rename table",
    "alter table",
    "create index",
    "drop index",
    "create view",
    "drop view",
    "alter view",
    "create trigger",
    "drop trigger",
    "create function",
    "drop function",
    "create procedure",
    "drop procedure",
    "add table partition",
    "drop table partition",
    "truncate table partition",
    "reorganize table partition",
    "rebuild table partition",
    "coalesce table partition",
    "exchange table partition",
    "split table partition",
    "incompatible ddl changes",
    "value range decrease",
    "precision decrease",
    "add column",
    "modify column",
    "rename column",
    "rename index",
    "drop column",
    "drop primary key",
    "drop unique key",
    "modify default value",
    "modify constraint",
    "modify columns order",
    "modify charset",
    "modify collation",
    "remove auto increment",
    "modify storage engine",
];

/// `filters.<name>` in a task, or an item of `filters` in a source: which binlog events of
/// matching tables to do, ignore, or fail on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct BinlogEventRule {
    pub schema_pattern: String,
    pub table_pattern: String,
    pub events: Vec<String>,
    pub sql_pattern: Vec<String>,
    pub action: String,
}

impl BinlogEventRule {
    /// Pushes every problem of the rule at `key`.
    pub fn validate(&self, key: &str, issues: &mut Issues) {
        let code = &codes::CONFIG_BINLOG_EVENT_FILTER;
        if self.schema_pattern.is_empty() {
            issues.push(
                format!("{key}.schema-pattern"),
                code,
                "schema-pattern is empty",
            );
        }
        check_wildcard(
            &format!("{key}.schema-pattern"),
            &self.schema_pattern,
            issues,
        );
        check_wildcard(&format!("{key}.table-pattern"), &self.table_pattern, issues);
        for (i, ev) in self.events.iter().enumerate() {
            let e = ev.trim().to_ascii_lowercase();
            if !EVENT_TYPES.contains(&e.as_str()) {
                issues.push(
                    format!("{key}.events[{i}]"),
                    code,
                    format!("unknown event type `{ev}`"),
                );
            }
        }
        for (i, p) in self.sql_pattern.iter().enumerate() {
            issues.check_regex(&format!("{key}.sql-pattern[{i}]"), p);
        }
        if !["do", "ignore", "error"].contains(&self.action.to_ascii_lowercase().as_str()) {
            issues.push(
                format!("{key}.action"),
                code,
                format!("action `{}` is not one of Do, Ignore, Error", self.action),
            );
        }
        if self.events.is_empty() && self.sql_pattern.is_empty() {
            issues.push(key, code, "the rule names neither events nor sql-pattern");
        }
    }
}

/// One `db-name`/`tbl-name` pair of a block-allow-list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct TableRef {
    pub db_name: String,
    pub tbl_name: String,
}

/// `block-allow-list.<name>`: names prefixed with `~` are regular expressions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct BaList {
    pub do_dbs: Vec<String>,
    pub ignore_dbs: Vec<String>,
    pub do_tables: Vec<TableRef>,
    pub ignore_tables: Vec<TableRef>,
}

impl BaList {
    /// Pushes every problem of the rule at `key`.
    pub fn validate(&self, key: &str, issues: &mut Issues) {
        let mut check = |k: String, name: &str| {
            if name.is_empty() {
                issues.push(k, &codes::CONFIG_GEN_BA_LIST, "name is empty");
            } else if let Some(re) = name.strip_prefix('~') {
                issues.check_regex(&k, re);
            }
        };
        for (field, list) in [("do-dbs", &self.do_dbs), ("ignore-dbs", &self.ignore_dbs)] {
            for (i, n) in list.iter().enumerate() {
                check(format!("{key}.{field}[{i}]"), n);
            }
        }
        for (field, list) in [
            ("do-tables", &self.do_tables),
            ("ignore-tables", &self.ignore_tables),
        ] {
            for (i, t) in list.iter().enumerate() {
                check(format!("{key}.{field}[{i}].db-name"), &t.db_name);
                check(format!("{key}.{field}[{i}].tbl-name"), &t.tbl_name);
            }
        }
    }
}

/// `expression-filter.<name>`: rows of `schema`.`table` for which the SQL expression is true
/// are dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ExpressionFilter {
    pub schema: String,
    pub table: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub insert_value_expr: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub update_old_value_expr: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub update_new_value_expr: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub delete_value_expr: String,
}

impl ExpressionFilter {
    /// Pushes every problem of the rule at `key`.
    pub fn validate(&self, key: &str, issues: &mut Issues) {
        if self.schema.is_empty() {
            issues.push(
                format!("{key}.schema"),
                &codes::CONFIG_EXPR_FILTER_EMPTY_NAME,
                "schema is empty",
            );
        }
        if self.table.is_empty() {
            issues.push(
                format!("{key}.table"),
                &codes::CONFIG_EXPR_FILTER_EMPTY_NAME,
                "table is empty",
            );
        }
        let kinds = [
            !self.insert_value_expr.is_empty(),
            !self.update_old_value_expr.is_empty() || !self.update_new_value_expr.is_empty(),
            !self.delete_value_expr.is_empty(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            issues.push(
                key,
                &codes::CONFIG_EXPR_FILTER_MANY_EXPR,
                "set exactly one of insert-value-expr, update-old-value-expr/update-new-value-expr, delete-value-expr",
            );
        }
        for (field, expr) in [
            ("insert-value-expr", &self.insert_value_expr),
            ("update-old-value-expr", &self.update_old_value_expr),
            ("update-new-value-expr", &self.update_new_value_expr),
            ("delete-value-expr", &self.delete_value_expr),
        ] {
            if expr.is_empty() {
                continue;
            }
            if let Err(e) = crate::syntax::parse_expression(expr) {
                issues.push(
                    format!("{key}.{field}"),
                    &codes::CONFIG_EXPR_FILTER_WRONG_GRAMMAR,
                    format!("`{expr}` is not a SQL expression: {e}"),
                );
            }
        }
    }
}

/// Named rule maps as they appear at the top level of a task.
pub type RuleMap<T> = BTreeMap<String, T>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_rule_problems_are_all_reported() {
        let r = BinlogEventRule {
            schema_pattern: String::new(),
            events: vec!["insert".into(), "explode table".into()],
            sql_pattern: vec!["^DROP (".into()],
            action: "Maybe".into(),
            ..Default::default()
        };
        let mut issues = Issues::default();
        r.validate("filters.f", &mut issues);
        let keys: Vec<_> = issues.list().iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "filters.f.schema-pattern",
                "filters.f.events[1]",
                "filters.f.sql-pattern[0]",
                "filters.f.action"
            ]
        );
    }

    #[test]
    fn ba_list_regex_names() {
        let b = BaList {
            do_dbs: vec!["~^shard_[0-9]+$".into(), "~(".into()],
            ..Default::default()
        };
        let mut issues = Issues::default();
        b.validate("block-allow-list.ba", &mut issues);
        assert_eq!(issues.list().len(), 1);
        assert_eq!(issues.list()[0].key, "block-allow-list.ba.do-dbs[1]");
    }

    #[test]
    fn expression_filter_grammar() {
        let mut ok = ExpressionFilter {
            schema: "db".into(),
            table: "t".into(),
            insert_value_expr: "c % 2 = 0 AND name LIKE 'a%'".into(),
            ..Default::default()
        };
        let mut issues = Issues::default();
        ok.validate("e", &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        ok.insert_value_expr = "c = = 1".into();
        ok.delete_value_expr = "1".into();
        ok.validate("e", &mut issues);
        let codes: Vec<_> = issues.list().iter().map(|i| i.code.code).collect();
        assert_eq!(codes, [20039, 20041]);
    }
}
