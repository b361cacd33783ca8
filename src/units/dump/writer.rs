//! Dump files: their names, the SQL literal of every value, and the data-file writer that
//! cuts INSERT statements at `statement-size` and files at `chunk-filesize`.
//!
//! # Names
//!
//! As dumpling's default template: `<db>-schema-create.sql`, `<db>.<tbl>-schema.sql`,
//! `<db>.<view>-schema-view.sql`, `<db>.<tbl>.<NNNNNNNNN>.sql`. Names are written raw (spaces,
//! quotes, backticks and non-ASCII stay as they are) except dumpling's escape set: control
//! bytes, `%`, `"`, `*`, `.`, `/`, `:`, `<`, `>`, `?`, `\`, `|` become `%XX` (upper-case hex of
//! the byte), and a `-` that starts `-schema` (any case) becomes `%2D`. So `a.b/c` is
//! `a%2Eb%2Fc`, and the dots between name parts are unambiguous; a loader percent-decodes
//! each part.
//!
//! # Data file number
//!
//! `NNNNNNNNN` is `chunk * 1000 + part`, 9 digits with leading zeros: `chunk` is the index of
//! the key range (fixed by the plan, so a re-run writes the same names) and `part` counts the
//! files a chunk spilled into because of `chunk-filesize`. A table dumped as one chunk may
//! have any number of parts; a chunk of a split table at most 1000 (chunks are planned small
//! enough, see `chunk.rs`). Gaps in the numbering are normal.
//!
//! # Values
//!
//! Rows are read with the text protocol over a `utf8mb4` connection with `time_zone =
//! '+00:00'`, and each value becomes a literal that reproduces the stored value exactly:
//!
//! - NULL is `NULL`; integers, DECIMAL, DOUBLE and YEAR are the server's text unchanged;
//!   FLOAT is selected as `col + 0e0` (the server prints FLOAT with 6 significant digits,
//!   which loses bits; the double it widens to prints exactly and rounds back to the same
//!   float).
//! - BIT(n) is `b'…'` with every bit of the ⌈n/8⌉ bytes.
//! - BINARY/VARBINARY/BLOB, `CHARACTER SET binary` strings and GEOMETRY are `X'…'`. GEOMETRY
//!   is the server's internal form (4-byte SRID, then WKB), which an INSERT into a geometry
//!   column accepts as is, SRID included.
//! - Everything else (text, ENUM, SET, JSON, temporal values including zero dates, MariaDB's
//!   UUID/INET6) is a single-quoted string with backslash escapes
//!   ([`crate::binlog::value::push_quoted`]). Text of non-UTF-8 columns (latin1 …) arrives
//!   converted to UTF-8 and converts back on load.
//!
//! Every data file therefore starts with
//! `/*!40014 SET FOREIGN_KEY_CHECKS=0*/;`, `/*!40101 SET NAMES utf8mb4*/;` and
//! `/*!40103 SET TIME_ZONE='+00:00'*/;`. The loading session must also not use
//! `NO_BACKSLASH_ESCAPES`, should allow zero dates if the data has them (`sql_mode` as the
//! upstream's), and needs `NO_AUTO_VALUE_ON_ZERO` for a 0 in an AUTO_INCREMENT column.

use std::path::{Path, PathBuf};

use mysql_async::Value;
use tokio::io::AsyncWriteExt;

use crate::binlog::value::{ColumnInfo, SqlType, push_quoted};
use crate::error::{DmError, codes};
use crate::sql::quote_ident;

use ValueKind as Kind;

/// Files a chunk of a split table may spill into (see the module docs).
pub const PARTS_PER_CHUNK: u64 = 1000;

/// The session settings every data file starts with.
pub const DATA_FILE_HEADER: &str = "/*!40014 SET FOREIGN_KEY_CHECKS=0*/;\n/*!40101 SET NAMES utf8mb4*/;\n/*!40103 SET TIME_ZONE='+00:00'*/;\n";

