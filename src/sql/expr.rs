//! Expression filters: a SQL boolean expression over a row's columns, evaluated for every row
//! of the filter's table; rows for which it is TRUE are not replicated.
//!
//! Parsed with sqlparser once per table (when its TABLE_MAP is prepared), column names
//! resolved to row positions then. Evaluation follows MySQL where it matters for filters:
//! three-valued logic (NULL is neither true nor false, so a NULL result keeps the row),
//! numeric comparison when both sides are numbers, otherwise string comparison, `LIKE` with
//! `%`/`_` case-insensitively. Supported: literals, columns, `+ - * / % DIV`, comparisons,
//! `AND OR XOR NOT`, `IS [NOT] NULL/TRUE/FALSE`, `[NOT] IN (...)`, `[NOT] BETWEEN`,
//! `[NOT] LIKE`, and the functions `LENGTH CHAR_LENGTH LOWER UPPER ABS CONCAT IFNULL COALESCE`.
//! Anything else is refused when the filter is compiled, with a coded error naming it.

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, UnaryOperator,
    Value as SqlValue,
};

use crate::binlog::value::{ColumnInfo, Value};
use crate::error::{DmError, codes};

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    Num(f64),
    Str(String),
}

impl V {
    fn truth(&self) -> Option<bool> {
        match self {
            V::Null => None,
            V::Num(n) => Some(*n != 0.0),
            V::Str(s) => Some(s.trim().parse::<f64>().is_ok_and(|n| n != 0.0)),
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            V::Null => None,
            V::Num(n) => Some(*n),
            V::Str(s) => Some(leading_number(s)),
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            V::Null => None,
            V::Num(n) => Some(fmt_num(*n)),
            V::Str(s) => Some(s.clone()),
        }
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// MySQL's string → number: the longest numeric prefix, 0 if none.
fn leading_number(s: &str) -> f64 {
    let t = s.trim_start();
    let mut end = 0;
    for (i, c) in t.char_indices() {
        if c.is_ascii_digit()
            || c == '.'
            || ((c == '-' || c == '+') && i == 0)
            || ((c == 'e' || c == 'E') && i > 0)
        {
            end = i + c.len_utf8();
        } else {
            break;
        }
    }
    (0..=end)
        .rev()
        .find_map(|e| t[..e].parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn from_value(v: &Value, col: &ColumnInfo) -> V {
    match v {
        Value::Null => V::Null,
        Value::Int(i) => V::Num(*i as f64),
        Value::UInt(u) => V::Num(*u as f64),
        Value::Float(f) => V::Num(f64::from(*f)),
        Value::Double(d) => V::Num(*d),
        Value::Decimal(s) => V::Num(s.parse().unwrap_or(0.0)),
        Value::Bit(b) => V::Num(*b as f64),
        Value::Year(y) => V::Num(f64::from(*y)),
        Value::Bytes(b) => V::Str(String::from_utf8_lossy(b).into_owned()),
        Value::Json(s) => V::Str(s.clone()),
        Value::Geometry(_) => V::Null,
        Value::Enum(_) | Value::Set(_) => {
            let mut lit = String::new();
            v.write_sql_literal(col, &mut lit);
            V::Str(lit.trim_matches('\'').to_string())
        }
        Value::Date { .. }
        | Value::Time { .. }
        | Value::DateTime { .. }
        | Value::Timestamp { .. } => {
            let mut s = String::new();
            v.write_temporal(&mut s);
            V::Str(s)
        }
    }
}

/// A compiled expression: the parsed tree with column names resolved to positions.
#[derive(Debug, Clone)]
pub struct RowExpr {
    expr: Expr,
    columns: Vec<(String, usize)>,
}

fn unsupported(what: impl std::fmt::Display) -> DmError {
    DmError::new(
        &codes::CONFIG_EXPR_FILTER_WRONG_GRAMMAR,
        format!("expression filters do not support {what} yet"),
    )
}

impl RowExpr {
    /// Compiles `text` for a table with `columns`; unknown columns and unsupported syntax are
    /// errors.
    pub fn compile(text: &str, columns: &[ColumnInfo]) -> Result<Self, DmError> {
        let expr = super::parse_expression(text).map_err(|e| {
            DmError::new(
                &codes::CONFIG_EXPR_FILTER_WRONG_GRAMMAR,
                format!("`{text}`: {e}"),
            )
        })?;
        let mut this = Self {
            expr,
            columns: Vec::new(),
        };
        let expr = this.expr.clone();
        this.check(&expr, columns)?;
        Ok(this)
    }

    fn check(&mut self, e: &Expr, columns: &[ColumnInfo]) -> Result<(), DmError> {
        match e {
            Expr::Identifier(id) => self.resolve(&id.value, columns),
            Expr::CompoundIdentifier(ids) => {
                self.resolve(&ids.last().expect("non-empty").value, columns)
            }
            Expr::Value(_) => Ok(()),
            Expr::Nested(inner)
            | Expr::IsNull(inner)
            | Expr::IsNotNull(inner)
            | Expr::IsTrue(inner)
            | Expr::IsFalse(inner)
            | Expr::IsNotTrue(inner)
            | Expr::IsNotFalse(inner) => self.check(inner, columns),
            Expr::UnaryOp {
                op: UnaryOperator::Not | UnaryOperator::Minus | UnaryOperator::Plus,
                expr,
            } => self.check(expr, columns),
            Expr::BinaryOp { left, op, right } => {
                if binary(op).is_none() {
                    return Err(unsupported(format!("the operator `{op}`")));
                }
                self.check(left, columns)?;
                self.check(right, columns)
            }
            Expr::InList { expr, list, .. } => {
                self.check(expr, columns)?;
                list.iter().try_for_each(|x| self.check(x, columns))
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.check(expr, columns)?;
                self.check(low, columns)?;
                self.check(high, columns)
            }
            Expr::Like {
                expr,
                pattern,
                escape_char: None,
                any: false,
                ..
            } => {
                self.check(expr, columns)?;
                self.check(pattern, columns)
            }
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_uppercase();
                if !FUNCTIONS.contains(&name.as_str()) {
                    return Err(unsupported(format!("the function `{name}`")));
                }
                for a in function_args(f)? {
                    self.check(a, columns)?;
                }
                Ok(())
            }
            other => Err(unsupported(format!("`{other}`"))),
        }
    }

    fn resolve(&mut self, name: &str, columns: &[ColumnInfo]) -> Result<(), DmError> {
        let i = columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                DmError::new(
                    &codes::CONFIG_EXPR_FILTER_WRONG_GRAMMAR,
                    format!("unknown column `{name}` in an expression filter"),
                )
            })?;
        self.columns.push((name.to_ascii_lowercase(), i));
        Ok(())
    }

    /// True when the expression is TRUE for `row` (NULL and FALSE keep the row).
    pub fn matches(&self, row: &[Value], columns: &[ColumnInfo]) -> bool {
        self.eval(&self.expr, row, columns).truth() == Some(true)
    }

    fn column(&self, name: &str, row: &[Value], columns: &[ColumnInfo]) -> V {
        let lower = name.to_ascii_lowercase();
        match self.columns.iter().find(|(n, _)| *n == lower) {
            Some(&(_, i)) => row.get(i).map_or(V::Null, |v| from_value(v, &columns[i])),
            None => V::Null,
        }
    }

    fn eval(&self, e: &Expr, row: &[Value], cols: &[ColumnInfo]) -> V {
        let b = |x: Option<bool>| x.map_or(V::Null, |t| V::Num(if t { 1.0 } else { 0.0 }));
        match e {
            Expr::Identifier(id) => self.column(&id.value, row, cols),
            Expr::CompoundIdentifier(ids) => {
                self.column(&ids.last().expect("non-empty").value, row, cols)
            }
            Expr::Value(v) => literal(&v.value),
            Expr::Nested(inner) => self.eval(inner, row, cols),
            Expr::IsNull(x) => b(Some(self.eval(x, row, cols) == V::Null)),
            Expr::IsNotNull(x) => b(Some(self.eval(x, row, cols) != V::Null)),
            Expr::IsTrue(x) => b(Some(self.eval(x, row, cols).truth() == Some(true))),
            Expr::IsFalse(x) => b(Some(self.eval(x, row, cols).truth() == Some(false))),
            Expr::IsNotTrue(x) => b(Some(self.eval(x, row, cols).truth() != Some(true))),
            Expr::IsNotFalse(x) => b(Some(self.eval(x, row, cols).truth() != Some(false))),
            Expr::UnaryOp { op, expr } => {
                let v = self.eval(expr, row, cols);
                match op {
                    UnaryOperator::Not => b(v.truth().map(|t| !t)),
                    UnaryOperator::Minus => v.num().map_or(V::Null, |n| V::Num(-n)),
                    _ => v,
                }
            }
            Expr::BinaryOp { left, op, right } => {
                let (l, r) = (self.eval(left, row, cols), self.eval(right, row, cols));
                apply(binary(op).expect("checked at compile"), &l, &r)
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let v = self.eval(expr, row, cols);
                if v == V::Null {
                    return V::Null;
                }
                let mut saw_null = false;
                for x in list {
                    let item = self.eval(x, row, cols);
                    match compare(&v, &item) {
                        Some(std::cmp::Ordering::Equal) => return b(Some(!negated)),
                        None => saw_null = true,
                        _ => {}
                    }
                }
                if saw_null { V::Null } else { b(Some(*negated)) }
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let v = self.eval(expr, row, cols);
                let lo = compare(&v, &self.eval(low, row, cols)).map(|o| o.is_ge());
                let hi = compare(&v, &self.eval(high, row, cols)).map(|o| o.is_le());
                let inside = match (lo, hi) {
                    (Some(a), Some(c)) => Some(a && c),
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    _ => None,
                };
                b(inside.map(|i| i != *negated))
            }
            Expr::Like {
                negated,
                expr,
                pattern,
                ..
            } => {
                let (v, p) = (
                    self.eval(expr, row, cols).text(),
                    self.eval(pattern, row, cols).text(),
                );
                b(v.zip(p)
                    .map(|(v, p)| like(&v.to_lowercase(), &p.to_lowercase()) != *negated))
            }
            Expr::Function(f) => {
                let args: Vec<V> = function_args(f)
                    .expect("checked at compile")
                    .into_iter()
                    .map(|a| self.eval(a, row, cols))
                    .collect();
                call(&f.name.to_string().to_ascii_uppercase(), &args)
            }
            _ => V::Null,
        }
    }
}

const FUNCTIONS: &[&str] = &[
    "LENGTH",
    "CHAR_LENGTH",
    "LOWER",
    "UPPER",
    "ABS",
    "CONCAT",
    "IFNULL",
    "COALESCE",
];

fn function_args(f: &sqlparser::ast::Function) -> Result<Vec<&Expr>, DmError> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                other => Err(unsupported(format!("the argument `{other}`"))),
            })
            .collect(),
        FunctionArguments::None => Ok(Vec::new()),
        FunctionArguments::Subquery(_) => Err(unsupported("subqueries")),
    }
}

