//! Row values decoded from the binlog, the column facts needed to interpret them, and their
//! two ways back into SQL: a bound statement parameter ([`Value::to_mysql`]) and an inline
//! literal ([`Value::write_sql_literal`]).
//!
//! # What the binlog does not say
//!
//! Without `binlog_row_metadata=FULL` a TABLE_MAP event carries only wire types and their
//! metadata: no names, no signedness, no charsets, no ENUM/SET members, and nothing that tells
//! MariaDB's `JSON` (a `LONGTEXT` with a `json_valid` check) from any other `LONGTEXT`. Those
//! facts come from the schema tracker as one [`ColumnInfo`] per column, in table order;
//! [`load_columns`] reads them from `information_schema`.
//!
//! # Invariants of [`Value`]
//!
//! - Integers are [`Value::UInt`] exactly when the column is `UNSIGNED`, else [`Value::Int`].
//! - [`Value::Bytes`] holds the stored bytes in the column's own charset, never transcoded;
//!   `BINARY(n)` values are padded back to `n` bytes with `0x00` (the binlog strips the pad).
//! - [`Value::Timestamp`] is UTC epoch time; `{secs: 0, micros: 0}` is the zero timestamp
//!   `'0000-00-00 00:00:00'` (a real TIMESTAMP cannot hold the epoch itself).
//! - Zero dates keep their zero fields (`Date { year: 0, month: 0, day: 0 }`) and round-trip.
//! - [`Value::Decimal`] is the exact decimal text with exactly `scale` fraction digits.
//!
//! # Single-value wire codecs
//!
//! The end of this file decodes the fixed binary forms of one value (DECIMAL, TIME2,
//! DATETIME2, TIMESTAMP2, MariaDB's pre-10.1 temporals, MySQL's packed temporals), shared by
//! the rows decoder ([`super::decode`], whose docs describe the formats) and MySQL's binary
//! JSON ([`super::json`]).
//!
//! # Binding and literals
//!
//! Both assume the downstream session uses `utf8mb4` as its client charset, `time_zone =
//! '+00:00'` (TIMESTAMP values are rendered in UTC) and no `NO_BACKSLASH_ESCAPES` (literals
//! escape with backslashes). A session writing zero dates also needs a `sql_mode` that allows
//! them.

use std::fmt::Write as _;

use mysql_async::prelude::Queryable;

use super::codec::{DecodeError, be_uint};
use crate::error::{DmError, codes};
pub use crate::syntax::push_quoted;

/// One column value of a row image.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL, or a column absent from a partial row image.
    Null,
    /// A signed integer column (TINYINT … BIGINT).
    Int(i64),
    /// An `UNSIGNED` integer column.
    UInt(u64),
    /// FLOAT.
    Float(f32),
    /// DOUBLE.
    Double(f64),
    /// DECIMAL as exact text, e.g. `-12.3400`.
    Decimal(String),
    /// CHAR/VARCHAR/TEXT/BINARY/VARBINARY/BLOB (and unknown string-like types): raw bytes in
    /// the column's charset.
    Bytes(Vec<u8>),
    /// BIT(n), right-aligned.
    Bit(u64),
    /// YEAR: 1901..=2155, or 0.
    Year(u16),
    /// DATE (zero date allowed).
    Date { year: u16, month: u8, day: u8 },
    /// TIME: `-838:59:59.000000` ..= `838:59:59.000000`.
    Time {
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
    },
    /// DATETIME (zero datetime allowed).
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    /// TIMESTAMP as UTC epoch seconds and microseconds; both 0 is the zero timestamp.
    Timestamp { secs: i64, micros: u32 },
    /// ENUM: 1-based member index; 0 is the empty (invalid) value.
    Enum(u16),
    /// SET: bit `i` set means member `i` (0-based) is in the set.
    Set(u64),
    /// JSON as text: MariaDB's text as stored, MySQL's binary JSON rendered canonically.
    Json(String),
    /// GEOMETRY and its subtypes: the stored form (4-byte SRID, then WKB).
    Geometry(Vec<u8>),
}

/// The declared SQL type of a column (`information_schema.COLUMNS.DATA_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    TinyInt,
    SmallInt,
    MediumInt,
    Int,
    BigInt,
    Decimal,
    Float,
    Double,
    Bit,
    Year,
    Date,
    Time,
    DateTime,
    Timestamp,
    Char,
    VarChar,
    TinyText,
    Text,
    MediumText,
    LongText,
    Binary,
    VarBinary,
    TinyBlob,
    Blob,
    MediumBlob,
    LongBlob,
    Enum,
    Set,
    /// MySQL's JSON, or MariaDB's `JSON` alias (a LONGTEXT with a `json_valid` check).
    Json,
    /// GEOMETRY, POINT, LINESTRING, POLYGON and the multi/collection types.
    Geometry,
    /// Anything else (MariaDB's UUID, INET4, INET6, MySQL's VECTOR …): decoded as bytes.
    Other,
}

impl SqlType {
    /// Maps a `DATA_TYPE` (case-insensitive) to the type.
    pub fn from_data_type(data_type: &str) -> Self {
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" => Self::TinyInt,
            "smallint" => Self::SmallInt,
            "mediumint" => Self::MediumInt,
            "int" | "integer" => Self::Int,
            "bigint" => Self::BigInt,
            "decimal" | "numeric" => Self::Decimal,
            "float" => Self::Float,
            "double" | "real" | "double precision" => Self::Double,
            "bit" => Self::Bit,
            "year" => Self::Year,
            "date" => Self::Date,
            "time" => Self::Time,
            "datetime" => Self::DateTime,
            "timestamp" => Self::Timestamp,
            "char" => Self::Char,
            "varchar" => Self::VarChar,
            "tinytext" => Self::TinyText,
            "text" => Self::Text,
            "mediumtext" => Self::MediumText,
            "longtext" => Self::LongText,
            "binary" => Self::Binary,
            "varbinary" => Self::VarBinary,
            "tinyblob" => Self::TinyBlob,
            "blob" => Self::Blob,
            "mediumblob" => Self::MediumBlob,
            "longblob" => Self::LongBlob,
            "enum" => Self::Enum,
            "set" => Self::Set,
            "json" => Self::Json,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => Self::Geometry,
            _ => Self::Other,
        }
    }

    /// Whether values of this type are byte strings without a charset.
    pub fn is_binary_string(self) -> bool {
        matches!(
            self,
            Self::Binary
                | Self::VarBinary
                | Self::TinyBlob
                | Self::Blob
                | Self::MediumBlob
                | Self::LongBlob
        )
    }

    /// Whether this is an integer type (the ones `UNSIGNED` applies to).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Self::TinyInt | Self::SmallInt | Self::MediumInt | Self::Int | Self::BigInt
        )
    }
}

