//! Table routing: upstream `schema`.`table` → downstream table, from DM's route rules.
//!
//! A table-level rule (schema and table patterns) beats a schema-level rule (schema pattern
//! only, which keeps the table name). Two rules of the same level matching one table is an
//! error, as in DM: the merge target would be ambiguous. Route rules may also name extra
//! downstream columns filled from parts of the source id, schema or table name
//! (`extract-source` / `extract-schema` / `extract-table`).
//!
//! A target is a **merge target** when more than one upstream table may land in it: the rule
//! that routes it has a wildcard or regex in its schema or table pattern, or other sources of
//! the task use the same rule, or the task declares `shard-mode`. A shard's `DROP TABLE`,
//! `TRUNCATE TABLE` and `DROP DATABASE` must not reach a merge target ([`Router::merges`]).

use regex::Regex;

use super::filter::NamePattern;
use crate::config::rules::RouteRule;
use crate::error::{DmError, codes};

#[derive(Debug, Clone)]
struct Compiled {
    name: String,
    schema: NamePattern,
    table: Option<NamePattern>,
    target_schema: String,
    target_table: String,
    extract: Vec<(Extract, Regex, String)>,
    /// More than one upstream table may be routed by this rule to one target.
    merges: bool,
}

#[derive(Debug, Clone, Copy)]
enum Extract {
    Source,
    Schema,
    Table,
}

/// A compiled set of route rules.
#[derive(Debug, Clone, Default)]
pub struct Router {
    rules: Vec<Compiled>,
    /// The task declares `shard-mode`: every routed table is a shard.
    shard_mode: bool,
}

/// Where a table goes and which extra columns it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub schema: String,
    pub table: Option<String>,
    /// `(target column, value)` from the rule's extract-* settings.
    pub extra_columns: Vec<(String, String)>,
}

impl Router {
    /// Compiles `rules` (each with its name, for error messages).
    pub fn new(rules: &[(String, RouteRule)], case_sensitive: bool) -> Result<Self, DmError> {
        let mut out = Vec::with_capacity(rules.len());
        for (name, r) in rules {
            let re = |p: &str| {
                Regex::new(p).map_err(|e| {
                    DmError::new(
                        &codes::CONFIG_INVALID_REGEX,
                        format!("route `{name}`: bad regex `{p}`"),
                    )
                    .with_cause(e)
                })
            };
            let mut extract = Vec::new();
            if let Some(e) = &r.extract_source {
                extract.push((
                    Extract::Source,
                    re(&e.source_regexp)?,
                    e.target_column.clone(),
                ));
            }
            if let Some(e) = &r.extract_schema {
                extract.push((
                    Extract::Schema,
                    re(&e.schema_regexp)?,
                    e.target_column.clone(),
                ));
            }
            if let Some(e) = &r.extract_table {
                extract.push((
                    Extract::Table,
                    re(&e.table_regexp)?,
                    e.target_column.clone(),
                ));
            }
            let schema = NamePattern::new(&r.schema_pattern, case_sensitive)?;
            let table = if r.table_pattern.is_empty() {
                None
            } else {
                Some(NamePattern::new(&r.table_pattern, case_sensitive)?)
            };
            let merges = !schema.is_exact() || table.as_ref().is_some_and(|t| !t.is_exact());
            out.push(Compiled {
                name: name.clone(),
                schema,
                table,
                target_schema: r.target_schema.clone(),
                target_table: r.target_table.clone(),
                extract,
                merges,
            });
        }
        Ok(Self {
            rules: out,
            shard_mode: false,
        })
    }

