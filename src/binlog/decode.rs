//! Rows events decoded straight into [`Value`]s from a per-table [`DecodePlan`].
//!
//! The syncer's hot path. A TABLE_MAP event is turned into a plan once (wire type, metadata
//! and output kind per column, refined by the schema tracker's [`ColumnInfo`]); every rows
//! event of that table is then decoded by walking the plan, with no per-row metadata parsing
//! and no allocation beyond each row's `Vec<Value>` and the values' own bytes.
//!
//! # TABLE_MAP body (after the 19-byte event header)
//!
//! `table_id u48 | flags u16 | db: u8 len, bytes, NUL | table: u8 len, bytes, NUL |
//! column count (length-encoded) | one type byte per column | metadata (length-encoded block,
//! 0–2 bytes per column by type) | nullable bitmap | optional metadata (ignored)`.
//!
//! # Rows event body
//!
//! `table_id u48 | flags u16 | [v2 only: extra length u16 (counting itself) + extra data] |
//! column count (length-encoded) | columns-present bitmap | [UPDATE: after-image bitmap] |
//! rows`. A row image is a NULL bitmap over the *present* columns (`ceil(present / 8)` bytes,
//! bit `k` for the `k`-th present column, LSB first) followed by the values of the present,
//! non-NULL columns. UPDATE rows are a before image then an after image. Event types: v1
//! 23/24/25 (MariaDB), v2 30/31/32 (MySQL). MariaDB's compressed rows events (166–171) and
//! MySQL's partial JSON updates (39) are refused with [`DecodeError::Unsupported`].
//!
//! # Value encodings (`meta` from the TABLE_MAP)
//!
//! - Integers: 1/2/3/4/8 bytes little-endian two's complement; signedness from
//!   [`ColumnInfo::unsigned`] (the binlog does not say).
//! - FLOAT/DOUBLE: IEEE little-endian. YEAR: 1 byte, `0` or `1900 + n`.
//! - NEWDECIMAL (meta `precision, scale`): groups of 9 digits in 4 big-endian bytes, leftover
//!   digits in 1–4 bytes (`DIG2BYTES`), integer part leftover first and fraction leftover
//!   last; the first bit is flipped, and negative numbers have every byte inverted.
//! - BIT (meta `bits % 8, bits / 8`): `bits/8 + (bits%8 > 0)` bytes, big-endian.
//! - DATE: 3 bytes LE, `day | month << 5 | year << 9`. Old TIME: 3 bytes LE signed
//!   `±HHMMSS`. Old DATETIME: 8 bytes LE `YYYYMMDDhhmmss`. Old TIMESTAMP: 4 bytes LE epoch.
//! - TIME2/DATETIME2/TIMESTAMP2 (meta `fsp`): big-endian integer part (3/5/4 bytes) followed
//!   by `(fsp + 1) / 2` fraction bytes holding hundredths, 1/10000ths or micros. TIME2's
//!   integer part is offset by `0x800000` (`sign | hour:10 | minute:6 | second:6`) and a
//!   negative value with a fraction borrows one second; DATETIME2's by `0x80_0000_0000`
//!   (`sign | year*13+month:17 | day:5 | hour:5 | minute:6 | second:6`). TIMESTAMP2 is epoch
//!   seconds.
//! - VARCHAR (meta max bytes u16 LE): 1 length byte if max < 256, else 2 (LE).
//! - STRING (meta `b0, b1`): if `b0 & 0x30 != 0x30` the max length is
//!   `b1 | ((b0 & 0x30) ^ 0x30) << 4` and the real type `b0 | 0x30` (CHAR longer than 255
//!   bytes), else real type `b0` and length `b1`. Real type ENUM: `b1` (1–2) bytes LE index;
//!   SET: `b1` (1–8) bytes LE mask; STRING: 1 or 2 length bytes as VARCHAR, trailing pad
//!   stripped (BINARY(n) is padded back with `0x00`).
//! - BLOB/TEXT/GEOMETRY/JSON/VECTOR (meta `n`): `n`-byte LE length, then the bytes. MySQL's
//!   JSON (245) is binary JSON, see [`super::json`]; MariaDB's JSON is a LONGTEXT (wire type
//!   BLOB) and becomes [`Value::Json`] when [`ColumnInfo::sql_type`] says JSON.
//! - NULL type: no bytes.
//! - MariaDB's pre-10.1 fractional temporals (`mysql56_temporal_format=OFF`, or tables from
//!   older servers) use wire types TIME/DATETIME/TIMESTAMP *without* metadata, so their
//!   precision comes from [`ColumnInfo::fsp`]. Big-endian: TIME(n) is
//!   `total_micros / 10^(6-n) + 3020400 * 10^n` in 3,4,4,5,5,5,6 bytes (n = 0..6, signed
//!   total); DATETIME(n) is `((((((y*13+m)*32+d)*24+h)*60+mi)*60+s)*10^6+us) / 10^(6-n)` in
//!   5,6,6,7,7,7,8 bytes; TIMESTAMP(n) is 4 bytes of epoch seconds then
//!   `us / 10^(6-n)` in 0,1,1,2,2,3,3 bytes. MySQL never writes these wire types with a
//!   fraction (it uses TIME2/DATETIME2/TIMESTAMP2), so the choice is unambiguous.

use std::fmt;

use mysql_async::binlog::events::TableMapEvent;
use mysql_common::proto::MySerialize;

pub use super::codec::DecodeError;
use super::codec::be_uint;
use super::json::json_binary_to_text;
use super::value::{
    ColumnInfo, SqlType, Value, check_decimal, datetime2_len, datetime2_value, decimal_size,
    decode_decimal, maria_datetime_len, maria_datetime_value, maria_time_len, maria_time_value,
    maria_timestamp_value, time2_len, time2_value, timestamp2_len, timestamp2_value,
};