/// What the schema tracker knows about one column beyond the binlog's wire type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Declared type.
    pub sql_type: SqlType,
    /// `UNSIGNED` integer (or unsigned DECIMAL/FLOAT/DOUBLE, which changes nothing here).
    pub unsigned: bool,
    /// A byte string without charset: BINARY/VARBINARY/BLOB or `CHARACTER SET binary`.
    pub binary: bool,
    /// Charset name (`utf8mb4`, `latin1` …); empty for non-text and binary columns.
    pub charset: String,
    /// ENUM/SET members in declaration order; empty otherwise.
    pub members: Vec<String>,
    /// `M` of `BIT(M)`; 0 for other types.
    pub bit_width: u16,
    /// Fractional-second digits of TIME/DATETIME/TIMESTAMP; 0 for other types. Only needed
    /// for MariaDB's pre-10.1 temporal format, whose TABLE_MAP entries carry no precision.
    pub fsp: u8,
}

impl ColumnInfo {
    /// A column of `sql_type` with defaults: signed, `utf8mb4` for text types, binary for
    /// binary string types, no members, `BIT(64)` for BIT.
    pub fn new(name: impl Into<String>, sql_type: SqlType) -> Self {
        let text = matches!(
            sql_type,
            SqlType::Char
                | SqlType::VarChar
                | SqlType::TinyText
                | SqlType::Text
                | SqlType::MediumText
                | SqlType::LongText
                | SqlType::Enum
                | SqlType::Set
                | SqlType::Json
        );
        Self {
            name: name.into(),
            sql_type,
            unsigned: false,
            binary: sql_type.is_binary_string(),
            charset: if text {
                "utf8mb4".into()
            } else {
                String::new()
            },
            members: Vec::new(),
            bit_width: if sql_type == SqlType::Bit { 64 } else { 0 },
            fsp: 0,
        }
    }

    /// Builds the column from an `information_schema.COLUMNS` row: `COLUMN_NAME`, `DATA_TYPE`,
    /// `COLUMN_TYPE` (for `unsigned`, `bit(M)`, `time(fsp)`… and ENUM/SET members) and
    /// `CHARACTER_SET_NAME`.
    pub fn from_information_schema(
        name: &str,
        data_type: &str,
        column_type: &str,
        charset: Option<&str>,
    ) -> Self {
        let sql_type = SqlType::from_data_type(data_type);
        let lower = column_type.to_ascii_lowercase();
        let charset = charset.unwrap_or("").to_ascii_lowercase();
        let binary = sql_type.is_binary_string() || charset == "binary";
        let members = match sql_type {
            SqlType::Enum | SqlType::Set => parse_members(column_type),
            _ => Vec::new(),
        };
        let bit_width = if sql_type == SqlType::Bit {
            paren_number(&lower).unwrap_or(1)
        } else {
            0
        };
        let fsp = match sql_type {
            SqlType::Time | SqlType::DateTime | SqlType::Timestamp => {
                paren_number(&lower).unwrap_or(0).min(6) as u8
            }
            _ => 0,
        };
        Self {
            name: name.to_owned(),
            sql_type,
            unsigned: !matches!(sql_type, SqlType::Enum | SqlType::Set)
                && lower.contains(" unsigned"),
            binary,
            charset: if binary { String::new() } else { charset },
            members,
            bit_width,
            fsp,
        }
    }

    /// Whether the column holds UTF-8 text (`utf8`, `utf8mb3`, `utf8mb4`).
    pub fn is_utf8(&self) -> bool {
        !self.binary && matches!(self.charset.as_str(), "utf8" | "utf8mb3" | "utf8mb4")
    }

    /// Bytes of a BIT value as the server sends it: `ceil(M / 8)`, 8 when `M` is unknown.
    fn bit_bytes(&self) -> usize {
        if self.bit_width == 0 {
            8
        } else {
            usize::from(self.bit_width).div_ceil(8)
        }
    }
}

/// `n` of the first `(n…` in `column_type`.
fn paren_number(column_type: &str) -> Option<u16> {
    let start = column_type.find('(')? + 1;
    let digits: String = column_type[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The quoted members of `enum('a','b''c')` / `set(...)`, with `''` and backslash escapes
/// undone.
fn parse_members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let mut members = Vec::new();
    let mut chars = column_type[open + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut member = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    member.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        member.push(n);
                    }
                }
                c => member.push(c),
            }
        }
        members.push(member);
    }
    members
}

/// The columns query of [`load_columns`]: one row per column in table order.
pub const COLUMNS_QUERY: &str = "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME \
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
     ORDER BY ORDINAL_POSITION";

/// MariaDB's column-level checks, to recognise its `JSON` alias (`json_valid(`col`)`). MySQL
/// has no `TABLE_NAME` there; the query then fails and is ignored (MySQL reports `json`).
pub const JSON_CHECKS_QUERY: &str = "SELECT CONSTRAINT_NAME, CHECK_CLAUSE \
     FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?";