    /// The router of a subtask's `route-rules` (named by position for error messages).
    pub fn for_subtask(cfg: &crate::config::SubTaskConfig) -> Result<Self, DmError> {
        let named: Vec<(String, RouteRule)> = cfg
            .route_rules
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("route-rules[{i}]"), r.clone()))
            .collect();
        let mut router = Self::new(&named, cfg.case_sensitive)?;
        router.shard_mode = cfg.shard_mode.is_some();
        for &i in &cfg.shared_route_rules {
            if let Some(r) = router.rules.get_mut(i) {
                r.merges = true;
            }
        }
        Ok(router)
    }

    /// Whether `schema`.`table` (`table` None: the schema) is routed into a merge target (see
    /// the module doc). For a schema, a table-level rule counts too when it merges into the
    /// schema the statement would reach.
    pub fn merges(&self, schema: &str, table: Option<&str>) -> Result<bool, DmError> {
        if self.shard_mode {
            return Ok(true);
        }
        let rule = self.rule_for(schema, table)?;
        if rule.is_some_and(|r| r.merges) {
            return Ok(true);
        }
        if table.is_none() {
            let target = rule.map_or(schema, |r| {
                if r.target_schema.is_empty() {
                    schema
                } else {
                    r.target_schema.as_str()
                }
            });
            return Ok(self.rules.iter().any(|r| {
                r.table.is_some()
                    && r.merges
                    && r.schema.matches(schema)
                    && (r.target_schema.is_empty() && target == schema || r.target_schema == target)
            }));
        }
        Ok(false)
    }

    /// The rule that routes `schema`.`table`: a table-level rule before a schema-level one;
    /// two of the same level are ambiguous.
    fn rule_for(&self, schema: &str, table: Option<&str>) -> Result<Option<&Compiled>, DmError> {
        let level: Vec<&Compiled> = match table {
            Some(t) => {
                let by_table: Vec<&Compiled> = self
                    .rules
                    .iter()
                    .filter(|r| {
                        r.schema.matches(schema) && r.table.as_ref().is_some_and(|p| p.matches(t))
                    })
                    .collect();
                if by_table.is_empty() {
                    self.rules
                        .iter()
                        .filter(|r| r.table.is_none() && r.schema.matches(schema))
                        .collect()
                } else {
                    by_table
                }
            }
            None => self
                .rules
                .iter()
                .filter(|r| r.table.is_none() && r.schema.matches(schema))
                .collect(),
        };
        match level.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => {
                let names: Vec<&str> = many.iter().map(|r| r.name.as_str()).collect();
                Err(DmError::new(
                    &codes::CONFIG_GEN_TABLE_ROUTER,
                    format!(
                        "`{schema}`.`{}` matches route rules {} of the same level",
                        table.unwrap_or(""),
                        names.join(", ")
                    ),
                ))
            }
        }
    }

    /// Routes `schema`.`table` (`table` is `None` for schema-level statements) of source
    /// `source_id`. Unmatched names stay as they are.
    pub fn route(
        &self,
        source_id: &str,
        schema: &str,
        table: Option<&str>,
    ) -> Result<Routed, DmError> {
        let Some(rule) = self.rule_for(schema, table)? else {
            return Ok(Routed {
                schema: schema.to_string(),
                table: table.map(String::from),
                extra_columns: Vec::new(),
            });
        };
        let target_table = match (table, rule.table.is_some() && !rule.target_table.is_empty()) {
            (Some(_), true) => Some(rule.target_table.clone()),
            (t, _) => t.map(String::from),
        };
        let extra_columns = match table {
            Some(t) => rule
                .extract
                .iter()
                .map(|(kind, re, col)| {
                    let subject = match kind {
                        Extract::Source => source_id,
                        Extract::Schema => schema,
                        Extract::Table => t,
                    };
                    let value = re
                        .captures(subject)
                        .map(|c| {
                            c.get(1)
                                .or_else(|| c.get(0))
                                .map_or("", |m| m.as_str())
                                .to_string()
                        })
                        .unwrap_or_default();
                    (col.clone(), value)
                })
                .collect(),
            None => Vec::new(),
        };
        let target_schema = if rule.target_schema.is_empty() {
            schema.to_string()
        } else {
            rule.target_schema.clone()
        };
        Ok(Routed {
            schema: target_schema,
            table: target_table,
            extra_columns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules::{ExtractSchema, ExtractSource, ExtractTable};

    fn rules() -> Vec<(String, RouteRule)> {
        vec![
            (
                "s".into(),
                RouteRule {
                    schema_pattern: "shop_*".into(),
                    target_schema: "shop".into(),
                    ..Default::default()
                },
            ),
            (
                "t".into(),
                RouteRule {
                    schema_pattern: "shop_*".into(),
                    table_pattern: "orders_*".into(),
                    target_schema: "shop".into(),
                    target_table: "orders".into(),
                    extract_table: Some(ExtractTable {
                        table_regexp: "orders_(.*)".into(),
                        target_column: "c_table".into(),
                    }),
                    extract_schema: Some(ExtractSchema {
                        schema_regexp: "shop_(.*)".into(),
                        target_column: "c_schema".into(),
                    }),
                    extract_source: Some(ExtractSource {
                        source_regexp: "(.*)".into(),
                        target_column: "c_source".into(),
                    }),
                },
            ),
        ]
    }

    #[test]
    fn table_rules_beat_schema_rules() {
        let r = Router::new(&rules(), false).unwrap();
        let routed = r.route("src-1", "shop_2", Some("orders_07")).unwrap();
        assert_eq!(
            (routed.schema.as_str(), routed.table.as_deref()),
            ("shop", Some("orders"))
        );
        assert_eq!(
            routed.extra_columns,
            [
                ("c_source".into(), "src-1".into()),
                ("c_schema".into(), "2".into()),
                ("c_table".into(), "07".into())
            ]
        );
        let other = r.route("src-1", "shop_2", Some("items")).unwrap();
        assert_eq!(
            (other.schema.as_str(), other.table.as_deref()),
            ("shop", Some("items"))
        );
        assert!(other.extra_columns.is_empty());
        assert_eq!(r.route("src-1", "shop_2", None).unwrap().schema, "shop");
        let untouched = r.route("src-1", "other", Some("t")).unwrap();
        assert_eq!(
            (untouched.schema.as_str(), untouched.table.as_deref()),
            ("other", Some("t"))
        );
    }

    #[test]
    fn merge_targets_are_wildcard_shared_or_shard_mode_routes() {
        let exact = |schema: &str, table: &str, ts: &str, tt: &str| RouteRule {
            schema_pattern: schema.into(),
            table_pattern: table.into(),
            target_schema: ts.into(),
            target_table: tt.into(),
            ..Default::default()
        };
        let r = Router::new(&rules(), false).unwrap();
        // Wildcard table rule: shards of orders_* merge.
        assert!(r.merges("shop_2", Some("orders_07")).unwrap());
        // Wildcard schema rule: same-named tables of shop_* merge, and the schema itself.
        assert!(r.merges("shop_2", Some("items")).unwrap());
        assert!(r.merges("shop_2", None).unwrap());
        assert!(!r.merges("other", Some("t")).unwrap());
        assert!(!r.merges("other", None).unwrap());
        // An exact rename merges nothing, unless other sources share the rule.
        let rs = vec![("x".to_string(), exact("db1", "t1", "db2", "t2"))];
        let r = Router::new(&rs, false).unwrap();
        assert!(!r.merges("db1", Some("t1")).unwrap());
        let mut shared = r.clone();
        shared.rules[0].merges = true;
        assert!(shared.merges("db1", Some("t1")).unwrap());
        // A table rule merging into the schema a DROP DATABASE reaches.
        let rs = vec![("x".to_string(), exact("db1", "t*", "db1", "t"))];
        let r = Router::new(&rs, false).unwrap();
        assert!(r.merges("db1", None).unwrap());
        let rs = vec![("x".to_string(), exact("db1", "t*", "merged", "t"))];
        assert!(
            !Router::new(&rs, false)
                .unwrap()
                .merges("db1", None)
                .unwrap()
        );
        // shard-mode: every table is a shard.
        let sm = Router {
            shard_mode: true,
            ..Default::default()
        };
        assert!(sm.merges("a", Some("b")).unwrap());
    }

    #[test]
    fn ambiguous_rules_are_an_error() {
        let mut rs = rules();
        rs.push((
            "t2".into(),
            RouteRule {
                schema_pattern: "shop_*".into(),
                table_pattern: "orders_0*".into(),
                target_schema: "x".into(),
                ..Default::default()
            },
        ));
        let r = Router::new(&rs, false).unwrap();
        let e = r.route("s", "shop_1", Some("orders_01")).unwrap_err();
        assert_eq!(e.code, codes::CONFIG_GEN_TABLE_ROUTER.code);
        assert!(r.route("s", "shop_1", Some("orders_11")).is_ok());
    }
}