/// Binlog event type numbers of rows events.
pub mod event_types {
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const WRITE_ROWS_V2: u8 = 30;
    pub const UPDATE_ROWS_V2: u8 = 31;
    pub const DELETE_ROWS_V2: u8 = 32;
    pub const PARTIAL_UPDATE_ROWS: u8 = 39;
    /// MariaDB `WRITE_ROWS_COMPRESSED_EVENT_V1`; 166–171 are the compressed rows events.
    pub const MARIA_FIRST_COMPRESSED_ROWS: u8 = 166;
    pub const MARIA_LAST_COMPRESSED_ROWS: u8 = 171;
}

/// What a rows event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    Insert,
    Update,
    Delete,
}

/// One row of a rows event; columns absent from an image are [`Value::Null`].
#[derive(Debug, Clone, PartialEq)]
pub struct RowImage {
    /// UPDATE and DELETE: the row before.
    pub before: Option<Vec<Value>>,
    /// INSERT and UPDATE: the row after.
    pub after: Option<Vec<Value>>,
}

/// The decoded rows of one rows event.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsBatch {
    /// The table id of the event (equal to its plan's).
    pub table_id: u64,
    /// INSERT, UPDATE or DELETE.
    pub kind: RowKind,
    /// The rows in event order.
    pub rows: Vec<RowImage>,
}

/// How the bytes of a string-like column become a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Bytes,
    Json,
    Geometry,
}

/// What to read for one column, prepared from its wire type, metadata and [`ColumnInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    I8,
    U8,
    I16,
    U16,
    I24,
    U24,
    I32,
    U32,
    I64,
    U64,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
        size: u8,
    },
    Bit {
        bytes: u8,
    },
    Year,
    Date,
    Time,
    Time2 {
        fsp: u8,
    },
    DateTime,
    DateTime2 {
        fsp: u8,
    },
    Timestamp,
    Timestamp2 {
        fsp: u8,
    },
    /// MariaDB's pre-10.1 TIME(n), n > 0.
    MariaTime {
        fsp: u8,
    },
    /// MariaDB's pre-10.1 DATETIME(n), n > 0.
    MariaDateTime {
        fsp: u8,
    },
    /// MariaDB's pre-10.1 TIMESTAMP(n), n > 0.
    MariaTimestamp {
        fsp: u8,
    },
    /// VARCHAR and CHAR: a 1- or 2-byte length; `pad_to > 0` pads BINARY(n) with `0x00`.
    Str {
        len_bytes: u8,
        pad_to: u16,
        out: Out,
    },
    Enum {
        bytes: u8,
    },
    Set {
        bytes: u8,
    },
    /// BLOB/TEXT/GEOMETRY/VECTOR: a 1–4 byte length.
    Blob {
        len_bytes: u8,
        out: Out,
    },
    /// MySQL's binary JSON with a 1–4 byte length.
    MysqlJson {
        len_bytes: u8,
    },
}

/// One column of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ColumnPlan {
    kind: Kind,
    /// The wire type as written in the TABLE_MAP.
    type_code: u8,
    nullable: bool,
}

/// Everything needed to decode the rows events of one TABLE_MAP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodePlan {
    table_id: u64,
    schema: String,
    table: String,
    columns: Vec<ColumnPlan>,
}

/// Wire type codes (MySQL's `enum_field_types`).
mod wire {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const VECTOR: u8 = 242;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

/// Metadata bytes a wire type has in the TABLE_MAP; `None` for types without a known layout.
fn metadata_len(type_code: u8) -> Option<usize> {
    use wire::*;
    match type_code {
        TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | BLOB | FLOAT | DOUBLE | GEOMETRY | JSON | VECTOR
        | TIME2 | DATETIME2 | TIMESTAMP2 => Some(1),
        VARCHAR | NEWDECIMAL | ENUM | SET | STRING | BIT => Some(2),
        TINY | SHORT | LONG | LONGLONG | INT24 | NULL | TIMESTAMP | DATE | TIME | DATETIME
        | YEAR | NEWDATE => Some(0),
        // Pre-5.0 DECIMAL, VAR_STRING (never used by row events since 5.0), TYPED_ARRAY and
        // unknown codes: no layout to rely on.
        DECIMAL => None,
        _ => None,
    }
}

impl DecodePlan {
    /// Prepares the plan of `table_map` with the tracked `columns` (table order).
    pub fn new(table_map: &TableMapEvent<'_>, columns: &[ColumnInfo]) -> Result<Self, DecodeError> {
        let mut raw = Vec::with_capacity(64 + 4 * columns.len());
        table_map.serialize(&mut raw);
        Self::from_table_map_body(&raw, columns)
    }

    /// Prepares the plan from a raw TABLE_MAP body (the event data after the 19-byte header,
    /// without checksum), e.g. `Event::data()`.
    pub fn from_table_map_body(body: &[u8], columns: &[ColumnInfo]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let table_id = r.u48()?;
        r.skip(2)?; // flags
        let schema = r.name()?;
        let table = r.name()?;
        let count = usize::try_from(r.lenenc()?)
            .map_err(|_| DecodeError::invalid("column count overflows"))?;
        let types = r.take(count)?;
        let meta_len = usize::try_from(r.lenenc()?)
            .map_err(|_| DecodeError::invalid("metadata length overflows"))?;
        let meta = r.take(meta_len)?;
        let nullable = r.take(count.div_ceil(8))?;
        if count != columns.len() {
            return Err(DecodeError::ColumnCountMismatch {
                schema,
                table,
                binlog: count,
                tracked: columns.len(),
            });
        }
        let mut plans = Vec::with_capacity(count);
        let mut at = 0;
        for (i, (&type_code, col)) in types.iter().zip(columns).enumerate() {
            let unsupported = || DecodeError::UnsupportedColumnType {
                column: i,
                name: col.name.clone(),
                type_code,
            };
            let len = metadata_len(type_code).ok_or_else(unsupported)?;
            let m = meta
                .get(at..at + len)
                .ok_or_else(|| DecodeError::invalid("TABLE_MAP metadata is too short"))?;
            at += len;
            let kind = plan_column(type_code, m, col)
                .map_err(|e| e.in_column(i))?
                .ok_or_else(unsupported)?;
            plans.push(ColumnPlan {
                kind,
                type_code,
                nullable: nullable[i / 8] & (1 << (i % 8)) != 0,
            });
        }
        Ok(Self {
            table_id,
            schema,
            table,
            columns: plans,
        })
    }