/// Reads the [`ColumnInfo`] of every column of `schema.table`, in table order, from
/// `information_schema` (MariaDB JSON columns are recognised by their `json_valid` check).
pub async fn load_columns(
    conn: &mut mysql_async::Conn,
    schema: &str,
    table: &str,
) -> Result<Vec<ColumnInfo>, DmError> {
    type ColumnRow = (String, String, String, Option<String>);
    let rows: Vec<ColumnRow> = conn
        .exec(COLUMNS_QUERY, (schema, table))
        .await
        .map_err(|e| {
            DmError::new(
                &codes::DB_QUERY_FAILED,
                format!("read the columns of `{schema}`.`{table}`"),
            )
            .with_cause(e)
        })?;
    if rows.is_empty() {
        return Err(DmError::new(
            &codes::NOT_SET,
            format!("table `{schema}`.`{table}` has no columns in information_schema"),
        ));
    }
    let checks: Vec<(String, String)> = conn
        .exec(JSON_CHECKS_QUERY, (schema, table))
        .await
        .unwrap_or_default();
    let mut columns: Vec<ColumnInfo> = rows
        .iter()
        .map(|(name, data_type, column_type, charset)| {
            ColumnInfo::from_information_schema(name, data_type, column_type, charset.as_deref())
        })
        .collect();
    for column in &mut columns {
        if column.sql_type != SqlType::LongText {
            continue;
        }
        let expected = format!("json_valid(`{}`)", column.name.replace('`', "``"));
        if checks.iter().any(|(constraint, clause)| {
            constraint == &column.name && clause.trim().eq_ignore_ascii_case(&expected)
        }) {
            column.sql_type = SqlType::Json;
        }
    }
    Ok(columns)
}

