//! The files of a dump directory (dumpling's and mydumper's layout, which dm-rs's dump unit
//! writes too) and the schema and table each belongs to.
//!
//! - `metadata`: the dump's binlog position ([`DumpMetadata`]).
//! - `<db>-schema-create.sql`: CREATE DATABASE.
//! - `<db>.<tbl>-schema.sql`: CREATE TABLE.
//! - `<db>.<tbl>.<N>.sql` data files: `<N>` zero-padded (dumpling: `000000001`) or not
//!   (mydumper: `1`, `00001`, also `00000.00001`), or absent (mydumper: `<db>.<tbl>.sql`).
//! - Views, triggers, routines, sequences and placement policies (`-schema-view.sql`,
//!   `-schema-triggers.sql`, `-schema-post.sql`, `-schema-sequence.sql`,
//!   `-placement-policy-create.sql`) are not loaded, as DM's loader does not.
//!
//! Names: dumpling writes `%XX` for the bytes `\x00-\x1f % " * . / : < > ? \ |` and for the
//! `-` of a `-schema` inside a name, so after its unescaping every `.` is a separator.
//! mydumper does not escape: a name with a `.` is ambiguous there, and the table's CREATE
//! statement decides. A data file belongs to the table whose schema file's stem is the longest
//! prefix of its name followed by numeric parts; data files without a schema file are split on
//! `.` (an error when that is ambiguous).
//!
//! Not supported: CSV data files and compressed files (`.gz`, `.zst`, `.snappy`) are an error,
//! not silently skipped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::split::{Splitter, Statement, StatementKind, classify};
use crate::error::{DmError, codes};
use crate::units::dump::metadata::DumpMetadata;

const DB_SUFFIX: &str = "-schema-create.sql";
const TABLE_SUFFIX: &str = "-schema.sql";
const IGNORED_SUFFIXES: &[&str] = &[
    "-schema-view.sql",
    "-schema-triggers.sql",
    "-schema-post.sql",
    "-schema-sequence.sql",
    "-placement-policy-create.sql",
];
const UNSUPPORTED_SUFFIXES: &[&str] = &[".csv", ".gz", ".zst", ".snappy", ".parquet"];

/// A `-schema-create.sql` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseFile {
    pub schema: String,
    pub path: PathBuf,
}

/// A table of the dump: its schema file (if any) and data files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFiles {
    pub schema: String,
    pub table: String,
    /// The `-schema.sql` file.
    pub schema_file: Option<PathBuf>,
    /// The CREATE TABLE statement, when it was read to tell the names apart.
    pub create: Option<String>,
    pub data: Vec<DataFile>,
}

/// One data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub path: PathBuf,
    /// The file name: the loader checkpoint's `filename`.
    pub name: String,
    pub size: u64,
}

/// A scanned dump directory.
#[derive(Debug, Clone)]
pub struct DumpDir {
    pub metadata: DumpMetadata,
    pub databases: Vec<DatabaseFile>,
    /// Sorted by schema and table; each table's data files by name.
    pub tables: Vec<TableFiles>,
}

fn invalid(msg: String) -> DmError {
    DmError::new(&codes::LOAD_DUMP_DIR_INVALID, msg)
}

fn read_err(path: &Path, e: std::io::Error) -> DmError {
    DmError::new(
        &codes::LOAD_UNIT_READ_SCHEMA_FILE,
        format!("reading `{}`", path.display()),
    )
    .with_cause(e)
}