    /// The table id the plan's TABLE_MAP assigned.
    pub fn table_id(&self) -> u64 {
        self.table_id
    }

    /// The schema name from the TABLE_MAP.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table name from the TABLE_MAP.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Number of columns.
    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    /// Whether column `i` may hold NULL, per the TABLE_MAP.
    pub fn nullable(&self, i: usize) -> bool {
        self.columns.get(i).is_some_and(|c| c.nullable)
    }

    /// Wire type of column `i` as written in the TABLE_MAP.
    pub fn wire_type(&self, i: usize) -> Option<u8> {
        self.columns.get(i).map(|c| c.type_code)
    }
}

/// The kind of one column; `Ok(None)` for a wire type this decoder does not handle.
fn plan_column(type_code: u8, m: &[u8], col: &ColumnInfo) -> Result<Option<Kind>, DecodeError> {
    use wire::*;
    let unsigned = col.unsigned;
    let text_out = if col.sql_type == SqlType::Json {
        Out::Json
    } else if col.sql_type == SqlType::Geometry {
        Out::Geometry
    } else {
        Out::Bytes
    };
    let kind = match type_code {
        TINY if unsigned => Kind::U8,
        TINY => Kind::I8,
        SHORT if unsigned => Kind::U16,
        SHORT => Kind::I16,
        INT24 if unsigned => Kind::U24,
        INT24 => Kind::I24,
        LONG if unsigned => Kind::U32,
        LONG => Kind::I32,
        LONGLONG if unsigned => Kind::U64,
        LONGLONG => Kind::I64,
        FLOAT => Kind::Float,
        DOUBLE => Kind::Double,
        NULL => Kind::Null,
        YEAR => Kind::Year,
        DATE | NEWDATE => Kind::Date,
        TIME if col.fsp > 0 => Kind::MariaTime { fsp: fsp(col.fsp)? },
        TIME => Kind::Time,
        DATETIME if col.fsp > 0 => Kind::MariaDateTime { fsp: fsp(col.fsp)? },
        DATETIME => Kind::DateTime,
        TIMESTAMP if col.fsp > 0 => Kind::MariaTimestamp { fsp: fsp(col.fsp)? },
        TIMESTAMP => Kind::Timestamp,
        TIME2 => Kind::Time2 { fsp: fsp(m[0])? },
        DATETIME2 => Kind::DateTime2 { fsp: fsp(m[0])? },
        TIMESTAMP2 => Kind::Timestamp2 { fsp: fsp(m[0])? },
        NEWDECIMAL => {
            let (precision, scale) = (m[0], m[1]);
            check_decimal(precision, scale)?;
            Kind::Decimal {
                precision,
                scale,
                size: decimal_size(precision, scale) as u8,
            }
        }
        BIT => {
            let bytes = m[1] as usize + usize::from(m[0] > 0);
            if m[0] > 7 || bytes == 0 || bytes > 8 {
                return Err(DecodeError::invalid(format!("BIT metadata {m:?}")));
            }
            Kind::Bit { bytes: bytes as u8 }
        }
        VARCHAR => {
            let max = u16::from_le_bytes([m[0], m[1]]);
            Kind::Str {
                len_bytes: if max < 256 { 1 } else { 2 },
                pad_to: 0,
                out: text_out,
            }
        }
        STRING | ENUM | SET => {
            let (real, max) = string_meta(m[0], m[1]);
            match real {
                ENUM if matches!(m[1], 1 | 2) => Kind::Enum { bytes: m[1] },
                SET if (1..=8).contains(&m[1]) => Kind::Set { bytes: m[1] },
                STRING => Kind::Str {
                    len_bytes: if max > 255 { 2 } else { 1 },
                    pad_to: if col.sql_type == SqlType::Binary {
                        max
                    } else {
                        0
                    },
                    out: text_out,
                },
                _ => return Err(DecodeError::invalid(format!("STRING metadata {m:?}"))),
            }
        }
        TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | BLOB | GEOMETRY | VECTOR | JSON => {
            let len_bytes = m[0];
            if !(1..=4).contains(&len_bytes) {
                return Err(DecodeError::invalid(format!("length size {len_bytes}")));
            }
            match type_code {
                JSON => Kind::MysqlJson { len_bytes },
                GEOMETRY => Kind::Blob {
                    len_bytes,
                    out: Out::Geometry,
                },
                _ => Kind::Blob {
                    len_bytes,
                    out: text_out,
                },
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(kind))
}

fn fsp(v: u8) -> Result<u8, DecodeError> {
    if v > 6 {
        return Err(DecodeError::invalid(format!("fractional precision {v}")));
    }
    Ok(v)
}

/// Real type and max byte length of a STRING column from its two metadata bytes.
fn string_meta(b0: u8, b1: u8) -> (u8, u16) {
    if b0 & 0x30 != 0x30 {
        (
            b0 | 0x30,
            u16::from(b1) | (u16::from((b0 & 0x30) ^ 0x30) << 4),
        )
    } else {
        (b0, u16::from(b1))
    }
}

/// Reads the table id of a rows event body, to find its plan before decoding.
pub fn rows_table_id(body: &[u8]) -> Result<u64, DecodeError> {
    Reader::new(body).u48()
}

/// Decodes the body of a rows event of raw type `event_type` (the event data after the
/// 19-byte header, without checksum) with the plan of its table.
pub fn decode_rows(
    plan: &DecodePlan,
    event_type: u8,
    body: &[u8],
) -> Result<RowsBatch, DecodeError> {
    use event_types::*;
    let (kind, v2) = match event_type {
        WRITE_ROWS_V1 => (RowKind::Insert, false),
        UPDATE_ROWS_V1 => (RowKind::Update, false),
        DELETE_ROWS_V1 => (RowKind::Delete, false),
        WRITE_ROWS_V2 => (RowKind::Insert, true),
        UPDATE_ROWS_V2 => (RowKind::Update, true),
        DELETE_ROWS_V2 => (RowKind::Delete, true),
        PARTIAL_UPDATE_ROWS => {
            return Err(DecodeError::Unsupported {
                what: "partial JSON update rows events (set binlog_row_value_options='')".into(),
            });
        }
        MARIA_FIRST_COMPRESSED_ROWS..=MARIA_LAST_COMPRESSED_ROWS => {
            return Err(DecodeError::Unsupported {
                what: "compressed rows events (set log_bin_compress=OFF on the source)".into(),
            });
        }
        other => return Err(DecodeError::NotRowsEvent { event_type: other }),
    };
    let mut r = Reader::new(body);
    let table_id = r.u48()?;
    r.skip(2)?; // flags
    if v2 {
        let extra = usize::from(r.u16()?);
        let extra = extra
            .checked_sub(2)
            .ok_or_else(|| DecodeError::invalid("v2 extra-data length below 2"))?;
        r.skip(extra)?;
    }
    if table_id != plan.table_id {
        return Err(DecodeError::TableIdMismatch {
            event: table_id,
            plan: plan.table_id,
        });
    }
    let n = r.lenenc()?;
    if n != plan.columns.len() as u64 {
        return Err(DecodeError::RowColumnCountMismatch {
            table_id,
            event: n,
            plan: plan.columns.len(),
        });
    }
    let bitmap_len = plan.columns.len().div_ceil(8);
    let first = Present::new(r.take(bitmap_len)?, plan.columns.len());
    let second = if kind == RowKind::Update {
        Present::new(r.take(bitmap_len)?, plan.columns.len())
    } else {
        first
    };
    let mut rows = Vec::new();
    while !r.is_empty() {
        let row = match kind {
            RowKind::Insert => RowImage {
                before: None,
                after: Some(decode_image(plan, first, &mut r)?),
            },
            RowKind::Delete => RowImage {
                before: Some(decode_image(plan, first, &mut r)?),
                after: None,
            },
            RowKind::Update => {
                let before = decode_image(plan, first, &mut r)?;
                let after = decode_image(plan, second, &mut r)?;
                RowImage {
                    before: Some(before),
                    after: Some(after),
                }
            }
        };
        rows.push(row);
    }
    Ok(RowsBatch {
        table_id,
        kind,
        rows,
    })
}

/// A columns-present bitmap and how many of its columns are present.
#[derive(Debug, Clone, Copy)]
struct Present<'a> {
    bits: &'a [u8],
    count: usize,
    all: bool,
}

impl<'a> Present<'a> {
    fn new(bits: &'a [u8], columns: usize) -> Self {
        let count = (0..columns)
            .filter(|i| bits[i / 8] & (1 << (i % 8)) != 0)
            .count();
        Self {
            bits,
            count,
            all: count == columns,
        }
    }

    #[inline]
    fn has(&self, i: usize) -> bool {
        self.all || self.bits[i / 8] & (1 << (i % 8)) != 0
    }
}

/// One row image: NULL bitmap over the present columns, then their values.
fn decode_image(
    plan: &DecodePlan,
    present: Present<'_>,
    r: &mut Reader<'_>,
) -> Result<Vec<Value>, DecodeError> {
    let nulls = r.take(present.count.div_ceil(8))?;
    let mut row = Vec::with_capacity(plan.columns.len());
    let mut k = 0;
    for (i, col) in plan.columns.iter().enumerate() {
        if !present.has(i) {
            row.push(Value::Null);
            continue;
        }
        let is_null = nulls[k / 8] & (1 << (k % 8)) != 0;
        k += 1;
        if is_null {
            row.push(Value::Null);
            continue;
        }
        row.push(decode_value(col.kind, r).map_err(|e| e.in_column(i))?);
    }
    Ok(row)
}

/// Reads one non-NULL value of `kind`.
#[inline]
fn decode_value(kind: Kind, r: &mut Reader<'_>) -> Result<Value, DecodeError> {
    Ok(match kind {
        Kind::Null => Value::Null,
        Kind::I8 => Value::Int(i64::from(r.u8()? as i8)),
        Kind::U8 => Value::UInt(u64::from(r.u8()?)),
        Kind::I16 => Value::Int(i64::from(i16::from_le_bytes(r.array()?))),
        Kind::U16 => Value::UInt(u64::from(u16::from_le_bytes(r.array()?))),
        Kind::I24 => {
            let [a, b, c] = r.array()?;
            Value::Int(i64::from(i32::from_le_bytes([0, a, b, c]) >> 8))
        }
        Kind::U24 => {
            let [a, b, c] = r.array()?;
            Value::UInt(u64::from(u32::from_le_bytes([a, b, c, 0])))
        }
        Kind::I32 => Value::Int(i64::from(i32::from_le_bytes(r.array()?))),
        Kind::U32 => Value::UInt(u64::from(u32::from_le_bytes(r.array()?))),
        Kind::I64 => Value::Int(i64::from_le_bytes(r.array()?)),
        Kind::U64 => Value::UInt(u64::from_le_bytes(r.array()?)),
        Kind::Float => Value::Float(f32::from_le_bytes(r.array()?)),
        Kind::Double => Value::Double(f64::from_le_bytes(r.array()?)),
        Kind::Decimal {
            precision,
            scale,
            size,
        } => Value::Decimal(decode_decimal(
            r.take(usize::from(size))?,
            precision,
            scale,
        )?),
        Kind::Bit { bytes } => Value::Bit(be_uint(r.take(usize::from(bytes))?)),
        Kind::Year => {
            let y = r.u8()?;
            Value::Year(if y == 0 { 0 } else { 1900 + u16::from(y) })
        }
        Kind::Date => {
            let [a, b, c] = r.array()?;
            let v = u32::from_le_bytes([a, b, c, 0]);
            Value::Date {
                year: (v >> 9) as u16,
                month: ((v >> 5) & 15) as u8,
                day: (v & 31) as u8,
            }
        }
        Kind::Time => {
            let [a, b, c] = r.array()?;
            let v = i32::from_le_bytes([0, a, b, c]) >> 8;
            let abs = v.unsigned_abs();
            Value::Time {
                negative: v < 0,
                hours: abs / 10_000,
                minutes: (abs / 100 % 100) as u8,
                seconds: (abs % 100) as u8,
                micros: 0,
            }
        }
        Kind::Time2 { fsp } => time2_value(r.take(time2_len(fsp))?, fsp),
        Kind::DateTime => {
            let v = u64::from_le_bytes(r.array()?);
            let (date, time) = (v / 1_000_000, v % 1_000_000);
            Value::DateTime {
                year: (date / 10_000) as u16,
                month: (date / 100 % 100) as u8,
                day: (date % 100) as u8,
                hour: (time / 10_000) as u8,
                minute: (time / 100 % 100) as u8,
                second: (time % 100) as u8,
                micros: 0,
            }
        }
        Kind::DateTime2 { fsp } => datetime2_value(r.take(datetime2_len(fsp))?, fsp),
        Kind::Timestamp => Value::Timestamp {
            secs: i64::from(u32::from_le_bytes(r.array()?)),
            micros: 0,
        },
        Kind::Timestamp2 { fsp } => timestamp2_value(r.take(timestamp2_len(fsp))?, fsp),
        Kind::MariaTime { fsp } => maria_time_value(r.take(maria_time_len(fsp))?, fsp),
        Kind::MariaDateTime { fsp } => maria_datetime_value(r.take(maria_datetime_len(fsp))?, fsp),
        Kind::MariaTimestamp { fsp } => maria_timestamp_value(r.take(timestamp2_len(fsp))?, fsp),
        Kind::Str {
            len_bytes,
            pad_to,
            out,
        } => {
            let len = if len_bytes == 1 {
                usize::from(r.u8()?)
            } else {
                usize::from(u16::from_le_bytes(r.array()?))
            };
            let data = r.take(len)?;
            if usize::from(pad_to) > len {
                let mut v = Vec::with_capacity(usize::from(pad_to));
                v.extend_from_slice(data);
                v.resize(usize::from(pad_to), 0);
                Value::Bytes(v)
            } else {
                bytes_value(data, out)
            }
        }
        Kind::Enum { bytes } => Value::Enum(le_uint(r.take(usize::from(bytes))?) as u16),
        Kind::Set { bytes } => Value::Set(le_uint(r.take(usize::from(bytes))?)),
        Kind::Blob { len_bytes, out } => {
            let len = le_uint(r.take(usize::from(len_bytes))?);
            let len = usize::try_from(len).map_err(|_| DecodeError::invalid("blob length"))?;
            bytes_value(r.take(len)?, out)
        }
        Kind::MysqlJson { len_bytes } => {
            let len = le_uint(r.take(usize::from(len_bytes))?);
            let len = usize::try_from(len).map_err(|_| DecodeError::invalid("json length"))?;
            Value::Json(json_binary_to_text(r.take(len)?)?)
        }
    })
}

fn bytes_value(data: &[u8], out: Out) -> Value {
    match out {
        Out::Bytes => Value::Bytes(data.to_vec()),
        Out::Geometry => Value::Geometry(data.to_vec()),
        Out::Json => match std::str::from_utf8(data) {
            Ok(text) => Value::Json(text.to_owned()),
            Err(_) => Value::Bytes(data.to_vec()),
        },
    }
}

#[inline]
fn le_uint(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x))
}

