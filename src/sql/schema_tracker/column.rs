//! Column types: sqlparser's `DataType` to MySQL's `DATA_TYPE`/`COLUMN_TYPE` strings, and
//! ENUM/SET members out of a `COLUMN_TYPE`.
//!
//! `COLUMN_TYPE` is rendered as MariaDB's `information_schema` shows it: integer display widths
//! filled in (`int(11)`, `int(10) unsigned`, `tinyint(1)` for BOOL), `decimal(10,0)` for a bare
//! DECIMAL, `year(4)`, fractional seconds only when non-zero. MySQL 8 omits integer widths and
//! writes `year`; compare `data_type` + `unsigned` + `members` when the server may be either.
//! Two things are not tracked: ZEROFILL (it only implies UNSIGNED here) and the TEXT/BLOB type
//! promotions a server makes on `CONVERT TO CHARACTER SET`.

use sqlparser::ast::{self, CharacterLength, ColumnOption, DataType, ExactNumberInfo};

use super::ColumnDef;
use crate::sql::ddl::quote_str;

/// A mapped type.
struct TypeInfo {
    data_type: String,
    column_type: String,
    unsigned: bool,
    members: Vec<String>,
    /// Has a character set (CHAR/VARCHAR/TEXT/ENUM/SET).
    textual: bool,
    /// A character set the type implies (NCHAR: utf8mb3).
    implied_charset: Option<&'static str>,
    /// SERIAL: NOT NULL.
    not_null: bool,
}

impl TypeInfo {
    fn plain(data_type: &str, column_type: String) -> Self {
        Self {
            data_type: data_type.to_string(),
            column_type,
            unsigned: false,
            members: Vec::new(),
            textual: false,
            implied_charset: None,
            not_null: false,
        }
    }

    fn same(data_type: &str) -> Self {
        Self::plain(data_type, data_type.to_string())
    }

    fn text(data_type: &str, column_type: String) -> Self {
        Self {
            textual: true,
            ..Self::plain(data_type, column_type)
        }
    }

    fn unsigned(mut self, unsigned: bool) -> Self {
        if unsigned {
            self.unsigned = true;
            self.column_type.push_str(" unsigned");
        }
        self
    }
}

/// The longest character of `charset`, in bytes (for TEXT(M) sizing); 4 when unknown.
fn mbmaxlen(charset: &str) -> u64 {
    match charset {
        "latin1" | "latin2" | "latin5" | "latin7" | "ascii" | "binary" | "cp1250" | "cp1251"
        | "cp1256" | "cp1257" | "cp850" | "cp852" | "cp866" | "dec8" | "greek" | "hebrew"
        | "hp8" | "keybcs2" | "koi8r" | "koi8u" | "macce" | "macroman" | "swe7" | "tis620"
        | "armscii8" | "geostd8" => 1,
        "big5" | "cp932" | "gb2312" | "gbk" | "sjis" | "ucs2" | "euckr" => 2,
        "utf8" | "utf8mb3" | "ujis" | "eucjpms" => 3,
        _ => 4,
    }
}

fn int_type(name: &str, width: Option<u64>, unsigned: bool) -> TypeInfo {
    let default = match (name, unsigned) {
        ("tinyint", false) => 4,
        ("tinyint", true) => 3,
        ("smallint", false) => 6,
        ("smallint", true) => 5,
        ("mediumint", false) => 9,
        ("mediumint", true) => 8,
        ("int", false) => 11,
        ("int", true) => 10,
        _ => 20,
    };
    let w = width.unwrap_or(default);
    TypeInfo::plain(name, format!("{name}({w})")).unsigned(unsigned)
}