/// Undoes dumpling's `%XX` escaping (a `%` not followed by two hex digits stays).
pub fn unescape(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| name.to_string())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Whether `rest` is `.<digits>` repeated one or more times.
fn numeric_parts(rest: &str) -> bool {
    rest.strip_prefix('.').is_some_and(|r| {
        r.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Reads a whole (small) schema file as statements; schema files are text.
pub fn read_statements(path: &Path) -> Result<Vec<Statement>, DmError> {
    let bytes = std::fs::read(path).map_err(|e| read_err(path, e))?;
    let mut s = Splitter::new();
    let mut out = Vec::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        s.feed_line(line, &mut out);
    }
    let tail = s.finish().map_err(|m| {
        DmError::new(
            &codes::LOAD_UNIT_PARSE_STATEMENT,
            format!("`{}`: {m}", path.display()),
        )
    })?;
    out.extend(tail);
    Ok(out)
}

/// The first statement of a schema file that is not a SET or a comment, as text.
pub fn main_statement(path: &Path) -> Result<String, DmError> {
    let stmts = read_statements(path)?;
    let stmt = stmts
        .into_iter()
        .find(|s| matches!(classify(&s.text), StatementKind::Other))
        .ok_or_else(|| {
            DmError::new(
                &codes::LOAD_UNIT_NOT_CREATE_TABLE,
                format!("`{}` holds no CREATE statement", path.display()),
            )
        })?;
    String::from_utf8(stmt.text).map_err(|_| {
        DmError::new(
            &codes::LOAD_UNIT_READ_SCHEMA_FILE,
            format!("`{}` is not UTF-8 text", path.display()),
        )
    })
}

/// Splits a `<db>.<tbl>` stem: unambiguous when it has one `.`; otherwise the table named by
/// the CREATE statement in `create` (if given) decides.
fn split_stem(stem: &str, create: Option<&str>) -> Option<(String, String)> {
    let dots = stem.matches('.').count();
    if dots == 1 {
        let (d, t) = stem.split_once('.')?;
        return Some((unescape(d), unescape(t)));
    }
    let create = create?;
    let (schema, table, _) = crate::sql::ddl::parse_create_table(create).ok()?;
    if let Some(s) = schema {
        return Some((s, table));
    }
    let db = stem
        .strip_suffix(table.as_str())
        .and_then(|p| p.strip_suffix('.'))?;
    (!db.is_empty()).then(|| (unescape(db), table))
}

impl DumpDir {
    /// Lists `dir`: refuses it when `metadata` is missing or says the dump did not finish.
    pub fn scan(dir: &Path) -> Result<Self, DmError> {
        let metadata = DumpMetadata::read(dir)?;
        if metadata.finished.is_none() {
            return Err(invalid(format!(
                "`{}`: the dump did not finish (no `Finished dump at` in metadata)",
                dir.display()
            )));
        }
        let entries = std::fs::read_dir(dir).map_err(|e| {
            invalid(format!("cannot list `{}`", dir.display())).with_cause_text(e.to_string())
        })?;
        let mut databases = Vec::new();
        let mut table_files: Vec<(String, PathBuf)> = Vec::new();
        let mut data_files: Vec<(String, DataFile)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| read_err(dir, e))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(|e| read_err(&path, e))?;
            if !meta.is_file() {
                continue;
            }
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(String::from) else {
                return Err(invalid(format!(
                    "`{}`: the file name is not UTF-8",
                    path.display()
                )));
            };
            if name == "metadata" || name.ends_with(".tmp") {
                continue;
            }
            if UNSUPPORTED_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                return Err(invalid(format!(
                    "`{name}`: CSV and compressed dump files are not supported; dump with \
                     SQL output and no compression"
                )));
            }
            if let Some(stem) = name.strip_suffix(DB_SUFFIX) {
                databases.push(DatabaseFile {
                    schema: unescape(stem),
                    path,
                });
            } else if IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                tracing::info!(file = %name, "not loading views, triggers, routines or sequences");
            } else if let Some(stem) = name.strip_suffix(TABLE_SUFFIX) {
                table_files.push((stem.to_string(), path));
            } else if let Some(stem) = name.strip_suffix(".sql") {
                let stem = stem.to_string();
                data_files.push((
                    stem,
                    DataFile {
                        path,
                        name,
                        size: meta.len(),
                    },
                ));
            }
        }
        databases.sort_by(|a, b| a.schema.cmp(&b.schema));

        let mut tables: Vec<TableFiles> = Vec::new();
        let mut by_stem: HashMap<String, usize> = HashMap::new();
        for (stem, path) in table_files {
            let create = if stem.matches('.').count() == 1 {
                None
            } else {
                Some(main_statement(&path)?)
            };
            let (schema, table) = split_stem(&stem, create.as_deref()).ok_or_else(|| {
                invalid(format!(
                    "`{}`: cannot tell the schema and table names apart",
                    path.display()
                ))
            })?;
            by_stem.insert(stem, tables.len());
            tables.push(TableFiles {
                schema,
                table,
                schema_file: Some(path),
                create,
                data: Vec::new(),
            });
        }
        let mut stems: Vec<&String> = by_stem.keys().collect();
        // Longest first, so `a.b.c` claims `a.b.c.1.sql` before `a.b` does.
        stems.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let owner: Vec<(String, usize)> =
            stems.iter().map(|s| ((*s).clone(), by_stem[*s])).collect();
        for (stem, file) in data_files {
            let found = owner.iter().find(|(t, _)| {
                stem == *t || stem.strip_prefix(t.as_str()).is_some_and(numeric_parts)
            });
            let idx = match found {
                Some((_, i)) => *i,
                None => {
                    let parts: Vec<&str> = stem.split('.').collect();
                    let (d, t) = match parts.as_slice() {
                        [d, t] => (*d, *t),
                        [d, t, rest @ ..]
                            if rest.iter().all(|p| {
                                !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
                            }) =>
                        {
                            (*d, *t)
                        }
                        _ => {
                            return Err(invalid(format!(
                                "`{}`: cannot tell the schema and table names apart (no \
                                 schema file for it)",
                                file.name
                            )));
                        }
                    };
                    let key = format!("{d}.{t}");
                    *by_stem.entry(key).or_insert_with(|| {
                        tables.push(TableFiles {
                            schema: unescape(d),
                            table: unescape(t),
                            schema_file: None,
                            create: None,
                            data: Vec::new(),
                        });
                        tables.len() - 1
                    })
                }
            };
            tables[idx].data.push(file);
        }
        for t in &mut tables {
            t.data.sort_by(|a, b| {
                natural_key(&a.name)
                    .cmp(&natural_key(&b.name))
                    .then(a.name.cmp(&b.name))
            });
        }
        tables.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
        Ok(Self {
            metadata,
            databases,
            tables,
        })
    }
}

