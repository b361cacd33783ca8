//! SQL syntax helpers that know nothing of configs, servers or binlogs: quoting identifiers
//! and strings, and checking that an expression parses. The bottom of the crate's SQL
//! layering, so that both the configs (which validate expressions and render session
//! settings) and [`crate::sql`] (which builds statements on top of the configs) use them.

use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// Parses one SQL expression (as written in an `expression-filter`), rejecting trailing text.
pub fn parse_expression(text: &str) -> Result<sqlparser::ast::Expr, String> {
    let dialect = MySqlDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| e.to_string())?;
    let expr = parser.parse_expr().map_err(|e| e.to_string())?;
    match parser.peek_token().token {
        Token::EOF => Ok(expr),
        t => Err(format!("unexpected `{t}` after the expression")),
    }
}

/// Quotes an identifier with backticks, doubling embedded backticks.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A single-quoted SQL string literal with MySQL's backslash escapes (see [`push_quoted`]).
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(&mut out, s);
    out
}

/// A single-quoted string with MySQL's backslash escapes for `\`, `'`, `"`, NUL, `\n`, `\r`
/// and Ctrl-Z (the set `mysql_real_escape_string` uses).
pub fn push_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('\'');
    // The escaped characters are ASCII, which never occurs inside a multi-byte UTF-8
    // sequence: scan bytes and copy the runs between them whole.
    let bytes = s.as_bytes();
    let mut clean = 0;
    let mut i = 0;
    while i < bytes.len() {
        let Some(k) = next_escape(&bytes[i..]) else {
            break;
        };
        i += k;
        let esc = match bytes[i] {
            b'\\' => "\\\\",
            b'\'' => "\\'",
            b'"' => "\\\"",
            0 => "\\0",
            b'\n' => "\\n",
            b'\r' => "\\r",
            _ => "\\Z",
        };
        out.push_str(&s[clean..i]);
        out.push_str(esc);
        i += 1;
        clean = i;
    }
    out.push_str(&s[clean..]);
    out.push('\'');
}

/// The offset of the first byte [`push_quoted`] escapes (`\`, `'`, `"`, NUL, `\n`, `\r`,
/// Ctrl-Z), found with vectorised searches that each stop at the previous one's hit.
fn next_escape(b: &[u8]) -> Option<usize> {
    let a = memchr::memchr3(b'\\', b'\'', b'"', b).unwrap_or(b.len());
    let c = memchr::memchr3(0, b'\n', b'\r', &b[..a]).unwrap_or(a);
    let d = memchr::memchr(0x1a, &b[..c]).unwrap_or(c);
    (d < b.len()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions() {
        assert!(parse_expression("a > 1 AND b IS NULL").is_ok());
        assert!(parse_expression("c = = 1").is_err());
        assert!(parse_expression("a = 1 b").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_string("it's\\\n\0"), "'it\\'s\\\\\\n\\0'");
    }
}