/// Escapes one name part of a file name as dumpling does (see the module docs).
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let bytes = name.as_bytes();
    for (i, c) in name.char_indices() {
        let escape = match c {
            '\0'..='\x1f' | '%' | '"' | '*' | '.' | '/' | ':' | '<' | '>' | '?' | '\\' | '|' => {
                true
            }
            '-' => bytes
                .get(i + 1..i + 7)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"schema")),
            _ => false,
        };
        if escape {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// `<db>-schema-create.sql`.
pub fn schema_create_file(db: &str) -> String {
    format!("{}-schema-create.sql", escape_name(db))
}

/// `<db>.<tbl>-schema.sql`.
pub fn table_schema_file(db: &str, table: &str) -> String {
    format!("{}.{}-schema.sql", escape_name(db), escape_name(table))
}

/// `<db>.<view>-schema-view.sql`.
pub fn view_schema_file(db: &str, view: &str) -> String {
    format!("{}.{}-schema-view.sql", escape_name(db), escape_name(view))
}

/// `<db>.<tbl>.<NNNNNNNNN>.sql`.
pub fn data_file(db: &str, table: &str, number: u64) -> String {
    format!("{}.{}.{number:09}.sql", escape_name(db), escape_name(table))
}

/// How a column's text-protocol value becomes a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Numbers: the text as the server sent it.
    Number,
    /// A quoted, escaped string.
    Text,
    /// `X'…'`.
    Binary,
    /// `b'…'`.
    Bit,
}

impl ValueKind {
    /// The kind of a column described by `information_schema`.
    pub fn of(col: &ColumnInfo) -> Self {
        match col.sql_type {
            SqlType::TinyInt
            | SqlType::SmallInt
            | SqlType::MediumInt
            | SqlType::Int
            | SqlType::BigInt
            | SqlType::Decimal
            | SqlType::Float
            | SqlType::Double
            | SqlType::Year => Self::Number,
            SqlType::Bit => Self::Bit,
            SqlType::Geometry => Self::Binary,
            _ if col.binary => Self::Binary,
            _ => Self::Text,
        }
    }
}

/// The SELECT expression reading column `name` of type `sql_type` exactly.
pub fn select_expr(name: &str, sql_type: SqlType) -> String {
    match sql_type {
        SqlType::Float => format!("{} + 0e0", quote_ident(name)),
        _ => quote_ident(name),
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2 + 3);
    out.push_str("X'");
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out.push('\'');
}

/// Appends the literal of one text-protocol value of a column of `kind`.
pub fn push_literal(out: &mut String, kind: ValueKind, value: &Value) {
    let bytes = match value {
        Value::NULL => {
            out.push_str("NULL");
            return;
        }
        Value::Bytes(b) => b,
        // The text protocol sends nothing else; keep a correct literal anyway.
        other => {
            out.push_str(&other.as_sql(false));
            return;
        }
    };
    match kind {
        Kind::Number
            if !bytes.is_empty()
                && bytes.iter().all(|b| {
                    b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
                }) =>
        {
            // Checked ASCII above.
            out.push_str(std::str::from_utf8(bytes).expect("ASCII"));
        }
        Kind::Bit => {
            out.reserve(bytes.len() * 8 + 3);
            out.push_str("b'");
            for b in bytes.iter() {
                for i in (0..8).rev() {
                    out.push(if b & (1 << i) != 0 { '1' } else { '0' });
                }
            }
            out.push('\'');
        }
        Kind::Binary => push_hex(out, bytes),
        Kind::Number | Kind::Text => match std::str::from_utf8(bytes) {
            Ok(s) => push_quoted(out, s),
            // Not UTF-8 although the connection is utf8mb4: keep the bytes.
            Err(_) => push_hex(out, bytes),
        },
    }
}