/// Orders `t.2.sql` before `t.10.sql`: the numeric parts as numbers.
fn natural_key(name: &str) -> Vec<u64> {
    name.trim_end_matches(".sql")
        .rsplit('.')
        .take_while(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .map(|p| p.parse().unwrap_or(u64::MAX))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::location::{Location, Position};

    fn write_dir(files: &[(&str, &str)], finished: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        DumpMetadata {
            started: "2026-01-01 00:00:00".into(),
            location: Location::at(Position::new("mysql-bin.000001", 4)),
            after: None,
            finished: finished.then(|| "2026-01-01 00:00:01".into()),
        }
        .write(dir.path())
        .unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn unescapes_dumpling_names() {
        assert_eq!(unescape("a%2Eb"), "a.b");
        assert_eq!(unescape("x%2Dschema"), "x-schema");
        assert_eq!(unescape("100%"), "100%");
        assert_eq!(unescape("5%zz"), "5%zz");
        assert_eq!(unescape("ü %22q%22"), "ü \"q\"");
    }

    #[test]
    fn refuses_unfinished_dumps() {
        let dir = write_dir(&[], false);
        let e = DumpDir::scan(dir.path()).unwrap_err();
        assert_eq!(e.code, codes::LOAD_DUMP_DIR_INVALID.code);
        let e = DumpDir::scan(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.code, codes::LOAD_DUMP_DIR_INVALID.code);
    }

    #[test]
    fn sorts_files_to_tables() {
        let dir = write_dir(
            &[
                ("db-schema-create.sql", "CREATE DATABASE `db`;"),
                ("db.t-schema.sql", "CREATE TABLE `t` (a INT);"),
                ("db.t.000000002.sql", ""),
                ("db.t.000000010.sql", ""),
                ("db.t.000000001.sql", ""),
                ("db.a%2Eb-schema.sql", "CREATE TABLE `a.b` (a INT);"),
                ("db.a%2Eb.0.sql", ""),
                // mydumper: a dot in the table name, no escaping; the CREATE decides.
                (
                    "my.x.y-schema.sql",
                    "/*!40101 SET NAMES binary*/;\nCREATE TABLE `x.y` (a INT);",
                ),
                ("my.x.y.sql", ""),
                ("my.x.y.00001.sql", ""),
                ("my.x.y.10.2.sql", ""),
                ("my.plain.3.sql", ""),
                ("db.v-schema-view.sql", "CREATE VIEW v AS SELECT 1;"),
                ("notes.txt", ""),
            ],
            true,
        );
        let d = DumpDir::scan(dir.path()).unwrap();
        assert_eq!(d.databases.len(), 1);
        assert_eq!(d.databases[0].schema, "db");
        let got: Vec<(String, String, Vec<String>)> = d
            .tables
            .iter()
            .map(|t| {
                (
                    t.schema.clone(),
                    t.table.clone(),
                    t.data.iter().map(|f| f.name.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("db".into(), "a.b".into(), vec!["db.a%2Eb.0.sql".into()]),
                (
                    "db".into(),
                    "t".into(),
                    vec![
                        "db.t.000000001.sql".into(),
                        "db.t.000000002.sql".into(),
                        "db.t.000000010.sql".into()
                    ]
                ),
                ("my".into(), "plain".into(), vec!["my.plain.3.sql".into()]),
                (
                    "my".into(),
                    "x.y".into(),
                    vec![
                        "my.x.y.sql".into(),
                        "my.x.y.00001.sql".into(),
                        "my.x.y.10.2.sql".into()
                    ]
                ),
            ]
        );
        assert!(d.tables[3].schema_file.is_some());
        assert!(d.tables[2].schema_file.is_none());
    }

    #[test]
    fn rejects_csv_and_ambiguous_names() {
        let dir = write_dir(&[("db.t.000000001.csv", "")], true);
        assert_eq!(
            DumpDir::scan(dir.path()).unwrap_err().code,
            codes::LOAD_DUMP_DIR_INVALID.code
        );
        let dir = write_dir(&[("a.b.c.d.sql", "")], true);
        assert!(
            DumpDir::scan(dir.path())
                .unwrap_err()
                .message
                .contains("cannot tell")
        );
    }
}