/// A bounds-checked cursor over an event body.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.buf.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(DecodeError::Truncated {
                at: self.pos,
                need: n,
            }),
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u48(&mut self) -> Result<u64, DecodeError> {
        Ok(le_uint(self.take(6)?))
    }

    /// A length-encoded integer.
    fn lenenc(&mut self) -> Result<u64, DecodeError> {
        match self.u8()? {
            0xfc => Ok(le_uint(self.take(2)?)),
            0xfd => Ok(le_uint(self.take(3)?)),
            0xfe => Ok(le_uint(self.take(8)?)),
            0xfb | 0xff => Err(DecodeError::invalid("bad length-encoded integer")),
            b => Ok(u64::from(b)),
        }
    }

    /// A TABLE_MAP name: u8 length, bytes, NUL.
    fn name(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u8()?);
        let s = String::from_utf8_lossy(self.take(len)?).into_owned();
        self.skip(1)?;
        Ok(s)
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_one(kind: Kind, bytes: &[u8]) -> Value {
        let mut r = Reader::new(bytes);
        let v = decode_value(kind, &mut r).unwrap();
        assert!(r.is_empty(), "{kind:?} left bytes of {bytes:?}");
        v
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

    #[test]
    fn old_temporal_and_small_types() {
        // Old TIME: -838:59:59 as signed 24-bit -8385959.
        let v = (-8_385_959i32).to_le_bytes();
        assert_eq!(decode_one(Kind::Time, &v[..3]), time(true, 838, 59, 59, 0));
        let v = 20_240_229_123_456u64.to_le_bytes();
        let v = decode_one(Kind::DateTime, &v);
        let (year, month, day, hour, minute, second, micros) = (2024, 2, 29, 12, 34, 56, 0);
        let expected = Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        };
        assert_eq!(v, expected);
        let date = ((2024u32 << 9) | (2 << 5) | 29).to_le_bytes();
        let (year, month, day) = (2024, 2, 29);
        let v = decode_one(Kind::Date, &date[..3]);
        assert_eq!(v, Value::Date { year, month, day });
        let (year, month, day) = (0, 0, 0);
        let v = decode_one(Kind::Date, &[0, 0, 0]);
        assert_eq!(v, Value::Date { year, month, day });
        assert_eq!(decode_one(Kind::Year, &[0]), Value::Year(0));
        assert_eq!(decode_one(Kind::Year, &[255]), Value::Year(2155));
        assert_eq!(decode_one(Kind::I24, &[0, 0, 0x80]), Value::Int(-8_388_608));
        assert_eq!(decode_one(Kind::U24, &[0xff; 3]), Value::UInt(16_777_215));
        assert_eq!(decode_one(Kind::I8, &[0x80]), Value::Int(-128));
        assert_eq!(decode_one(Kind::U64, &[0xff; 8]), Value::UInt(u64::MAX));
        assert_eq!(decode_one(Kind::I64, &[0xff; 8]), Value::Int(-1));
        let v = decode_one(Kind::Set { bytes: 8 }, &[0xff; 8]);
        assert_eq!(v, Value::Set(u64::MAX));
        let v = decode_one(Kind::Enum { bytes: 2 }, &[0x2c, 0x01]);
        assert_eq!(v, Value::Enum(300));
        // DECIMAL(5,2) -1.50: 2 bytes for 3 integer digits, 1 for 2 fraction digits.
        let (precision, scale, size) = (5, 2, 3);
        let v = decode_one(
            Kind::Decimal {
                precision,
                scale,
                size,
            },
            &[!0x80, !1, !50],
        );
        assert_eq!(v, Value::Decimal("-1.50".into()));
    }

    #[test]
    fn mariadb_pre_10_1_fractional_temporals_take_precision_from_the_schema() {
        // Decoding itself is tested in `value`; the TABLE_MAP has no metadata for these.
        let col = |t, fsp| ColumnInfo {
            fsp,
            ..ColumnInfo::new("c", t)
        };
        let kind = |w, c: ColumnInfo| plan_column(w, &[], &c).unwrap().unwrap();
        let fsp = 3;
        assert_eq!(
            kind(wire::TIME, col(SqlType::Time, 3)),
            Kind::MariaTime { fsp }
        );
        let k = kind(wire::DATETIME, col(SqlType::DateTime, 3));
        assert_eq!(k, Kind::MariaDateTime { fsp });
        let k = kind(wire::TIMESTAMP, col(SqlType::Timestamp, 3));
        assert_eq!(k, Kind::MariaTimestamp { fsp });
        let v = decode_one(k, &[0x65, 0xe0, 0x79, 0xf0, 0x03, 0x15]);
        let (secs, micros) = (1_709_210_096, 789_000);
        assert_eq!(v, Value::Timestamp { secs, micros });
        assert_eq!(kind(wire::TIME, col(SqlType::Time, 0)), Kind::Time);
    }

    #[test]
    fn bit_metadata_and_values() {
        let col = ColumnInfo::new("b", SqlType::Bit);
        // BIT(10): 2 spare bits, 1 whole byte → 2 bytes, big-endian.
        let kind = plan_column(wire::BIT, &[2, 1], &col).unwrap().unwrap();
        assert_eq!(kind, Kind::Bit { bytes: 2 });
        assert_eq!(decode_one(kind, &[0x03, 0xff]), Value::Bit(1023));
        let kind = plan_column(wire::BIT, &[1, 0], &col).unwrap().unwrap();
        assert_eq!(decode_one(kind, &[1]), Value::Bit(1));
        let kind = plan_column(wire::BIT, &[0, 8], &col).unwrap().unwrap();
        let bytes = 0x8000_0000_0000_0001u64.to_be_bytes();
        assert_eq!(decode_one(kind, &bytes), Value::Bit(0x8000_0000_0000_0001));
        assert!(plan_column(wire::BIT, &[0, 9], &col).is_err());
    }

    #[test]
    fn string_metadata_trick_enum_set_and_binary_padding() {
        // CHAR(60) latin1: plain.
        assert_eq!(string_meta(0xfe, 60), (wire::STRING, 60));
        // CHAR(255) utf8mb4 = 1020 bytes = 0x3FC: 0xFE ^ (0x300 >> 4) = 0xCE, 0xFC.
        assert_eq!(string_meta(0xce, 0xfc), (wire::STRING, 1020));
        assert_eq!(string_meta(0xf7, 2), (wire::ENUM, 2));
        assert_eq!(string_meta(0xf8, 8), (wire::SET, 8));
        let text = ColumnInfo::new("c", SqlType::Char);
        let kind = plan_column(wire::STRING, &[0xce, 0xfc], &text)
            .unwrap()
            .unwrap();
        let mut bytes = vec![0x2c, 0x01];
        bytes.extend(vec![b'x'; 300]);
        assert_eq!(decode_one(kind, &bytes), Value::Bytes(vec![b'x'; 300]));
        let kind = plan_column(wire::STRING, &[0xf7, 1], &text)
            .unwrap()
            .unwrap();
        assert_eq!(decode_one(kind, &[3]), Value::Enum(3));
        // BINARY(4) stored as "a" comes back padded.
        let bin = ColumnInfo::new("b", SqlType::Binary);
        let kind = plan_column(wire::STRING, &[0xfe, 4], &bin)
            .unwrap()
            .unwrap();
        assert_eq!(
            decode_one(kind, &[1, b'a']),
            Value::Bytes(vec![b'a', 0, 0, 0])
        );
        // VARCHAR with max 300 bytes uses a 2-byte length.
        let kind = plan_column(wire::VARCHAR, &300u16.to_le_bytes(), &text)
            .unwrap()
            .unwrap();
        assert_eq!(
            decode_one(kind, &[2, 0, b'h', b'i']),
            Value::Bytes(b"hi".to_vec())
        );
        // MariaDB JSON: a BLOB-typed LONGTEXT the schema calls JSON.
        let json = ColumnInfo::new("j", SqlType::Json);
        let kind = plan_column(wire::BLOB, &[4], &json).unwrap().unwrap();
        let mut bytes = 2u32.to_le_bytes().to_vec();
        bytes.extend(b"{}");
        assert_eq!(decode_one(kind, &bytes), Value::Json("{}".into()));
        assert!(plan_column(wire::STRING, &[0xf7, 3], &text).is_err());
    }

    // ---- whole events ----

    fn lenenc(n: usize, out: &mut Vec<u8>) {
        if n < 251 {
            out.push(n as u8);
        } else {
            out.push(0xfc);
            out.extend((n as u16).to_le_bytes());
        }
    }

    /// A TABLE_MAP body for `test`.`t` with `(type, metadata)` columns, all nullable.
    fn table_map(table_id: u64, cols: &[(u8, &[u8])]) -> Vec<u8> {
        let mut b = table_id.to_le_bytes()[..6].to_vec();
        b.extend([1, 0]);
        b.extend([4, b't', b'e', b's', b't', 0, 1, b't', 0]);
        lenenc(cols.len(), &mut b);
        b.extend(cols.iter().map(|c| c.0));
        let meta: Vec<u8> = cols.iter().flat_map(|c| c.1.iter().copied()).collect();
        lenenc(meta.len(), &mut b);
        b.extend(&meta);
        b.extend(vec![0xff; cols.len().div_ceil(8)]);
        b
    }

    /// A rows body: post-header (v2 with 2 bytes of extra data), column count, bitmaps, rows.
    fn rows_body(table_id: u64, v2: bool, n: usize, bitmaps: &[&[u8]], rows: &[u8]) -> Vec<u8> {
        let mut b = table_id.to_le_bytes()[..6].to_vec();
        b.extend([1, 0]);
        if v2 {
            b.extend([4, 0, 0xaa, 0xbb]);
        }
        lenenc(n, &mut b);
        for bm in bitmaps {
            b.extend(*bm);
        }
        b.extend(rows);
        b
    }

    fn sample_plan() -> DecodePlan {
        let cols = [
            ColumnInfo::new("id", SqlType::Int),
            ColumnInfo {
                unsigned: true,
                ..ColumnInfo::new("u", SqlType::BigInt)
            },
            ColumnInfo::new("s", SqlType::VarChar),
        ];
        let tm = table_map(
            42,
            &[
                (wire::LONG, &[]),
                (wire::LONGLONG, &[]),
                (wire::VARCHAR, &[40, 0]),
            ],
        );
        DecodePlan::from_table_map_body(&tm, &cols).unwrap()
    }

    #[test]
    fn plan_reads_names_ids_and_nullability() {
        // `DecodePlan::new` (from mysql_common's TableMapEvent) is exercised by the
        // integration test `cases::decode`.
        let plan = sample_plan();
        let (id, schema, table, n) = (plan.table_id(), plan.schema(), plan.table(), 3);
        assert_eq!(
            (id, schema, table, plan.column_count()),
            (42, "test", "t", n)
        );
        assert!(plan.nullable(2));
        assert_eq!(plan.wire_type(2), Some(wire::VARCHAR));
        let one_column = table_map(42, &[(wire::LONG, &[])]);
        let two = [
            ColumnInfo::new("a", SqlType::Int),
            ColumnInfo::new("b", SqlType::Int),
        ];
        let err = DecodePlan::from_table_map_body(&one_column, &two).unwrap_err();
        let expected = DecodeError::ColumnCountMismatch {
            schema: "test".into(),
            table: "t".into(),
            binlog: 1,
            tracked: 2,
        };
        assert_eq!(err, expected);
        assert_eq!(err.to_dm().code, 36027);
        let old_decimal = table_map(42, &[(wire::DECIMAL, &[])]);
        let cols = [ColumnInfo::new("a", SqlType::Decimal)];
        let err = DecodePlan::from_table_map_body(&old_decimal, &cols).unwrap_err();
        let unsupported = matches!(err, DecodeError::UnsupportedColumnType { type_code: 0, .. });
        assert!(unsupported, "{err:?}");
    }

    #[test]
    fn write_update_delete_v1_and_v2() {
        let plan = sample_plan();
        // Row 1: (1, u64::MAX, "ab"); row 2: (-1, NULL, "").
        let mut rows = vec![0b000];
        rows.extend(1i32.to_le_bytes());
        rows.extend(u64::MAX.to_le_bytes());
        rows.extend([2, b'a', b'b']);
        rows.push(0b010);
        rows.extend((-1i32).to_le_bytes());
        rows.extend([0]);
        let r1 = [
            Value::Int(1),
            Value::UInt(u64::MAX),
            Value::Bytes(b"ab".to_vec()),
        ];
        let r2 = [Value::Int(-1), Value::Null, Value::Bytes(Vec::new())];
        for (v2, write, delete) in [(false, 23, 25), (true, 30, 32)] {
            let body = rows_body(42, v2, 3, &[&[0b111]], &rows);
            let batch = decode_rows(&plan, write, &body).unwrap();
            assert_eq!(batch.kind, RowKind::Insert);
            assert_eq!(batch.table_id, 42);
            assert_eq!(batch.rows.len(), 2);
            assert_eq!(batch.rows[0].after.as_deref(), Some(&r1[..]));
            assert_eq!(batch.rows[1].after.as_deref(), Some(&r2[..]));
            assert!(batch.rows[0].before.is_none());
            let batch = decode_rows(&plan, delete, &body).unwrap();
            assert_eq!(batch.kind, RowKind::Delete);
            assert_eq!(batch.rows[1].before.as_deref(), Some(&r2[..]));
            assert!(batch.rows[1].after.is_none());
            // Update r1 → r2 with both images full.
            let mut upd = rows.clone();
            upd.truncate(rows.len());
            let body = rows_body(42, v2, 3, &[&[0b111], &[0b111]], &upd);
            let batch = decode_rows(&plan, write + 1, &body).unwrap();
            assert_eq!(batch.kind, RowKind::Update);
            assert_eq!(batch.rows.len(), 1);
            assert_eq!(batch.rows[0].before.as_deref(), Some(&r1[..]));
            assert_eq!(batch.rows[0].after.as_deref(), Some(&r2[..]));
        }
    }

    #[test]
    fn partial_images_leave_absent_columns_null() {
        let plan = sample_plan();
        // Before image: only id (column 0) present; after image: id and s.
        let mut rows = vec![0];
        rows.extend(5i32.to_le_bytes());
        rows.push(0b10); // after: id present non-null, s (2nd present) NULL
        rows.extend(6i32.to_le_bytes());
        let body = rows_body(42, false, 3, &[&[0b001], &[0b101]], &rows);
        let batch = decode_rows(&plan, 24, &body).unwrap();
        assert_eq!(
            batch.rows[0].before.as_deref(),
            Some(&[Value::Int(5), Value::Null, Value::Null][..])
        );
        assert_eq!(
            batch.rows[0].after.as_deref(),
            Some(&[Value::Int(6), Value::Null, Value::Null][..])
        );
    }

    #[test]
    fn bad_events_are_errors_never_panics() {
        let plan = sample_plan();
        let mut rows = vec![0];
        rows.extend(1i32.to_le_bytes());
        rows.extend(7u64.to_le_bytes());
        rows.extend([3, b'x', b'y', b'z']);
        let body = rows_body(42, true, 3, &[&[0b111]], &rows);
        assert!(decode_rows(&plan, 30, &body).is_ok());
        for cut in 0..body.len() {
            let err = decode_rows(&plan, 30, &body[..cut]);
            assert!(err.is_err() || cut >= 14, "cut {cut}");
        }
        let err = decode_rows(&plan, 30, &body[..body.len() - 1]).unwrap_err();
        assert!(
            matches!(err, DecodeError::Column { column: 2, .. }),
            "{err:?}"
        );
        assert_eq!(err.to_dm().causes.len(), 1);
        let other = rows_body(43, true, 3, &[&[0b111]], &rows);
        assert!(matches!(
            decode_rows(&plan, 30, &other),
            Err(DecodeError::TableIdMismatch {
                event: 43,
                plan: 42
            })
        ));
        let fewer = rows_body(42, true, 2, &[&[0b11]], &rows);
        assert!(matches!(
            decode_rows(&plan, 30, &fewer),
            Err(DecodeError::RowColumnCountMismatch { event: 2, .. })
        ));
        assert!(matches!(
            decode_rows(&plan, 166, &body),
            Err(DecodeError::Unsupported { .. })
        ));
        assert!(matches!(
            decode_rows(&plan, 19, &body),
            Err(DecodeError::NotRowsEvent { event_type: 19 })
        ));
        assert_eq!(rows_table_id(&body).unwrap(), 42);
    }

    // ---- throughput (run: cargo test --release --lib decode -- --ignored --nocapture) ----

    /// sysbench's `sbtest`: id INT, k INT, c CHAR(120), pad CHAR(60), all latin1/utf8 text.
    fn sysbench_event(rows: usize) -> (Vec<u8>, Vec<u8>, Vec<ColumnInfo>) {
        let tm = table_map(
            9,
            &[
                (wire::LONG, &[]),
                (wire::LONG, &[]),
                (wire::STRING, &[0xfe, 120]),
                (wire::STRING, &[0xfe, 60]),
            ],
        );
        let c = "68487932199-96439406143-93774651418-41631865787-96406072701-20604855487-25459966574-28203206787-41238978918-19503783441";
        let pad = "22195207048-70116052123-74140395089-76317954521-98694025897";
        let mut data = Vec::with_capacity(rows * 200);
        for i in 0..rows {
            data.push(0);
            data.extend((i as i32).to_le_bytes());
            data.extend((i as i32 * 7).to_le_bytes());
            data.push(c.len() as u8);
            data.extend(c.as_bytes());
            data.push(pad.len() as u8);
            data.extend(pad.as_bytes());
        }
        let body = rows_body(9, false, 4, &[&[0b1111]], &data);
        let cols = vec![
            ColumnInfo::new("id", SqlType::Int),
            ColumnInfo::new("k", SqlType::Int),
            ColumnInfo::new("c", SqlType::Char),
            ColumnInfo::new("pad", SqlType::Char),
        ];
        (tm, body, cols)
    }

    #[test]
    #[ignore = "throughput measurement; run in release with --ignored --nocapture"]
    fn throughput_sysbench_rows() {
        use mysql_async::binlog::BinlogVersion;
        use mysql_async::binlog::events::{FormatDescriptionEvent, WriteRowsEventV1};
        use mysql_common::binlog::BinlogCtx;
        use mysql_common::io::ParseBuf;
        use mysql_common::proto::MyDeserialize;
        use std::time::Instant;

        const ROWS: usize = 100_000;
        const ROUNDS: usize = 10;
        let (tm, body, cols) = sysbench_event(ROWS);
        let plan = DecodePlan::from_table_map_body(&tm, &cols).unwrap();
        let mut total = 0;
        let start = Instant::now();
        for _ in 0..ROUNDS {
            let batch = decode_rows(&plan, 23, &body).unwrap();
            total += batch.rows.len();
            std::hint::black_box(batch);
        }
        let ours = total as f64 / start.elapsed().as_secs_f64();
        assert_eq!(total, ROWS * ROUNDS);

        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let tme =
            TableMapEvent::deserialize(BinlogCtx::new(19 + tm.len(), &fde, 19), &mut ParseBuf(&tm))
                .unwrap();
        let mut total = 0;
        let start = Instant::now();
        for _ in 0..ROUNDS {
            let ev = WriteRowsEventV1::deserialize(
                BinlogCtx::new(19 + body.len(), &fde, 23),
                &mut ParseBuf(&body),
            )
            .unwrap();
            for row in ev.rows(&tme) {
                std::hint::black_box(row.unwrap());
                total += 1;
            }
        }
        let theirs = total as f64 / start.elapsed().as_secs_f64();
        assert_eq!(total, ROWS * ROUNDS);
        println!(
            "sysbench rows: DecodePlan {:.0} rows/s, mysql_common BinlogRow {:.0} rows/s ({:.1}x)",
            ours,
            theirs,
            ours / theirs
        );
    }
}