/// Size limits of the data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of one INSERT statement (a single larger row makes a larger statement).
    pub statement_size: usize,
    /// Most bytes of one data file (0 = unlimited); a single larger statement makes a
    /// larger file.
    pub file_size: u64,
}

/// What one finished statement added to the dump.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Bytes written to the file (a new file's header included).
    pub bytes: u64,
    /// Rows in the statement.
    pub rows: u64,
}

/// An open `<name>.tmp` and the name it gets when complete.
struct OpenFile {
    file: tokio::fs::File,
    tmp: PathBuf,
    path: PathBuf,
    bytes: u64,
}

/// Writes one chunk of a table into data files: rows are appended to the current INSERT
/// statement until it would exceed `statement_size`; a finished statement goes to the
/// current file unless that would exceed `file_size`, in which case the file is completed
/// (renamed from `.tmp`) and the next part begun. No file is created for a chunk without
/// rows.
pub struct ChunkWriter {
    dir: PathBuf,
    db: String,
    table: String,
    chunk: u64,
    split: bool,
    part: u64,
    limits: Limits,
    insert_head: String,
    statement: String,
    statement_rows: u64,
    file: Option<OpenFile>,
    /// The row being built; [`Self::row`] hands it out.
    row: String,
}

impl ChunkWriter {
    /// A writer of chunk `chunk` of `db`.`table`; `split` when the table has several chunks.
    /// `columns` are the quoted column names of the INSERT.
    pub fn new(
        dir: &Path,
        db: &str,
        table: &str,
        chunk: u64,
        split: bool,
        columns: &[String],
        limits: Limits,
    ) -> Self {
        let insert_head = format!(
            "INSERT INTO {} ({}) VALUES\n",
            quote_ident(table),
            columns.join(",")
        );
        Self {
            dir: dir.to_path_buf(),
            db: db.to_owned(),
            table: table.to_owned(),
            chunk,
            split,
            part: 0,
            limits,
            insert_head,
            statement: String::with_capacity(limits.statement_size.min(1 << 24) + 1024),
            statement_rows: 0,
            file: None,
            row: String::with_capacity(256),
        }
    }

    /// The buffer for the next row's literals (without parentheses); cleared.
    pub fn row(&mut self) -> &mut String {
        self.row.clear();
        &mut self.row
    }

    /// Adds the row built in [`Self::row`]; returns what a statement it finished added.
    pub async fn push_row(&mut self) -> Result<Option<Written>, DmError> {
        let mut done = None;
        if self.statement_rows > 0
            // `,\n(` + row + `)` now and `;\n` at the end.
            && self.statement.len() + self.row.len() + 6 > self.limits.statement_size
        {
            done = Some(self.flush_statement().await?);
        }
        if self.statement_rows == 0 {
            self.statement.clear();
            self.statement.push_str(&self.insert_head);
        } else {
            self.statement.push_str(",\n");
        }
        self.statement.push('(');
        self.statement.push_str(&self.row);
        self.statement.push(')');
        self.statement_rows += 1;
        Ok(done)
    }

    /// Writes the pending statement and completes the last file; returns what the pending
    /// statement added.
    pub async fn finish(mut self) -> Result<Written, DmError> {
        let w = if self.statement_rows > 0 {
            self.flush_statement().await?
        } else {
            Written::default()
        };
        if let Some(f) = self.file.take() {
            complete(f).await?;
        }
        Ok(w)
    }

    async fn flush_statement(&mut self) -> Result<Written, DmError> {
        self.statement.push_str(";\n");
        let len = self.statement.len() as u64;
        let full = self
            .file
            .as_ref()
            .is_some_and(|f| self.limits.file_size > 0 && f.bytes + len > self.limits.file_size);
        let mut header = 0;
        if full {
            complete(self.file.take().expect("checked")).await?;
            self.part += 1;
        }
        if self.file.is_none() {
            self.file = Some(self.open().await?);
            header = DATA_FILE_HEADER.len() as u64;
        }
        let f = self.file.as_mut().expect("opened");
        f.file
            .write_all(self.statement.as_bytes())
            .await
            .map_err(|e| write_err(&f.tmp, e))?;
        f.bytes += len;
        let rows = self.statement_rows;
        self.statement_rows = 0;
        self.statement.clear();
        Ok(Written {
            bytes: len + header,
            rows,
        })
    }