fn decimal(info: &ExactNumberInfo, unsigned: bool) -> TypeInfo {
    let (p, s) = match *info {
        ExactNumberInfo::None => (10, 0),
        ExactNumberInfo::Precision(p) => (p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (p, s),
    };
    TypeInfo::plain("decimal", format!("decimal({p},{s})")).unsigned(unsigned)
}

fn float(info: &ExactNumberInfo, unsigned: bool, double: bool) -> TypeInfo {
    let name = match *info {
        ExactNumberInfo::Precision(p) if p > 24 => "double",
        _ if double => "double",
        _ => "float",
    };
    let column_type = match *info {
        ExactNumberInfo::PrecisionAndScale(p, s) => format!("{name}({p},{s})"),
        _ => name.to_string(),
    };
    TypeInfo::plain(name, column_type).unsigned(unsigned)
}

fn char_len(len: &Option<CharacterLength>) -> Option<u64> {
    match len {
        Some(CharacterLength::IntegerLength { length, .. }) => Some(*length),
        _ => None,
    }
}

fn sized_text(bytes: u64, blob: bool) -> TypeInfo {
    let prefix = match bytes {
        0..=255 => "tiny",
        256..=65_535 => "",
        65_536..=16_777_215 => "medium",
        _ => "long",
    };
    let name = format!("{prefix}{}", if blob { "blob" } else { "text" });
    if blob {
        TypeInfo::plain(&name, name.clone())
    } else {
        TypeInfo::text(&name, name.clone())
    }
}

fn members_type(name: &str, members: Vec<String>) -> TypeInfo {
    let list: Vec<String> = members.iter().map(|m| quote_str(m)).collect();
    TypeInfo {
        members,
        ..TypeInfo::text(name, format!("{name}({})", list.join(",")))
    }
}

fn with_fsp(name: &str, fsp: Option<u64>) -> TypeInfo {
    match fsp {
        Some(p) if p > 0 => TypeInfo::plain(name, format!("{name}({p})")),
        _ => TypeInfo::same(name),
    }
}

/// Maps a data type; `charset` sizes TEXT(M).
fn map_type(dt: &DataType, charset: &str) -> TypeInfo {
    use DataType as D;
    match dt {
        D::TinyInt(w) => int_type("tinyint", *w, false),
        D::TinyIntUnsigned(w) => int_type("tinyint", *w, true),
        D::UTinyInt => int_type("tinyint", None, true),
        D::Int2(w) | D::SmallInt(w) => int_type("smallint", *w, false),
        D::Int2Unsigned(w) | D::SmallIntUnsigned(w) => int_type("smallint", *w, true),
        D::USmallInt => int_type("smallint", None, true),
        D::MediumInt(w) => int_type("mediumint", *w, false),
        D::MediumIntUnsigned(w) => int_type("mediumint", *w, true),
        D::Int(w) | D::Int4(w) | D::Integer(w) => int_type("int", *w, false),
        D::IntUnsigned(w) | D::Int4Unsigned(w) | D::IntegerUnsigned(w) => int_type("int", *w, true),
        D::Int8(w) | D::BigInt(w) => int_type("bigint", *w, false),
        D::BigIntUnsigned(w) | D::Int8Unsigned(w) => int_type("bigint", *w, true),
        D::UBigInt => int_type("bigint", None, true),
        D::Bool | D::Boolean => int_type("tinyint", Some(1), false),
        D::Decimal(i) | D::Numeric(i) | D::Dec(i) => decimal(i, false),
        D::DecimalUnsigned(i) | D::DecUnsigned(i) => decimal(i, true),
        D::Float(i) => float(i, false, false),
        D::FloatUnsigned(i) => float(i, true, false),
        D::Float4 => float(&ExactNumberInfo::None, false, false),
        D::Double(i) => float(i, false, true),
        D::DoubleUnsigned(i) => float(i, true, true),
        D::Float8 | D::Float64 | D::DoublePrecision | D::Real => {
            float(&ExactNumberInfo::None, false, true)
        }
        D::DoublePrecisionUnsigned | D::RealUnsigned => float(&ExactNumberInfo::None, true, true),
        D::Bit(n) => TypeInfo::plain("bit", format!("bit({})", n.unwrap_or(1))),
        D::Char(l) | D::Character(l) => {
            TypeInfo::text("char", format!("char({})", char_len(l).unwrap_or(1)))
        }
        D::Varchar(l) | D::CharacterVarying(l) | D::CharVarying(l) => match char_len(l) {
            Some(n) => TypeInfo::text("varchar", format!("varchar({n})")),
            None => TypeInfo::text("varchar", "varchar".to_string()),
        },
        D::Nvarchar(l) => TypeInfo {
            implied_charset: Some("utf8mb3"),
            ..TypeInfo::text("varchar", format!("varchar({})", char_len(l).unwrap_or(1)))
        },
        D::Binary(n) => TypeInfo::plain("binary", format!("binary({})", n.unwrap_or(1))),
        D::Varbinary(l) => match l {
            Some(ast::BinaryLength::IntegerLength { length }) => {
                TypeInfo::plain("varbinary", format!("varbinary({length})"))
            }
            _ => TypeInfo::same("varbinary"),
        },
        D::TinyText => TypeInfo::text("tinytext", "tinytext".into()),
        D::Text => TypeInfo::text("text", "text".into()),
        D::MediumText => TypeInfo::text("mediumtext", "mediumtext".into()),
        D::LongText => TypeInfo::text("longtext", "longtext".into()),
        D::Blob(None) => TypeInfo::same("blob"),
        D::Blob(Some(n)) => sized_text(*n, true),
        D::TinyBlob => TypeInfo::same("tinyblob"),
        D::MediumBlob => TypeInfo::same("mediumblob"),
        D::LongBlob => TypeInfo::same("longblob"),
        D::Enum(members, _) => members_type(
            "enum",
            members
                .iter()
                .map(|m| match m {
                    ast::EnumMember::Name(s) | ast::EnumMember::NamedValue(s, _) => s.clone(),
                })
                .collect(),
        ),
        D::Set(members) => members_type("set", members.clone()),
        D::Date => TypeInfo::same("date"),
        D::Datetime(p) => with_fsp("datetime", *p),
        D::Timestamp(p, _) => with_fsp("timestamp", *p),
        D::Time(p, _) => with_fsp("time", *p),
        D::JSON => TypeInfo::same("json"),
        D::Uuid => TypeInfo::same("uuid"),
        D::Custom(name, args) => custom_type(&name.to_string(), args, charset),
        other => {
            let text = other.to_string().to_ascii_lowercase();
            let base = text.split('(').next().unwrap_or(&text).trim().to_string();
            TypeInfo::plain(&base, text)
        }
    }
}

/// Types sqlparser leaves as `Custom(name, args)`.
fn custom_type(name: &str, args: &[String], charset: &str) -> TypeInfo {
    let lower = name.trim_matches('`').to_ascii_lowercase();
    let n = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    match lower.as_str() {
        "int1" => int_type("tinyint", n(0), false),
        "int3" | "middleint" => int_type("mediumint", n(0), false),
        "fixed" => decimal(
            &match (n(0), args.get(1).and_then(|a| a.parse::<i64>().ok())) {
                (Some(p), Some(s)) => ExactNumberInfo::PrecisionAndScale(p, s),
                (Some(p), None) => ExactNumberInfo::Precision(p),
                _ => ExactNumberInfo::None,
            },
            false,
        ),
        "year" => TypeInfo::plain("year", format!("year({})", n(0).unwrap_or(4))),
        "text" => match n(0) {
            Some(m) => sized_text(m.saturating_mul(mbmaxlen(charset)), false),
            None => TypeInfo::text("text", "text".into()),
        },
        "long" => TypeInfo::text("mediumtext", "mediumtext".into()),
        "nchar" => TypeInfo {
            implied_charset: Some("utf8mb3"),
            ..TypeInfo::text("char", format!("char({})", n(0).unwrap_or(1)))
        },
        "serial" => TypeInfo {
            not_null: true,
            ..int_type("bigint", None, true)
        },
        "geomcollection" => TypeInfo::same("geometrycollection"),
        _ if args.is_empty() => TypeInfo::same(&lower),
        _ => TypeInfo::plain(&lower, format!("{lower}({})", args.join(","))),
    }
}

fn object_name(n: &ast::ObjectName) -> String {
    n.0.iter()
        .filter_map(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

/// The character set a collation belongs to (`utf8mb4_bin` -> `utf8mb4`).
pub(crate) fn collation_charset(collation: &str) -> String {
    collation.split('_').next().unwrap_or(collation).to_string()
}

/// The tracked column for a parsed definition. A textual column without its own character
/// set takes the table's (`table_charset`, `table_collation`; empty/`None` when unknown).
pub(crate) fn column_from_ast(
    def: &ast::ColumnDef,
    table_charset: &str,
    table_collation: Option<&str>,
) -> ColumnDef {
    let mut charset: Option<String> = None;
    let mut collation: Option<String> = None;
    let mut nullable = true;
    let mut generated = false;
    for o in &def.options {
        match &o.option {
            ColumnOption::NotNull | ColumnOption::PrimaryKey(_) => nullable = false,
            ColumnOption::Null => nullable = true,
            ColumnOption::CharacterSet(n) => charset = Some(object_name(n)),
            ColumnOption::Collation(n) => collation = Some(object_name(n)),
            ColumnOption::Generated { .. } => generated = true,
            _ => {}
        }
    }
    let sizing = charset.as_deref().unwrap_or(table_charset);
    let info = map_type(&def.data_type, sizing);
    if info.not_null {
        nullable = false;
    }
    if charset.is_none() {
        charset = collation.as_deref().map(collation_charset);
    }
    if info.textual && charset.is_none() {
        if let Some(cs) = info.implied_charset {
            charset = Some(cs.to_string());
        } else if !table_charset.is_empty() {
            charset = Some(table_charset.to_string());
            if collation.is_none() {
                collation = table_collation
                    .filter(|c| collation_charset(c) == table_charset)
                    .map(str::to_string);
            }
        }
    }
    if !info.textual {
        // Binary and numeric types have no character set (information_schema shows NULL).
        charset = None;
        collation = None;
    }
    ColumnDef {
        name: def.name.value.clone(),
        data_type: info.data_type,
        column_type: info.column_type,
        unsigned: info.unsigned,
        nullable,
        charset,
        collation,
        members: info.members,
        generated,
    }
}

/// The members of an `enum(...)`/`set(...)` `COLUMN_TYPE`: quoted strings with `''` and
/// backslash escapes, separated by commas; commas and parentheses inside members are data.
pub(crate) fn parse_members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut chars = column_type[open + 1..].chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.next() != Some('\'') {
            break;
        }
        let mut m = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    m.push('\'');
                }
                '\'' => break,
                '\\' => match chars.next() {
                    Some('0') => m.push('\0'),
                    Some('n') => m.push('\n'),
                    Some('r') => m.push('\r'),
                    Some('t') => m.push('\t'),
                    Some('Z') => m.push('\u{1a}'),
                    Some(e) => m.push(e),
                    None => m.push('\\'),
                },
                c => m.push(c),
            }
        }
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_with_quotes_commas_and_parentheses() {
        assert_eq!(
            parse_members(r"enum('a','it''s','x,y','(p)','b\\s')"),
            ["a", "it's", "x,y", "(p)", "b\\s"]
        );
        assert_eq!(parse_members("set('')"), [""]);
        assert!(parse_members("int(11)").is_empty());
    }

    #[test]
    fn members_round_trip_through_column_type() {
        let t = members_type("enum", vec!["it's".into(), "a,b".into(), "c)".into()]);
        assert_eq!(t.column_type, "enum('it''s','a,b','c)')");
        assert_eq!(parse_members(&t.column_type), t.members);
    }

    #[test]
    fn text_sizes_follow_the_charset() {
        let t = custom_type("TEXT", &["100".into()], "latin1");
        assert_eq!(t.data_type, "tinytext");
        let t = custom_type("TEXT", &["100".into()], "utf8mb4");
        assert_eq!(t.data_type, "text");
        assert_eq!(sized_text(70_000, true).data_type, "mediumblob");
    }
}
