//! MySQL's binary JSON (column type 245 in MySQL's binlog) rendered as JSON text.
//!
//! Format (MySQL `json_binary.h`), all integers little-endian:
//!
//! ```text
//! doc     ::= type value
//! type    ::= 0x00 small object | 0x01 large object | 0x02 small array | 0x03 large array
//!           | 0x04 literal | 0x05 int16 | 0x06 uint16 | 0x07 int32 | 0x08 uint32
//!           | 0x09 int64 | 0x0a uint64 | 0x0b double | 0x0c string | 0x0f opaque
//! object  ::= count size key-entry* value-entry* key* value*
//! array   ::= count size value-entry* value*
//! count, size, key-offset, value-offset ::= u16 (small) | u32 (large)
//! key-entry   ::= key-offset key-length(u16)
//! value-entry ::= type (offset | inlined value)
//! string  ::= varlen utf8mb4      opaque ::= mysql-type(u8) varlen bytes
//! varlen  ::= 7 bits per byte, least significant first, high bit = more bytes
//! ```
//!
//! Offsets count from the first byte of the enclosing object or array (its `count`).
//! Literals and 16-bit integers are inlined in a value entry; in the large format 32-bit
//! integers are too. An empty document is the JSON `null`.
//!
//! The text follows MySQL's own output: `{"k": v, "k2": v2}`, `[a, b]`, doubles in shortest
//! round-trip form with `.0` kept on integral values, DECIMAL opaques as bare numbers,
//! temporal opaques as quoted strings with six fraction digits, other opaques as
//! `"base64:typeN:…"`.

use std::fmt::Write as _;

use base64::Engine as _;

use super::codec::DecodeError;
use crate::binlog::value::{decode_decimal, unpack_datetime_packed, unpack_time_packed};

const SMALL_OBJECT: u8 = 0x00;
const LARGE_OBJECT: u8 = 0x01;
const SMALL_ARRAY: u8 = 0x02;
const LARGE_ARRAY: u8 = 0x03;
const LITERAL: u8 = 0x04;
const INT16: u8 = 0x05;
const UINT16: u8 = 0x06;
const INT32: u8 = 0x07;
const UINT32: u8 = 0x08;
const INT64: u8 = 0x09;
const UINT64: u8 = 0x0a;
const DOUBLE: u8 = 0x0b;
const STRING: u8 = 0x0c;
const OPAQUE: u8 = 0x0f;

/// Deepest nesting accepted (MySQL itself stops at 100).
const MAX_DEPTH: usize = 200;

/// Renders a binary JSON document as text.
pub fn json_binary_to_text(doc: &[u8]) -> Result<String, DecodeError> {
    let mut out = String::with_capacity(doc.len() + doc.len() / 2 + 4);
    let Some((&ty, value)) = doc.split_first() else {
        out.push_str("null");
        return Ok(out);
    };
    write_value(ty, value, 0, &mut out)?;
    Ok(out)
}

fn bad(what: &str) -> DecodeError {
    DecodeError::Invalid {
        what: format!("binary JSON: {what}"),
    }
}

fn slice(buf: &[u8], at: usize, len: usize) -> Result<&[u8], DecodeError> {
    at.checked_add(len)
        .and_then(|end| buf.get(at..end))
        .ok_or_else(|| bad("offset out of range"))
}

fn read_uint(buf: &[u8], at: usize, large: bool) -> Result<usize, DecodeError> {
    if large {
        let b = slice(buf, at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    } else {
        let b = slice(buf, at, 2)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }
}

/// A variable-length length at the start of `buf`: (length, bytes used).
fn read_varlen(buf: &[u8]) -> Result<(usize, usize), DecodeError> {
    let mut len = 0usize;
    for (i, &b) in buf.iter().enumerate().take(5) {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((len, i + 1));
        }
    }
    Err(bad("bad variable-length length"))
}