fn call(name: &str, a: &[V]) -> V {
    let first = a.first().cloned().unwrap_or(V::Null);
    match name {
        "LENGTH" => first.text().map_or(V::Null, |s| V::Num(s.len() as f64)),
        "CHAR_LENGTH" => first
            .text()
            .map_or(V::Null, |s| V::Num(s.chars().count() as f64)),
        "LOWER" => first.text().map_or(V::Null, |s| V::Str(s.to_lowercase())),
        "UPPER" => first.text().map_or(V::Null, |s| V::Str(s.to_uppercase())),
        "ABS" => first.num().map_or(V::Null, |n| V::Num(n.abs())),
        "CONCAT" => a
            .iter()
            .map(V::text)
            .collect::<Option<Vec<_>>>()
            .map_or(V::Null, |v| V::Str(v.concat())),
        "IFNULL" | "COALESCE" => a
            .iter()
            .find(|v| **v != V::Null)
            .cloned()
            .unwrap_or(V::Null),
        _ => V::Null,
    }
}

fn literal(v: &SqlValue) -> V {
    match v {
        SqlValue::Number(n, _) => V::Num(n.parse().unwrap_or(0.0)),
        SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => V::Str(s.clone()),
        SqlValue::Boolean(t) => V::Num(if *t { 1.0 } else { 0.0 }),
        SqlValue::Null => V::Null,
        other => V::Str(other.to_string()),
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    NullSafeEq,
    And,
    Or,
    Xor,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    IntDiv,
}

fn binary(op: &BinaryOperator) -> Option<Op> {
    Some(match op {
        BinaryOperator::Eq => Op::Eq,
        BinaryOperator::NotEq => Op::Ne,
        BinaryOperator::Lt => Op::Lt,
        BinaryOperator::LtEq => Op::Le,
        BinaryOperator::Gt => Op::Gt,
        BinaryOperator::GtEq => Op::Ge,
        BinaryOperator::Spaceship => Op::NullSafeEq,
        BinaryOperator::And => Op::And,
        BinaryOperator::Or => Op::Or,
        BinaryOperator::Xor => Op::Xor,
        BinaryOperator::Plus => Op::Add,
        BinaryOperator::Minus => Op::Sub,
        BinaryOperator::Multiply => Op::Mul,
        BinaryOperator::Divide => Op::Div,
        BinaryOperator::Modulo => Op::Mod,
        BinaryOperator::MyIntegerDivide => Op::IntDiv,
        _ => return None,
    })
}

/// MySQL comparison: numeric when either side is a number, else string (case-insensitive,
/// trailing spaces ignored, as the default collations compare).
fn compare(l: &V, r: &V) -> Option<std::cmp::Ordering> {
    match (l, r) {
        (V::Null, _) | (_, V::Null) => None,
        (V::Str(a), V::Str(b)) => Some(
            a.trim_end()
                .to_lowercase()
                .cmp(&b.trim_end().to_lowercase()),
        ),
        _ => l.num()?.partial_cmp(&r.num()?),
    }
}

fn apply(op: Op, l: &V, r: &V) -> V {
    let b = |x: Option<bool>| x.map_or(V::Null, |t| V::Num(if t { 1.0 } else { 0.0 }));
    let arith = |f: fn(f64, f64) -> Option<f64>| match (l.num(), r.num()) {
        (Some(a), Some(c)) => f(a, c).map_or(V::Null, V::Num),
        _ => V::Null,
    };
    match op {
        Op::Eq => b(compare(l, r).map(|o| o.is_eq())),
        Op::Ne => b(compare(l, r).map(|o| o.is_ne())),
        Op::Lt => b(compare(l, r).map(|o| o.is_lt())),
        Op::Le => b(compare(l, r).map(|o| o.is_le())),
        Op::Gt => b(compare(l, r).map(|o| o.is_gt())),
        Op::Ge => b(compare(l, r).map(|o| o.is_ge())),
        Op::NullSafeEq => b(Some(match (l, r) {
            (V::Null, V::Null) => true,
            (V::Null, _) | (_, V::Null) => false,
            _ => compare(l, r).is_some_and(|o| o.is_eq()),
        })),
        Op::And => match (l.truth(), r.truth()) {
            (Some(false), _) | (_, Some(false)) => b(Some(false)),
            (Some(true), Some(true)) => b(Some(true)),
            _ => V::Null,
        },
        Op::Or => match (l.truth(), r.truth()) {
            (Some(true), _) | (_, Some(true)) => b(Some(true)),
            (Some(false), Some(false)) => b(Some(false)),
            _ => V::Null,
        },
        Op::Xor => b(l.truth().zip(r.truth()).map(|(a, c)| a != c)),
        Op::Add => arith(|a, c| Some(a + c)),
        Op::Sub => arith(|a, c| Some(a - c)),
        Op::Mul => arith(|a, c| Some(a * c)),
        Op::Div => arith(|a, c| (c != 0.0).then(|| a / c)),
        Op::Mod => arith(|a, c| (c != 0.0).then(|| a % c)),
        Op::IntDiv => arith(|a, c| (c != 0.0).then(|| (a / c).trunc())),
    }
}

/// SQL LIKE with `%` and `_` (backslash escapes the next character).
fn like(s: &str, p: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), p.chars().collect());
    fn go(s: &[char], p: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('%') => (0..=s.len()).any(|i| go(&s[i..], &p[1..])),
            Some('_') => !s.is_empty() && go(&s[1..], &p[1..]),
            Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && go(&s[1..], &p[2..]),
            Some(c) => s.first() == Some(c) && go(&s[1..], &p[1..]),
        }
    }
    go(&s, &p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::value::SqlType;

    fn cols() -> Vec<ColumnInfo> {
        vec![
            ColumnInfo::new("id", SqlType::Int),
            ColumnInfo::new("email", SqlType::VarChar),
            ColumnInfo::new("score", SqlType::Decimal),
        ]
    }

    fn row(id: i64, email: Option<&str>, score: &str) -> Vec<Value> {
        vec![
            Value::Int(id),
            email.map_or(Value::Null, |e| Value::Bytes(e.as_bytes().to_vec())),
            Value::Decimal(score.into()),
        ]
    }

    fn m(expr: &str, r: &[Value]) -> bool {
        RowExpr::compile(expr, &cols()).unwrap().matches(r, &cols())
    }

    #[test]
    fn evaluates_like_mysql() {
        let r = row(7, Some("Bob@Example.com"), "12.50");
        assert!(m("email LIKE '%@example.com'", &r));
        assert!(m("id % 2 = 1 AND score > 12", &r));
        assert!(!m("id IN (1, 2, 3)", &r));
        assert!(m("id NOT IN (1, 2, 3)", &r));
        assert!(m("score BETWEEN 10 AND 13", &r));
        assert!(m(
            "LENGTH(email) = 15 AND UPPER(email) = 'BOB@EXAMPLE.COM'",
            &r
        ));
        assert!(m("id DIV 2 = 3", &r));
        let n = row(8, None, "0");
        assert!(!m("email = 'x'", &n), "NULL comparison keeps the row");
        assert!(!m("NOT (email = 'x')", &n));
        assert!(m("email IS NULL OR email = 'x'", &n));
        assert!(m("IFNULL(email, 'none') = 'none'", &n));
        assert!(
            !m("id IN (1, NULL)", &n),
            "IN with NULL and no match is NULL"
        );
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        for bad in [
            "nosuch = 1",
            "id = (SELECT 1)",
            "NOW() > 0",
            "id REGEXP 'a'",
        ] {
            let e = RowExpr::compile(bad, &cols()).unwrap_err();
            assert_eq!(
                e.code,
                codes::CONFIG_EXPR_FILTER_WRONG_GRAMMAR.code,
                "{bad}: {e}"
            );
        }
    }
}
