//! SQL text: parsing with a real SQL parser (sqlparser's MySQL dialect), quoting, and the
//! statements dm-rs generates. No actix here.

pub mod checkpoint;
pub mod ddl;
pub mod dml;
pub mod expr;
pub mod filter;
pub mod route;
pub mod schema_tracker;

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

/// A single-quoted SQL string literal with MySQL's backslash escapes (see
/// [`crate::binlog::value::push_quoted`]).
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    crate::binlog::value::push_quoted(&mut out, s);
    out
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