    async fn open(&self) -> Result<OpenFile, DmError> {
        if self.split && self.part >= PARTS_PER_CHUNK {
            return Err(DmError::new(
                &codes::DUMP_TABLE_FAILED,
                format!(
                    "chunk {} of `{}`.`{}` needs more than {PARTS_PER_CHUNK} files of chunk-filesize",
                    self.chunk, self.db, self.table
                ),
            )
            .with_workaround(
                "Raise mydumper chunk-filesize or lower rows, then resume the task.",
            ));
        }
        let number = self.chunk * PARTS_PER_CHUNK + self.part;
        let path = self.dir.join(data_file(&self.db, &self.table, number));
        let tmp = tmp_path(&path);
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| write_err(&tmp, e))?;
        file.write_all(DATA_FILE_HEADER.as_bytes())
            .await
            .map_err(|e| write_err(&tmp, e))?;
        Ok(OpenFile {
            file,
            tmp,
            path,
            bytes: DATA_FILE_HEADER.len() as u64,
        })
    }
}

/// `<path>.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn write_err(path: &Path, e: std::io::Error) -> DmError {
    DmError::new(
        &codes::DUMP_WRITE_FILE,
        format!("writing `{}`", path.display()),
    )
    .with_cause(e)
}

/// Flushes, syncs and renames a data file to its final name.
async fn complete(mut f: OpenFile) -> Result<(), DmError> {
    f.file.flush().await.map_err(|e| write_err(&f.tmp, e))?;
    f.file.sync_all().await.map_err(|e| write_err(&f.tmp, e))?;
    drop(f.file);
    tokio::fs::rename(&f.tmp, &f.path)
        .await
        .map_err(|e| write_err(&f.path, e))
}