impl Value {
    /// This value as a statement parameter for a column described by `col`.
    ///
    /// ENUM/SET become their member text (the index or mask when out of range), BIT the
    /// column's big-endian bytes, DECIMAL its text, TIMESTAMP the UTC datetime (the session
    /// must use `time_zone = '+00:00'`). Text in `latin1` is transcoded to UTF-8 because
    /// string parameters are read in the client charset; other non-UTF-8 charsets are sent
    /// as stored, so use [`Value::write_sql_literal`] (exact for every charset) for those.
    pub fn to_mysql(&self, col: &ColumnInfo) -> mysql_async::Value {
        use mysql_async::Value as M;
        match self {
            Self::Null => M::NULL,
            Self::Int(v) => M::Int(*v),
            Self::UInt(v) => M::UInt(*v),
            Self::Float(v) => M::Float(*v),
            Self::Double(v) => M::Double(*v),
            Self::Decimal(s) | Self::Json(s) => M::Bytes(s.as_bytes().to_vec()),
            Self::Bytes(b) => {
                if !col.binary && col.charset == "latin1" {
                    M::Bytes(latin1_to_utf8(b))
                } else {
                    M::Bytes(b.clone())
                }
            }
            Self::Geometry(b) => M::Bytes(b.clone()),
            Self::Bit(v) => {
                let n = col.bit_bytes();
                M::Bytes(v.to_be_bytes()[8 - n..].to_vec())
            }
            Self::Year(y) => M::UInt(u64::from(*y)),
            Self::Date { year, month, day } => M::Date(*year, *month, *day, 0, 0, 0, 0),
            Self::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
            } => M::Time(
                *negative,
                hours / 24,
                (hours % 24) as u8,
                *minutes,
                *seconds,
                *micros,
            ),
            Self::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            } => M::Date(*year, *month, *day, *hour, *minute, *second, *micros),
            Self::Timestamp { secs, micros } => {
                let (year, month, day, hour, minute, second) = utc_fields(*secs);
                M::Date(year, month, day, hour, minute, second, *micros)
            }
            Self::Enum(i) => match member(col, usize::from(*i)) {
                Some(m) => M::Bytes(m.as_bytes().to_vec()),
                None if *i == 0 => M::Bytes(Vec::new()),
                None => M::UInt(u64::from(*i)),
            },
            Self::Set(mask) => match set_text(col, *mask) {
                Some(text) => M::Bytes(text.into_bytes()),
                None => M::UInt(*mask),
            },
        }
    }

    /// Appends this value as a SQL literal for a column described by `col`.
    ///
    /// Text of a UTF-8 column that is valid UTF-8 is single-quoted with backslash escapes;
    /// other text is `_charset X'..'` (exact for every charset), binary strings and geometry
    /// are `X'..'`, DECIMAL is bare text, DOUBLE/FLOAT are the shortest round-tripping
    /// exponent form, BIT is `b'..'`, temporal values are quoted text (TIMESTAMP in UTC).
    pub fn write_sql_literal(&self, col: &ColumnInfo, out: &mut String) {
        match self {
            Self::Null => out.push_str("NULL"),
            Self::Int(v) => push_display(out, v),
            Self::UInt(v) => push_display(out, v),
            Self::Float(v) => {
                let _ = write!(out, "{v:e}");
            }
            Self::Double(v) => {
                let _ = write!(out, "{v:e}");
            }
            Self::Decimal(s) => out.push_str(s),
            Self::Bytes(b) => {
                if col.binary {
                    push_hex(out, b);
                } else if let (true, Ok(text)) = (col.is_utf8(), std::str::from_utf8(b)) {
                    push_quoted(out, text);
                } else {
                    if is_identifier(&col.charset) {
                        out.push('_');
                        out.push_str(&col.charset);
                        out.push(' ');
                    }
                    push_hex(out, b);
                }
            }
            Self::Geometry(b) => push_hex(out, b),
            Self::Json(s) => push_quoted(out, s),
            Self::Bit(v) => {
                let _ = write!(out, "b'{v:b}'");
            }
            Self::Year(y) => push_display(out, y),
            Self::Date { .. } | Self::Time { .. } | Self::DateTime { .. } => {
                out.push('\'');
                self.write_temporal(out);
                out.push('\'');
            }
            Self::Timestamp { .. } => {
                out.push('\'');
                self.write_temporal(out);
                out.push('\'');
            }
            Self::Enum(i) => match member(col, usize::from(*i)) {
                Some(m) => push_quoted(out, m),
                None if *i == 0 => out.push_str("''"),
                None => push_display(out, i),
            },
            Self::Set(mask) => match set_text(col, *mask) {
                Some(text) => push_quoted(out, &text),
                None => push_display(out, mask),
            },
        }
    }

    /// Appends a temporal value as MySQL text (`YYYY-MM-DD`, `[-]H:MM:SS[.ffffff]`,
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]`, TIMESTAMP in UTC); other values append nothing.
    /// Fractions are written with 6 digits when non-zero.
    pub fn write_temporal(&self, out: &mut String) {
        match *self {
            Self::Date { year, month, day } => {
                let _ = write!(out, "{year:04}-{month:02}-{day:02}");
            }
            Self::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
            } => {
                let sign = if negative { "-" } else { "" };
                let _ = write!(out, "{sign}{hours:02}:{minutes:02}:{seconds:02}");
                push_micros(out, micros);
            }
            Self::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            } => {
                let _ = write!(
                    out,
                    "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}"
                );
                push_micros(out, micros);
            }
            Self::Timestamp { secs, micros } => {
                let (year, month, day, hour, minute, second) = utc_fields(secs);
                let _ = write!(
                    out,
                    "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}"
                );
                push_micros(out, micros);
            }
            _ => {}
        }
    }
}

/// Member `index` (1-based) of an ENUM column.
fn member(col: &ColumnInfo, index: usize) -> Option<&str> {
    index
        .checked_sub(1)
        .and_then(|i| col.members.get(i))
        .map(String::as_str)
}

/// The comma-separated members of a SET mask; `None` if a bit has no member.
fn set_text(col: &ColumnInfo, mask: u64) -> Option<String> {
    if col.members.len() < 64 && mask >> col.members.len() != 0 {
        return None;
    }
    let mut text = String::new();
    for (i, m) in col.members.iter().enumerate().take(64) {
        if mask & (1 << i) != 0 {
            if !text.is_empty() {
                text.push(',');
            }
            text.push_str(m);
        }
    }
    Some(text)
}

fn push_display(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

fn push_micros(out: &mut String, micros: u32) {
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `X'..'` with upper-case hex digits.
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

/// Civil UTC date and time of epoch second `secs` (proleptic Gregorian); 0 is the zero
/// timestamp `0000-00-00 00:00:00`.
pub fn utc_fields(secs: i64) -> (u16, u8, u8, u8, u8, u8) {
    if secs == 0 {
        return (0, 0, 0, 0, 0, 0);
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days since 0000-03-01, split into 400-year eras of 146,097 days; March-based years put
    // the leap day last.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year.clamp(0, 9999) as u16,
        month as u8,
        day as u8,
        (rem / 3600) as u8,
        (rem / 60 % 60) as u8,
        (rem % 60) as u8,
    )
}

/// Unicode code points of MySQL's `latin1` (Windows-1252, with the five holes mapped to the
/// C1 controls of the same number) for bytes 0x80..=0x9F; other bytes map to themselves.
const LATIN1_80_9F: [u16; 32] = [
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
];

/// MySQL `latin1` bytes as UTF-8.
pub fn latin1_to_utf8(bytes: &[u8]) -> Vec<u8> {
    if bytes.is_ascii() {
        return bytes.to_vec();
    }
    let mut s = String::with_capacity(bytes.len() + bytes.len() / 2);
    for &b in bytes {
        let cp = match b {
            0x80..=0x9F => u32::from(LATIN1_80_9F[usize::from(b - 0x80)]),
            _ => u32::from(b),
        };
        s.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
    }
    s.into_bytes()
}

// ---- binary encodings shared by the rows decoder and MySQL's binary JSON ----

/// Bytes of a TIME2 value with `fsp` fraction digits.
pub(crate) fn time2_len(fsp: u8) -> usize {
    3 + usize::from(fsp).div_ceil(2)
}

/// Bytes of a DATETIME2 value with `fsp` fraction digits.
pub(crate) fn datetime2_len(fsp: u8) -> usize {
    5 + usize::from(fsp).div_ceil(2)
}

/// Bytes of a TIMESTAMP2 value (and of MariaDB's old TIMESTAMP(n)) with `fsp` digits.
pub(crate) fn timestamp2_len(fsp: u8) -> usize {
    4 + usize::from(fsp).div_ceil(2)
}

/// Bytes of MariaDB's pre-10.1 TIME(n).
pub(crate) fn maria_time_len(fsp: u8) -> usize {
    [3, 4, 4, 5, 5, 5, 6][usize::from(fsp.min(6))]
}

/// Bytes of MariaDB's pre-10.1 DATETIME(n).
pub(crate) fn maria_datetime_len(fsp: u8) -> usize {
    [5, 6, 6, 7, 7, 7, 8][usize::from(fsp.min(6))]
}

/// A TIME2 value; `b` is exactly [`time2_len`] bytes. The fraction holds hundredths,
/// 1/10000ths or micros, and a negative time with a fraction borrowed one second from the
/// integer part (MySQL's `my_time_packed_from_binary`).
pub(crate) fn time2_value(b: &[u8], fsp: u8) -> Value {
    let int_part = be_uint(&b[..3]) as i64 - 0x80_0000;
    let frac = be_uint(&b[3..]) as i64;
    let packed = match fsp {
        0 => int_part << 24,
        1 | 2 if int_part < 0 && frac != 0 => ((int_part + 1) << 24) + (frac - 0x100) * 10_000,
        1 | 2 => (int_part << 24) + frac * 10_000,
        3 | 4 if int_part < 0 && frac != 0 => ((int_part + 1) << 24) + (frac - 0x1_0000) * 100,
        3 | 4 => (int_part << 24) + frac * 100,
        _ => (((int_part + 0x80_0000) << 24) | frac) - 0x8000_0000_0000,
    };
    let (negative, hours, minutes, seconds, micros) = unpack_time_packed(packed);
    Value::Time {
        negative,
        hours,
        minutes,
        seconds,
        micros,
    }
}

/// A DATETIME2 value; `b` is exactly [`datetime2_len`] bytes.
pub(crate) fn datetime2_value(b: &[u8], fsp: u8) -> Value {
    let int_part = be_uint(&b[..5]) as i64 - 0x80_0000_0000;
    let frac = be_uint(&b[5..]) as i64;
    let frac = match fsp {
        0 => 0,
        1 | 2 => frac * 10_000,
        3 | 4 => frac * 100,
        _ => frac,
    };
    let (year, month, day, hour, minute, second, micros) =
        unpack_datetime_packed((int_part << 24) + frac);
    Value::DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        micros,
    }
}

/// A TIMESTAMP2 value; `b` is exactly [`timestamp2_len`] bytes.
pub(crate) fn timestamp2_value(b: &[u8], fsp: u8) -> Value {
    let frac = be_uint(&b[4..]) as u32;
    Value::Timestamp {
        secs: be_uint(&b[..4]) as i64,
        micros: match fsp {
            0 => 0,
            1 | 2 => frac * 10_000,
            3 | 4 => frac * 100,
            _ => frac,
        },
    }
}

/// MariaDB's pre-10.1 TIME(n); `b` is exactly [`maria_time_len`] bytes: the signed total of
/// 10^-n seconds offset by `3020400 * 10^n` (838:59:59 + 1 s).
pub(crate) fn maria_time_value(b: &[u8], fsp: u8) -> Value {
    let unit = 10i64.pow(6 - u32::from(fsp.min(6)));
    let total = (be_uint(b) as i64 - 3_020_400 * 1_000_000 / unit) * unit;
    let (secs, micros) = (
        total.unsigned_abs() / 1_000_000,
        total.unsigned_abs() % 1_000_000,
    );
    Value::Time {
        negative: total < 0,
        hours: (secs / 3600) as u32,
        minutes: (secs / 60 % 60) as u8,
        seconds: (secs % 60) as u8,
        micros: micros as u32,
    }
}

/// MariaDB's pre-10.1 DATETIME(n); `b` is exactly [`maria_datetime_len`] bytes:
/// `((((((y*13+m)*32+d)*24+h)*60+mi)*60+s)*10^6+us) / 10^(6-n)`.
pub(crate) fn maria_datetime_value(b: &[u8], fsp: u8) -> Value {
    let total = be_uint(b) * 10u64.pow(6 - u32::from(fsp.min(6)));
    let (mut v, micros) = (total / 1_000_000, (total % 1_000_000) as u32);
    let mut next = |radix: u64| {
        let digit = v % radix;
        v /= radix;
        digit as u8
    };
    let (second, minute, hour, day, month) = (next(60), next(60), next(24), next(32), next(13));
    Value::DateTime {
        year: v as u16,
        month,
        day,
        hour,
        minute,
        second,
        micros,
    }
}

/// MariaDB's pre-10.1 TIMESTAMP(n); `b` is exactly [`timestamp2_len`] bytes: epoch seconds,
/// then micros / 10^(6-n), both big-endian.
pub(crate) fn maria_timestamp_value(b: &[u8], fsp: u8) -> Value {
    Value::Timestamp {
        secs: be_uint(&b[..4]) as i64,
        micros: be_uint(&b[4..]) as u32 * 10u32.pow(6 - u32::from(fsp.min(6))),
    }
}

/// Splits MySQL's packed time: (negative, hours, minutes, seconds, micros).
pub fn unpack_time_packed(packed: i64) -> (bool, u32, u8, u8, u32) {
    let abs = packed.unsigned_abs();
    let hms = abs >> 24;
    (
        packed < 0,
        ((hms >> 12) % (1 << 10)) as u32,
        ((hms >> 6) % (1 << 6)) as u8,
        (hms % (1 << 6)) as u8,
        (abs % (1 << 24)) as u32,
    )
}

/// Splits MySQL's packed datetime: (year, month, day, hour, minute, second, micros).
pub fn unpack_datetime_packed(packed: i64) -> (u16, u8, u8, u8, u8, u8, u32) {
    let abs = packed.unsigned_abs();
    let ymdhms = abs >> 24;
    let ymd = ymdhms >> 17;
    let ym = ymd >> 5;
    let hms = ymdhms % (1 << 17);
    (
        (ym / 13) as u16,
        (ym % 13) as u8,
        (ymd % (1 << 5)) as u8,
        (hms >> 12) as u8,
        ((hms >> 6) % (1 << 6)) as u8,
        (hms % (1 << 6)) as u8,
        (abs % (1 << 24)) as u32,
    )
}

/// Bytes holding 0..=9 leftover decimal digits.
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
const POW10: [u32; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

pub(crate) fn check_decimal(precision: u8, scale: u8) -> Result<(), DecodeError> {
    if precision == 0 || precision > 65 || scale > 30 || scale > precision {
        return Err(DecodeError::invalid(format!(
            "DECIMAL({precision},{scale})"
        )));
    }
    Ok(())
}

/// Bytes of a binary DECIMAL(precision, scale).
pub fn decimal_size(precision: u8, scale: u8) -> usize {
    let intg = usize::from(precision.saturating_sub(scale));
    let frac = usize::from(scale);
    intg / 9 * 4 + DIG2BYTES[intg % 9] + frac / 9 * 4 + DIG2BYTES[frac % 9]
}

/// A binary DECIMAL(precision, scale) (its first [`decimal_size`] bytes) as exact text with
/// `scale` fraction digits, e.g. `-12.3400`; zero is never negative.
pub fn decode_decimal(bin: &[u8], precision: u8, scale: u8) -> Result<String, DecodeError> {
    check_decimal(precision, scale)?;
    let size = decimal_size(precision, scale);
    let src = bin.get(..size).ok_or(DecodeError::Truncated {
        at: bin.len(),
        need: size,
    })?;
    let mut buf = [0u8; 32];
    let buf = &mut buf[..size];
    buf.copy_from_slice(src);
    let negative = buf[0] & 0x80 == 0;
    buf[0] ^= 0x80;
    if negative {
        for b in buf.iter_mut() {
            *b = !*b;
        }
    }
    let intg = usize::from(precision - scale);
    let frac = usize::from(scale);
    let (intg0, intg0x, frac0, frac0x) = (intg / 9, intg % 9, frac / 9, frac % 9);
    let mut out = String::with_capacity(usize::from(precision) + 3);
    if negative {
        out.push('-');
    }
    let mut pos = 0;
    let mut group = |digits: usize| -> Result<u32, DecodeError> {
        let n = DIG2BYTES[digits];
        let v = be_uint(&buf[pos..pos + n]) as u32;
        pos += n;
        if v >= POW10[digits] {
            return Err(DecodeError::invalid(format!(
                "DECIMAL digit group {v} exceeds {digits} digits"
            )));
        }
        Ok(v)
    };
    let mut started = false;
    if intg0x > 0 {
        let v = group(intg0x)?;
        if v != 0 {
            push_u32(&mut out, v, 0);
            started = true;
        }
    }
    for _ in 0..intg0 {
        let v = group(9)?;
        if started {
            push_u32(&mut out, v, 9);
        } else if v != 0 {
            push_u32(&mut out, v, 0);
            started = true;
        }
    }
    if !started {
        out.push('0');
    }
    let mut nonzero = started;
    if frac > 0 {
        out.push('.');
        for _ in 0..frac0 {
            let v = group(9)?;
            nonzero |= v != 0;
            push_u32(&mut out, v, 9);
        }
        if frac0x > 0 {
            let v = group(frac0x)?;
            nonzero |= v != 0;
            push_u32(&mut out, v, frac0x);
        }
    }
    if negative && !nonzero {
        out.remove(0);
    }
    Ok(out)
}

/// Appends `v` in decimal, zero-padded to `width` digits.
fn push_u32(out: &mut String, mut v: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = i.min(digits.len().saturating_sub(width));
    for &d in &digits[start..] {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(v: &Value, col: &ColumnInfo) -> String {
        let mut s = String::new();
        v.write_sql_literal(col, &mut s);
        s
    }

    #[test]
    fn quoting_escapes_between_multibyte_text() {
        let mut out = String::new();
        push_quoted(&mut out, "é'ü\\\"\0\n\r\x1a✓ end");
        assert_eq!(out, "'é\\'ü\\\\\\\"\\0\\n\\r\\Z✓ end'");
        out.clear();
        push_quoted(&mut out, "");
        assert_eq!(out, "''");
    }

    #[test]
    fn information_schema_rows_map_to_column_info() {
        let c = ColumnInfo::from_information_schema(
            "e",
            "enum",
            "enum('a','b''c','x,y','back\\\\slash')",
            Some("utf8mb4"),
        );
        assert_eq!(c.sql_type, SqlType::Enum);
        assert_eq!(c.members, ["a", "b'c", "x,y", "back\\slash"]);
        let c = ColumnInfo::from_information_schema("u", "bigint", "bigint(20) unsigned", None);
        assert!(c.unsigned && c.sql_type.is_integer());
        let c = ColumnInfo::from_information_schema("b", "bit", "bit(10)", None);
        assert_eq!((c.bit_width, c.bit_bytes()), (10, 2));
        let c = ColumnInfo::from_information_schema("v", "varbinary", "varbinary(3)", None);
        assert!(c.binary && c.charset.is_empty());
        let c = ColumnInfo::from_information_schema("l", "varchar", "varchar(3)", Some("latin1"));
        assert!(!c.binary && !c.is_utf8() && c.charset == "latin1");
    }

    #[test]
    fn literals_are_escaped_and_typed() {
        let text = ColumnInfo::new("t", SqlType::VarChar);
        let v = Value::Bytes(b"a'b\\c\0\n\"\x1a\r".to_vec());
        assert_eq!(literal(&v, &text), r#"'a\'b\\c\0\n\"\Z\r'"#);
        let invalid = Value::Bytes(vec![0xff, b'a']);
        assert_eq!(literal(&invalid, &text), "_utf8mb4 X'FF61'");
        let bin = ColumnInfo::new("b", SqlType::VarBinary);
        assert_eq!(literal(&Value::Bytes(vec![0, 0xab]), &bin), "X'00AB'");
        let mut latin = ColumnInfo::new("l", SqlType::VarChar);
        latin.charset = "latin1".into();
        assert_eq!(literal(&Value::Bytes(vec![0xe9]), &latin), "_latin1 X'E9'");
        let dbl = ColumnInfo::new("d", SqlType::Double);
        for x in [0.1, -1e300, 1.234_567_890_123_456_7, 5e-324, 0.0] {
            let s = literal(&Value::Double(x), &dbl);
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), x.to_bits(), "{s}");
        }
        let s = literal(&Value::Float(1.1), &dbl);
        assert_eq!(s.parse::<f64>().unwrap() as f32, 1.1_f32);
        assert_eq!(literal(&Value::Bit(5), &dbl), "b'101'");
        assert_eq!(literal(&Value::Bit(0), &dbl), "b'0'");
        let mut set = ColumnInfo::new("s", SqlType::Set);
        set.members = vec!["r".into(), "g".into(), "b".into()];
        assert_eq!(literal(&Value::Set(0b101), &set), "'r,b'");
        assert_eq!(literal(&Value::Set(0), &set), "''");
        assert_eq!(literal(&Value::Set(0b1000), &set), "8");
        assert_eq!(literal(&Value::Enum(2), &set), "'g'");
        assert_eq!(literal(&Value::Enum(0), &set), "''");
        let t = Value::Time {
            negative: true,
            hours: 100,
            minutes: 2,
            seconds: 3,
            micros: 4,
        };
        assert_eq!(literal(&t, &dbl), "'-100:02:03.000004'");
        let ts = Value::Timestamp {
            secs: 2_147_483_647,
            micros: 999_000,
        };
        assert_eq!(literal(&ts, &dbl), "'2038-01-19 03:14:07.999000'");
        let zero = Value::Timestamp { secs: 0, micros: 0 };
        assert_eq!(literal(&zero, &dbl), "'0000-00-00 00:00:00'");
    }

    #[test]
    fn utc_fields_match_known_dates() {
        assert_eq!(utc_fields(1), (1970, 1, 1, 0, 0, 1));
        assert_eq!(utc_fields(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc_fields(4_102_444_799), (2099, 12, 31, 23, 59, 59));
        assert_eq!(utc_fields(-1), (1969, 12, 31, 23, 59, 59));
    }

    #[test]
    fn to_mysql_maps_members_bits_and_time() {
        use mysql_async::Value as M;
        let mut e = ColumnInfo::new("e", SqlType::Enum);
        e.members = vec!["x".into(), "y".into()];
        assert_eq!(Value::Enum(2).to_mysql(&e), M::Bytes(b"y".to_vec()));
        assert_eq!(Value::Enum(3).to_mysql(&e), M::UInt(3));
        let mut b = ColumnInfo::new("b", SqlType::Bit);
        b.bit_width = 10;
        assert_eq!(Value::Bit(0x3ff).to_mysql(&b), M::Bytes(vec![3, 0xff]));
        let t = Value::Time {
            negative: false,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
        };
        assert_eq!(t.to_mysql(&b), M::Time(false, 34, 22, 59, 59, 0));
        let mut l = ColumnInfo::new("l", SqlType::VarChar);
        l.charset = "latin1".into();
        assert_eq!(
            Value::Bytes(vec![b'c', 0xe9, 0x80]).to_mysql(&l),
            M::Bytes("cé€".as_bytes().to_vec())
        );
    }

    /// Binary DECIMAL of `text` (`-123.45` form, already at `scale` digits).
    fn encode_decimal(text: &str, precision: u8, scale: u8) -> Vec<u8> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        assert_eq!(frac.len(), usize::from(scale));
        let intg = usize::from(precision - scale);
        let int = format!("{:0>intg$}", int.trim_start_matches('0'));
        let mut out: Vec<u8> = Vec::new();
        let mut put = |digits: &str| {
            let n = DIG2BYTES[digits.len()];
            let v: u32 = digits.parse().unwrap();
            out.extend(&v.to_be_bytes()[4 - n..]);
        };
        let lead = intg % 9;
        if lead > 0 {
            put(&int[..lead]);
        }
        for chunk in int.as_bytes()[lead..].chunks(9) {
            put(std::str::from_utf8(chunk).unwrap());
        }
        for chunk in frac.as_bytes().chunks(9) {
            put(std::str::from_utf8(chunk).unwrap());
        }
        out[0] ^= 0x80;
        if negative {
            for b in &mut out {
                *b = !*b;
            }
        }
        assert_eq!(out.len(), decimal_size(precision, scale));
        out
    }

    #[test]
    fn decimal_matches_mysql_documentation_vectors() {
        // From MySQL's manual (DECIMAL(14,4) 1234567890.1234 and its negative).
        let pos = [0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2];
        let neg = [0x7E, 0xF2, 0x04, 0xC7, 0x2D, 0xFB, 0x2D];
        assert_eq!(decode_decimal(&pos, 14, 4).unwrap(), "1234567890.1234");
        assert_eq!(decode_decimal(&neg, 14, 4).unwrap(), "-1234567890.1234");
        assert_eq!(encode_decimal("1234567890.1234", 14, 4), pos);
    }

    #[test]
    fn decimal_round_trips_signs_scales_and_extremes() {
        let max65 = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        let tiny65 = format!("-0.{}1", "0".repeat(29));
        let cases: &[(&str, u8, u8)] = &[
            ("0.00", 10, 2),
            ("-0.05", 10, 2),
            ("12345678.91", 10, 2),
            ("-12345678.91", 10, 2),
            ("-12.3400", 8, 4),
            (&max65, 65, 30),
            (&format!("-{max65}"), 65, 30),
            (&tiny65, 65, 30),
            ("0", 1, 0),
            ("-99999", 5, 0),
            ("1000000000", 10, 0),
            ("-123456789012345678", 18, 0),
            ("0.123456789", 9, 9),
            ("-0.1234567890", 10, 10),
            ("100000000.000000001", 18, 9),
            ("7.5", 19, 1),
        ];
        for &(text, p, s) in cases {
            let bin = encode_decimal(text, p, s);
            assert_eq!(
                decode_decimal(&bin, p, s).unwrap(),
                text,
                "DECIMAL({p},{s})"
            );
        }
        // A negative zero (never written by servers) prints as zero.
        assert_eq!(decode_decimal(&[!0x80, !0], 3, 1).unwrap(), "0.0");
        // A digit group out of range is an error, not garbage.
        assert!(decode_decimal(&[0x80 | 0x7f, 0xff], 3, 1).is_err());
        assert!(decode_decimal(&[0x80], 10, 2).is_err());
        assert!(check_decimal(66, 2).is_err() && check_decimal(10, 11).is_err());
    }

    // ---- temporal encoders written from the format descriptions in `decode`, for round trips ----

    fn time_packed(negative: bool, h: i64, m: i64, s: i64, micros: i64) -> i64 {
        let p = (((h << 12) | (m << 6) | s) << 24) + micros;
        if negative { -p } else { p }
    }

    /// TIME2 bytes of a packed time, as MySQL's `my_time_packed_to_binary` lays them out.
    fn encode_time2(packed: i64, fsp: u8) -> Vec<u8> {
        let int = packed >> 24;
        let frac = packed % (1 << 24);
        let mut out = ((int + 0x80_0000) as u32).to_be_bytes()[1..].to_vec();
        match fsp {
            0 => {}
            1 | 2 => out.push((frac / 10_000) as i8 as u8),
            3 | 4 => out.extend(((frac / 100) as i16).to_be_bytes()),
            _ => out = ((packed + 0x8000_0000_0000) as u64).to_be_bytes()[2..].to_vec(),
        }
        out
    }

    fn datetime_packed(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, micros: i64) -> i64 {
        let ymd = ((y * 13 + mo) << 5) | d;
        let hms = (h << 12) | (mi << 6) | s;
        (((ymd << 17) | hms) << 24) + micros
    }

    fn encode_datetime2(packed: i64, fsp: u8) -> Vec<u8> {
        let int = packed >> 24;
        let frac = packed % (1 << 24);
        let mut out = ((int + 0x80_0000_0000) as u64).to_be_bytes()[3..].to_vec();
        match fsp {
            0 => {}
            1 | 2 => out.push((frac / 10_000) as u8),
            3 | 4 => out.extend(((frac / 100) as i16).to_be_bytes()),
            _ => out.extend(&(frac as u32).to_be_bytes()[1..]),
        }
        out
    }

    fn encode_timestamp2(secs: u32, micros: u32, fsp: u8) -> Vec<u8> {
        let mut out = secs.to_be_bytes().to_vec();
        match fsp {
            0 => {}
            1 | 2 => out.push((micros / 10_000) as u8),
            3 | 4 => out.extend(((micros / 100) as u16).to_be_bytes()),
            _ => out.extend(&micros.to_be_bytes()[1..]),
        }
        out
    }

    fn time(negative: bool, hours: u32, minutes: u8, seconds: u8, micros: u32) -> Value {
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
        }
    }

    fn datetime(v: (u16, u8, u8, u8, u8, u8), micros: u32) -> Value {
        let (year, month, day, hour, minute, second) = v;
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        }
    }

    /// Micros kept by a fractional precision.
    fn truncate_micros(micros: u32, fsp: u8) -> u32 {
        let unit = 10u32.pow(6 - u32::from(fsp));
        micros / unit * unit
    }

    #[test]
    fn time2_hand_vectors() {
        assert_eq!(time2_value(&[0x80, 0, 0], 0), time(false, 0, 0, 0, 0));
        assert_eq!(time2_value(&[0x7f, 0xff, 0xff], 0), time(true, 0, 0, 1, 0));
        // -00:00:00.5 at fsp 1: integer part -1 with fraction byte -50 (0xCE).
        let v = time2_value(&[0x7f, 0xff, 0xff, 0xce], 1);
        assert_eq!(v, time(true, 0, 0, 0, 500_000));
        // 838:59:59 = 0x800000 + (838 << 12 | 59 << 6 | 59).
        let v = 0x80_0000u32 + ((838 << 12) | (59 << 6) | 59);
        let v = time2_value(&v.to_be_bytes()[1..], 0);
        assert_eq!(v, time(false, 838, 59, 59, 0));
    }

    #[test]
    fn time2_datetime2_timestamp2_round_trip_every_fsp() {
        let times = [
            (false, 0, 0, 0, 0),
            (false, 12, 34, 56, 789_012),
            (true, 0, 0, 0, 1),
            (true, 0, 0, 0, 999_999),
            (true, 1, 0, 0, 500_000),
            (true, 25, 30, 0, 500_000),
            (false, 838, 59, 59, 0),
            (true, 838, 59, 59, 0),
            (true, 100, 0, 0, 0),
        ];
        let dts = [
            ((0, 0, 0, 0, 0, 0), 0),
            ((1000, 1, 1, 0, 0, 0), 100_000),
            ((2024, 2, 29, 12, 34, 56), 789_012),
            ((9999, 12, 31, 23, 59, 59), 999_999),
        ];
        for fsp in 0..=6u8 {
            for &(neg, h, m, s, us) in &times {
                let us = truncate_micros(us, fsp);
                if neg && h == 0 && m == 0 && s == 0 && us == 0 {
                    continue; // -00:00:00 does not exist
                }
                let packed = time_packed(neg, h.into(), m.into(), s.into(), us.into());
                let bytes = encode_time2(packed, fsp);
                assert_eq!(bytes.len(), 3 + usize::from(fsp).div_ceil(2));
                let v = time2_value(&bytes, fsp);
                assert_eq!(v, time(neg, h, m, s, us), "fsp {fsp}");
            }
            for &(ymdhms, us) in &dts {
                let us = truncate_micros(us, fsp);
                let (y, mo, d, h, mi, s) = ymdhms;
                let packed = datetime_packed(
                    y.into(),
                    mo.into(),
                    d.into(),
                    h.into(),
                    mi.into(),
                    s.into(),
                    us.into(),
                );
                let v = datetime2_value(&encode_datetime2(packed, fsp), fsp);
                assert_eq!(v, datetime(ymdhms, us), "fsp {fsp}");
            }
            for (secs, us) in [(0, 0), (1, 1_000), (2_147_483_647, 999_999)] {
                let us = truncate_micros(us, fsp);
                let bytes = encode_timestamp2(secs, us, fsp);
                let secs = i64::from(secs);
                let v = timestamp2_value(&bytes, fsp);
                assert_eq!(v, Value::Timestamp { secs, micros: us });
            }
        }
    }

    #[test]
    fn mariadb_pre_10_1_fractional_temporals() {
        // Bytes a MariaDB 10.11 with mysql56_temporal_format=OFF wrote for TIME(3)
        // '-12:34:56.789', DATETIME(3) '2024-02-29 12:34:56.789', TIMESTAMP(3) 1709210096.789.
        let v = maria_time_value(&[0x00, 0xb1, 0x54, 0x78, 0xeb], 3);
        assert_eq!(v, time(true, 12, 34, 56, 789_000));
        let v = maria_datetime_value(&[0x00, 0x42, 0x2b, 0xb5, 0x9e, 0x98, 0x95], 3);
        assert_eq!(v, datetime((2024, 2, 29, 12, 34, 56), 789_000));
        let v = maria_timestamp_value(&[0x65, 0xe0, 0x79, 0xf0, 0x03, 0x15], 3);
        let (secs, micros) = (1_709_210_096, 789_000);
        assert_eq!(v, Value::Timestamp { secs, micros });
        // TIME(6) zero point; TIME(1) 838:59:59.9 = 3020399.9 s → 30203999 + 3020400 * 10.
        let zero = 3_020_400_000_000u64.to_be_bytes();
        assert_eq!(maria_time_value(&zero[2..], 6), time(false, 0, 0, 0, 0));
        let v = (30_203_999u32 + 30_204_000).to_be_bytes();
        assert_eq!(maria_time_value(&v, 1), time(false, 838, 59, 59, 900_000));
        assert_eq!((maria_time_len(1), maria_datetime_len(6)), (4, 8));
    }
}
