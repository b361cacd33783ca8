//! Table routing: upstream `schema`.`table` → downstream table, from DM's route rules.
//!
//! A table-level rule (schema and table patterns) beats a schema-level rule (schema pattern
//! only, which keeps the table name). Two rules of the same level matching one table is an
//! error, as in DM: the merge target would be ambiguous. Route rules may also name extra
//! downstream columns filled from parts of the source id, schema or table name
//! (`extract-source` / `extract-schema` / `extract-table`).

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
            out.push(Compiled {
                name: name.clone(),
                schema: NamePattern::new(&r.schema_pattern, case_sensitive)?,
                table: if r.table_pattern.is_empty() {
                    None
                } else {
                    Some(NamePattern::new(&r.table_pattern, case_sensitive)?)
                },
                target_schema: r.target_schema.clone(),
                target_table: r.target_table.clone(),
                extract,
            });
        }
        Ok(Self { rules: out })
    }

    /// The router of a subtask's `route-rules` (named by position for error messages).
    pub fn for_subtask(cfg: &crate::config::SubTaskConfig) -> Result<Self, DmError> {
        let named: Vec<(String, RouteRule)> = cfg
            .route_rules
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("route-rules[{i}]"), r.clone()))
            .collect();
        Self::new(&named, cfg.case_sensitive)
    }

    /// Routes `schema`.`table` (`table` is `None` for schema-level statements) of source
    /// `source_id`. Unmatched names stay as they are.
    pub fn route(
        &self,
        source_id: &str,
        schema: &str,
        table: Option<&str>,
    ) -> Result<Routed, DmError> {
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
        let rule = match level.as_slice() {
            [] => {
                return Ok(Routed {
                    schema: schema.to_string(),
                    table: table.map(String::from),
                    extra_columns: Vec::new(),
                });
            }
            [one] => *one,
            many => {
                let names: Vec<&str> = many.iter().map(|r| r.name.as_str()).collect();
                return Err(DmError::new(
                    &codes::CONFIG_GEN_TABLE_ROUTER,
                    format!(
                        "`{schema}`.`{}` matches route rules {} of the same level",
                        table.unwrap_or(""),
                        names.join(", ")
                    ),
                ));
            }
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