/// Writes a small whole file (schema files) through `<name>.tmp` and a rename.
pub async fn write_whole(dir: &Path, name: &str, text: &str) -> Result<u64, DmError> {
    let path = dir.join(name);
    let tmp = tmp_path(&path);
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| write_err(&tmp, e))?;
    file.write_all(text.as_bytes())
        .await
        .map_err(|e| write_err(&tmp, e))?;
    complete(OpenFile {
        file,
        tmp,
        path,
        bytes: 0,
    })
    .await?;
    Ok(text.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_escape_like_dumpling() {
        assert_eq!(escape_name("plain_Name ü'`"), "plain_Name ü'`");
        assert_eq!(escape_name("a.b/c"), "a%2Eb%2Fc");
        assert_eq!(escape_name("50%"), "50%25");
        assert_eq!(escape_name("x-Schema-y"), "x%2DSchema-y");
        assert_eq!(escape_name("tab\there"), "tab%09here");
        assert_eq!(escape_name("-schem"), "-schem");
        assert_eq!(data_file("db", "t", 3001), "db.t.000003001.sql");
        assert_eq!(schema_create_file("d.b"), "d%2Eb-schema-create.sql");
        assert_eq!(table_schema_file("db", "t"), "db.t-schema.sql");
        assert_eq!(view_schema_file("db", "v"), "db.v-schema-view.sql");
    }

    fn lit(kind: ValueKind, v: Value) -> String {
        let mut s = String::new();
        push_literal(&mut s, kind, &v);
        s
    }

    #[test]
    fn literals() {
        let b = |s: &[u8]| Value::Bytes(s.to_vec());
        assert_eq!(lit(Kind::Number, Value::NULL), "NULL");
        assert_eq!(lit(Kind::Number, b(b"-12.50")), "-12.50");
        assert_eq!(lit(Kind::Number, b(b"1.5e300")), "1.5e300");
        assert_eq!(lit(Kind::Number, b(b"1);DROP")), "'1);DROP'");
        assert_eq!(lit(Kind::Text, b("it's\n😀".as_bytes())), "'it\\'s\\n😀'");
        assert_eq!(lit(Kind::Text, b(b"\xff\x00")), "X'FF00'");
        assert_eq!(lit(Kind::Binary, b(b"\x00\x01\xab")), "X'0001AB'");
        assert_eq!(lit(Kind::Binary, b(b"")), "X''");
        assert_eq!(lit(Kind::Bit, b(&[0x01, 0x80])), "b'0000000110000000'");
        assert_eq!(lit(Kind::Text, Value::Int(-3)), "-3");
    }

    #[test]
    fn kinds_and_select() {
        let c = |t: &str, ct: &str, cs: Option<&str>| {
            ValueKind::of(&ColumnInfo::from_information_schema("c", t, ct, cs))
        };
        assert_eq!(c("bigint", "bigint(20) unsigned", None), Kind::Number);
        assert_eq!(c("decimal", "decimal(10,2)", None), Kind::Number);
        assert_eq!(c("bit", "bit(3)", None), Kind::Bit);
        assert_eq!(c("varchar", "varchar(3)", Some("utf8mb4")), Kind::Text);
        assert_eq!(c("varchar", "varchar(3)", Some("binary")), Kind::Binary);
        assert_eq!(c("blob", "blob", None), Kind::Binary);
        assert_eq!(c("point", "point", None), Kind::Binary);
        assert_eq!(c("datetime", "datetime(6)", None), Kind::Text);
        assert_eq!(c("json", "json", None), Kind::Text);
        assert_eq!(select_expr("f`x", SqlType::Float), "`f``x` + 0e0");
        assert_eq!(select_expr("d", SqlType::Double), "`d`");
    }

    #[tokio::test]
    async fn cuts_statements_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            statement_size: 60,
            file_size: 200,
        };
        let cols = vec!["`a`".to_string()];
        let mut w = ChunkWriter::new(dir.path(), "d", "t", 2, true, &cols, limits);
        let mut total = Written::default();
        for i in 0..20 {
            w.row().push_str(&format!("{i:04}"));
            if let Some(x) = w.push_row().await.unwrap() {
                total.bytes += x.bytes;
                total.rows += x.rows;
            }
        }
        let last = w.finish().await.unwrap();
        total.bytes += last.bytes;
        total.rows += last.rows;
        assert_eq!(total.rows, 20);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert!(names.len() > 1, "{names:?}");
        assert_eq!(names[0], "d.t.000002000.sql");
        assert_eq!(names[1], "d.t.000002001.sql");
        let mut bytes = 0;
        let mut rows = 0;
        for n in &names {
            let text = std::fs::read_to_string(dir.path().join(n)).unwrap();
            assert!(text.starts_with(DATA_FILE_HEADER));
            bytes += text.len() as u64;
            for stmt in text[DATA_FILE_HEADER.len()..].split_terminator(";\n") {
                assert!(stmt.starts_with("INSERT INTO `t` (`a`) VALUES\n"), "{stmt}");
                assert!(stmt.len() + 2 <= 60, "{stmt}");
                rows += stmt.matches('(').count() - 1;
            }
            assert!(text.len() <= 200 || text.matches("INSERT").count() == 1);
        }
        assert_eq!(rows, 20);
        assert_eq!(bytes, total.bytes);
    }

    #[tokio::test]
    async fn empty_chunk_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            statement_size: 100,
            file_size: 0,
        };
        let w = ChunkWriter::new(dir.path(), "d", "t", 0, false, &[], limits);
        assert_eq!(w.finish().await.unwrap(), Written::default());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