/// Writes the value of type `ty` whose bytes start at `buf[0]`.
fn write_value(ty: u8, buf: &[u8], depth: usize, out: &mut String) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(bad("nested too deeply"));
    }
    match ty {
        SMALL_OBJECT | LARGE_OBJECT => write_container(buf, ty == LARGE_OBJECT, true, depth, out),
        SMALL_ARRAY | LARGE_ARRAY => write_container(buf, ty == LARGE_ARRAY, false, depth, out),
        LITERAL => write_literal(*buf.first().ok_or_else(|| bad("truncated literal"))?, out),
        INT16 => {
            let b = slice(buf, 0, 2)?;
            write_num(out, i16::from_le_bytes([b[0], b[1]]));
            Ok(())
        }
        UINT16 => {
            let b = slice(buf, 0, 2)?;
            write_num(out, u16::from_le_bytes([b[0], b[1]]));
            Ok(())
        }
        INT32 => {
            let b = slice(buf, 0, 4)?;
            write_num(out, i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            Ok(())
        }
        UINT32 => {
            let b = slice(buf, 0, 4)?;
            write_num(out, u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            Ok(())
        }
        INT64 => {
            let b: [u8; 8] = slice(buf, 0, 8)?.try_into().expect("8 bytes");
            write_num(out, i64::from_le_bytes(b));
            Ok(())
        }
        UINT64 => {
            let b: [u8; 8] = slice(buf, 0, 8)?.try_into().expect("8 bytes");
            write_num(out, u64::from_le_bytes(b));
            Ok(())
        }
        DOUBLE => {
            let b: [u8; 8] = slice(buf, 0, 8)?.try_into().expect("8 bytes");
            write_double(out, f64::from_le_bytes(b));
            Ok(())
        }
        STRING => {
            let (len, used) = read_varlen(buf)?;
            let s = std::str::from_utf8(slice(buf, used, len)?)
                .map_err(|_| bad("string is not UTF-8"))?;
            write_json_string(out, s);
            Ok(())
        }
        OPAQUE => {
            let (&field_type, rest) = buf.split_first().ok_or_else(|| bad("truncated opaque"))?;
            let (len, used) = read_varlen(rest)?;
            write_opaque(field_type, slice(rest, used, len)?, out)
        }
        other => Err(bad(&format!("unknown value type {other:#04x}"))),
    }
}

fn write_literal(lit: u8, out: &mut String) -> Result<(), DecodeError> {
    out.push_str(match lit {
        0 => "null",
        1 => "true",
        2 => "false",
        _ => return Err(bad("unknown literal")),
    });
    Ok(())
}

/// Whether a value of type `ty` sits inside its value entry.
fn is_inlined(ty: u8, large: bool) -> bool {
    match ty {
        LITERAL | INT16 | UINT16 => true,
        INT32 | UINT32 => large,
        _ => false,
    }
}

fn write_container(
    buf: &[u8],
    large: bool,
    object: bool,
    depth: usize,
    out: &mut String,
) -> Result<(), DecodeError> {
    let word = if large { 4 } else { 2 };
    let count = read_uint(buf, 0, large)?;
    let size = read_uint(buf, word, large)?;
    let buf = buf
        .get(..size)
        .ok_or_else(|| bad("container larger than its data"))?;
    let key_entries = 2 * word;
    let value_entries = key_entries + if object { count * (word + 2) } else { 0 };
    if value_entries + count * (1 + word) > size {
        return Err(bad("container header larger than the container"));
    }
    out.push(if object { '{' } else { '[' });
    for i in 0..count {
        if i > 0 {
            out.push_str(", ");
        }
        if object {
            let entry = key_entries + i * (word + 2);
            let key_offset = read_uint(buf, entry, large)?;
            let key_len = read_uint(buf, entry + word, false)?;
            let key = std::str::from_utf8(slice(buf, key_offset, key_len)?)
                .map_err(|_| bad("key is not UTF-8"))?;
            write_json_string(out, key);
            out.push_str(": ");
        }
        let entry = value_entries + i * (1 + word);
        let ty = buf[entry];
        if is_inlined(ty, large) {
            write_value(ty, &buf[entry + 1..entry + 1 + word], depth + 1, out)?;
        } else {
            let offset = read_uint(buf, entry + 1, large)?;
            let value = buf
                .get(offset..)
                .ok_or_else(|| bad("value offset out of range"))?;
            write_value(ty, value, depth + 1, out)?;
        }
    }
    out.push(if object { '}' } else { ']' });
    Ok(())
}

fn write_num(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

fn write_double(out: &mut String, v: f64) {
    // `{:?}` is the shortest round-trip form and keeps `.0` on integral values, as MySQL does.
    let _ = write!(out, "{v:?}");
}

/// A JSON string literal with `"`, `\` and control characters escaped.
pub fn write_json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// MySQL field types that appear as opaque JSON values with a known rendering.
const MYSQL_TYPE_TIMESTAMP: u8 = 7;
const MYSQL_TYPE_DATE: u8 = 10;
const MYSQL_TYPE_TIME: u8 = 11;
const MYSQL_TYPE_DATETIME: u8 = 12;
const MYSQL_TYPE_NEWDECIMAL: u8 = 246;

fn write_opaque(field_type: u8, data: &[u8], out: &mut String) -> Result<(), DecodeError> {
    match field_type {
        MYSQL_TYPE_NEWDECIMAL => {
            let [precision, scale, bin @ ..] = data else {
                return Err(bad("truncated decimal"));
            };
            out.push_str(&decode_decimal(bin, *precision, *scale)?);
            Ok(())
        }
        MYSQL_TYPE_DATE | MYSQL_TYPE_TIME | MYSQL_TYPE_DATETIME | MYSQL_TYPE_TIMESTAMP => {
            let bytes: [u8; 8] = data
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("truncated temporal value"))?;
            let packed = i64::from_le_bytes(bytes);
            out.push('"');
            if field_type == MYSQL_TYPE_TIME {
                let (negative, hours, minutes, seconds, micros) = unpack_time_packed(packed);
                let sign = if negative { "-" } else { "" };
                let _ = write!(
                    out,
                    "{sign}{hours:02}:{minutes:02}:{seconds:02}.{micros:06}"
                );
            } else {
                let (year, month, day, hour, minute, second, micros) =
                    unpack_datetime_packed(packed);
                let _ = write!(out, "{year:04}-{month:02}-{day:02}");
                if field_type != MYSQL_TYPE_DATE {
                    let _ = write!(out, " {hour:02}:{minute:02}:{second:02}.{micros:06}");
                }
            }
            out.push('"');
            Ok(())
        }
        _ => {
            let _ = write!(out, "\"base64:type{field_type}:");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(data));
            out.push('"');
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small object `{"a": 1, "bb": [true, "x", 2.5]}`, laid out by hand from the spec.
    fn sample_object() -> Vec<u8> {
        // Array [true, "x", 2.5]: count 3, size, 3 value entries of 3 bytes, then "x", 2.5.
        let mut array = vec![3, 0, 0, 0];
        array.extend([LITERAL, 1, 0]); // inlined true
        array.extend([STRING, 13, 0]); // "x" at 4 + 9 = 13
        array.extend([DOUBLE, 15, 0]); // 2.5 at 15
        array.extend([1, b'x']);
        array.extend(2.5f64.to_le_bytes());
        let size = array.len() as u16;
        array[2..4].copy_from_slice(&size.to_le_bytes());

        // Object: count 2, size, key entries (2 × 4), value entries (2 × 3), keys "a" "bb",
        // then the array.
        let header = 4 + 2 * 4 + 2 * 3;
        let keys_at = header as u16;
        let array_at = keys_at + 3;
        let mut obj = vec![2, 0, 0, 0];
        obj.extend(keys_at.to_le_bytes());
        obj.extend(1u16.to_le_bytes());
        obj.extend((keys_at + 1).to_le_bytes());
        obj.extend(2u16.to_le_bytes());
        obj.extend([INT16, 1, 0]); // inlined 1
        obj.push(SMALL_ARRAY);
        obj.extend(array_at.to_le_bytes());
        obj.extend(b"abb");
        obj.extend(&array);
        let size = obj.len() as u16;
        obj[2..4].copy_from_slice(&size.to_le_bytes());
        let mut doc = vec![SMALL_OBJECT];
        doc.extend(obj);
        doc
    }

    #[test]
    fn small_object_with_nested_array() {
        assert_eq!(
            json_binary_to_text(&sample_object()).unwrap(),
            r#"{"a": 1, "bb": [true, "x", 2.5]}"#
        );
    }

    #[test]
    fn large_array_inlines_int32() {
        // [-7, 4294967295] in the large format: count 2, size, entries of 5 bytes.
        let mut arr = vec![];
        arr.extend(2u32.to_le_bytes());
        arr.extend(0u32.to_le_bytes());
        arr.push(INT32);
        arr.extend((-7i32).to_le_bytes());
        arr.push(UINT32);
        arr.extend(u32::MAX.to_le_bytes());
        let size = arr.len() as u32;
        arr[4..8].copy_from_slice(&size.to_le_bytes());
        let mut doc = vec![LARGE_ARRAY];
        doc.extend(arr);
        assert_eq!(json_binary_to_text(&doc).unwrap(), "[-7, 4294967295]");
    }

    #[test]
    fn scalars_strings_and_opaques() {
        assert_eq!(json_binary_to_text(&[]).unwrap(), "null");
        assert_eq!(json_binary_to_text(&[LITERAL, 2]).unwrap(), "false");
        let mut doc = vec![INT64];
        doc.extend(i64::MIN.to_le_bytes());
        assert_eq!(json_binary_to_text(&doc).unwrap(), i64::MIN.to_string());
        let mut doc = vec![DOUBLE];
        doc.extend(3.0f64.to_le_bytes());
        assert_eq!(json_binary_to_text(&doc).unwrap(), "3.0");
        // A 128-byte string needs a two-byte length: 128 → [0x80, 0x01].
        let text = format!("\"q\\\n{}", "é".repeat(62));
        assert_eq!(text.len(), 128);
        let mut doc = vec![STRING];
        let len = text.len();
        doc.extend([(len as u8 & 0x7f) | 0x80, (len >> 7) as u8]);
        doc.extend(text.as_bytes());
        let rendered = json_binary_to_text(&doc).unwrap();
        assert_eq!(
            serde_json::from_str::<String>(&rendered).unwrap(),
            text,
            "{rendered}"
        );
        // DECIMAL(5,2) -1.50 as an opaque: precision, scale, binary decimal.
        let mut doc = vec![OPAQUE, MYSQL_TYPE_NEWDECIMAL, 5, 5, 2];
        doc.extend([!0x80u8, !1, !50]);
        assert_eq!(json_binary_to_text(&doc).unwrap(), "-1.50");
        // DATETIME 2024-02-29 12:34:56.000007 packed: ((ymd << 17 | hms) << 24) + micros.
        let ym = 2024 * 13 + 2;
        let ymd = (ym << 5) | 29;
        let hms = (12 << 12) | (34 << 6) | 56;
        let packed: i64 = (((ymd << 17) | hms) << 24) + 7;
        let mut doc = vec![OPAQUE, MYSQL_TYPE_DATETIME, 8];
        doc.extend(packed.to_le_bytes());
        assert_eq!(
            json_binary_to_text(&doc).unwrap(),
            r#""2024-02-29 12:34:56.000007""#
        );
        let mut doc = vec![OPAQUE, 15, 2];
        doc.extend([0xff, 0x00]);
        assert_eq!(
            json_binary_to_text(&doc).unwrap(),
            r#""base64:type15:/wA=""#
        );
    }

    /// `doc` is rejected, with a message naming `why`.
    #[track_caller]
    fn assert_corrupt(doc: &[u8], why: &str) {
        let shown = format!("{:02x?} ({} bytes)", &doc[..doc.len().min(24)], doc.len());
        match json_binary_to_text(doc) {
            Err(DecodeError::Invalid { what }) => {
                assert!(what.contains(why), "{shown}: `{what}`, expected `{why}`")
            }
            Err(e) => panic!("{shown}: {e:?}, expected an invalid-document error ({why})"),
            Ok(text) => panic!("{shown} decoded as `{text:.80}`, expected an error ({why})"),
        }
    }

    #[test]
    fn corrupt_documents_are_errors_not_panics() {
        let doc = sample_object();
        // The whole document and the empty one are valid; every proper prefix is cut short.
        assert_eq!(
            json_binary_to_text(&doc).unwrap(),
            r#"{"a": 1, "bb": [true, "x", 2.5]}"#
        );
        assert_eq!(json_binary_to_text(&doc[..0]).unwrap(), "null");
        for cut in 1..doc.len() {
            assert!(
                json_binary_to_text(&doc[..cut]).is_err(),
                "prefix of {cut} of {} bytes: {:?}",
                doc.len(),
                json_binary_to_text(&doc[..cut])
            );
        }
        // The object's size field, one byte bigger than its data.
        let mut big = doc.clone();
        big[3] += 1;
        assert_corrupt(&big, "container larger than its data");
        // Size 4 (just count and size) for 2 entries.
        let mut small = doc.clone();
        small[3..5].copy_from_slice(&4u16.to_le_bytes());
        assert_corrupt(&small, "container header larger than the container");
        // A key offset and a value offset past the object's end.
        let mut key = doc.clone();
        key[5..7].copy_from_slice(&0xf0u16.to_le_bytes());
        assert_corrupt(&key, "offset out of range");
        let mut value = doc.clone();
        value[17..19].copy_from_slice(&0xf0u16.to_le_bytes());
        assert_corrupt(&value, "value offset out of range");
        // A key that is not UTF-8, an unknown type in a value entry.
        let mut key_bytes = doc.clone();
        key_bytes[19] = 0xff;
        assert_corrupt(&key_bytes, "key is not UTF-8");
        let mut entry_type = doc.clone();
        entry_type[13] = 0x0e;
        assert_corrupt(&entry_type, "unknown value type 0x0e");

        assert_corrupt(&[0x42], "unknown value type 0x42");
        assert_corrupt(&[SMALL_ARRAY, 5, 0, 4, 0], "container header larger");
        assert_corrupt(
            &[LARGE_ARRAY, 1, 0, 0, 0, 8, 0, 0, 0],
            "container header larger",
        );
        assert_corrupt(&[LITERAL], "truncated literal");
        assert_corrupt(&[LITERAL, 3], "unknown literal");
        assert_corrupt(&[INT16, 1], "offset out of range");
        assert_corrupt(&[UINT32, 1, 2, 3], "offset out of range");
        assert_corrupt(&[INT64, 1, 2, 3, 4, 5, 6, 7], "offset out of range");
        assert_corrupt(&[DOUBLE, 0, 0, 0, 0], "offset out of range");
        assert_corrupt(&[STRING, 3, b'a', b'b'], "offset out of range");
        assert_corrupt(&[STRING, 0x80, 0x80, 0x80, 0x80, 0x80], "variable-length");
        assert_corrupt(&[STRING, 2, 0xc3, 0x28], "string is not UTF-8");
        assert_corrupt(&[OPAQUE], "truncated opaque");
        assert_corrupt(&[OPAQUE, MYSQL_TYPE_NEWDECIMAL, 1, 5], "truncated decimal");
        assert_corrupt(
            &[OPAQUE, MYSQL_TYPE_DATETIME, 4, 1, 2, 3, 4],
            "truncated temporal",
        );
        assert_corrupt(&[OPAQUE, 15, 5, 1, 2], "offset out of range");
        // `[[…[]…]]` with `levels` arrays around the innermost `[]`: each level is count 1,
        // its size, one entry pointing at the next level right after it.
        let nested = |levels: usize| {
            let mut inner = vec![0, 0, 4, 0];
            for _ in 0..levels {
                let size = (7 + inner.len()) as u16;
                let mut level = vec![1, 0];
                level.extend(size.to_le_bytes());
                level.extend([SMALL_ARRAY, 7, 0]);
                level.extend(inner);
                inner = level;
            }
            let mut doc = vec![SMALL_ARRAY];
            doc.extend(inner);
            doc
        };
        assert_eq!(json_binary_to_text(&nested(2)).unwrap(), "[[[]]]");
        let deepest = json_binary_to_text(&nested(MAX_DEPTH)).unwrap();
        assert_eq!(
            deepest,
            format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1))
        );
        assert_corrupt(&nested(MAX_DEPTH + 1), "nested too deeply");
    }
}
