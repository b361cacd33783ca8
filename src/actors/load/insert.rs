//! Rewriting a dump's INSERT statements for the target, and grouping them into requests.
//!
//! A dump INSERT names the upstream table (`INSERT INTO `t` (cols) VALUES (...),(...)`). The
//! loader renders it again with the routed target table, the verb of `on-duplicate-logical`
//! (`REPLACE INTO`, `INSERT IGNORE INTO` or `INSERT INTO`), the route's extract columns
//! appended to the column list and their values to every row, and cuts statements longer than
//! the request size into several by rows. Row tuples are copied byte for byte: only their
//! boundaries are found (quotes, escapes and nested parentheses respected), never their
//! values parsed.

use super::split::{skip_space, word_at};
use crate::sql::{quote_ident, quote_string};

/// About how much SQL one round trip carries: statements are joined (`;`-separated, one
/// multi-statement query) up to this size, and longer INSERTs are cut by rows.
pub const REQUEST_BYTES: usize = 1 << 20;

/// What `on-duplicate-logical` asks for when a loaded row's key already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    /// `REPLACE INTO`: the dump's row wins.
    Replace,
    /// `INSERT IGNORE INTO`: the existing row stays.
    Ignore,
    /// `INSERT INTO`: the load fails with `LOAD_DUPLICATE_ENTRY`.
    Error,
}

impl OnDuplicate {
    /// From [`crate::config::task::LoaderConfig::on_duplicate`]'s text (validated earlier;
    /// anything unknown is `replace`, DM's default).
    pub fn parse(s: &str) -> Self {
        match s {
            "error" => Self::Error,
            "ignore" => Self::Ignore,
            _ => Self::Replace,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Replace => "REPLACE INTO",
            Self::Ignore => "INSERT IGNORE INTO",
            Self::Error => "INSERT INTO",
        }
    }
}

/// How the INSERTs of one upstream table are rendered for the target.
#[derive(Debug, Clone)]
pub struct InsertPlan {
    /// `REPLACE INTO `db`.`tbl``.
    head: Vec<u8>,
    /// `,`c1`,`c2`` (empty without extract columns).
    extra_columns: Vec<u8>,
    /// `,'v1','v2'` (empty without extract columns).
    extra_values: Vec<u8>,
    /// The upstream table's columns, quoted and comma-separated, for INSERTs without a column
    /// list when extract columns must be added.
    all_columns: Option<Vec<u8>>,
}

impl InsertPlan {
    /// Rows go to `schema`.`table` with `extra` `(column, value)` pairs appended; `columns` are
    /// the upstream table's columns (from its CREATE TABLE), if known.
    pub fn new(
        mode: OnDuplicate,
        schema: &str,
        table: &str,
        extra: &[(String, String)],
        columns: Option<&[String]>,
    ) -> Self {
        let head = format!(
            "{} {}.{}",
            mode.verb(),
            quote_ident(schema),
            quote_ident(table)
        );
        let mut extra_columns = String::new();
        let mut extra_values = String::new();
        for (c, v) in extra {
            extra_columns.push(',');
            extra_columns.push_str(&quote_ident(c));
            // The introducer keeps the value UTF-8 under a dump's `SET NAMES binary`.
            extra_values.push_str(",_utf8mb4");
            extra_values.push_str(&quote_string(v));
        }
        Self {
            head: head.into_bytes(),
            extra_columns: extra_columns.into_bytes(),
            extra_values: extra_values.into_bytes(),
            all_columns: columns.map(|cs| {
                cs.iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(",")
                    .into_bytes()
            }),
        }
    }

    /// Renders one dump INSERT into `out`; returns its row count.
    pub fn render(&self, stmt: &[u8], out: &mut RequestWriter<'_>) -> Result<u64, String> {
        let ins = parse_insert(stmt)?;
        let rows = tuples(ins.values)?;
        if rows.is_empty() {
            return Err("INSERT without rows".into());
        }
        let mut header = self.head.clone();
        let columns = match ins.columns {
            Some(c) => Some(c),
            None if self.extra_columns.is_empty() => None,
            None => Some(self.all_columns.as_deref().ok_or(
                "an INSERT without a column list into a table with extract columns needs the \
                 table's schema file",
            )?),
        };
        if let Some(c) = columns {
            header.extend_from_slice(b" (");
            header.extend_from_slice(c);
            header.extend_from_slice(&self.extra_columns);
            header.push(b')');
        }
        header.extend_from_slice(b" VALUES ");
        let cost = |r: &(usize, usize)| r.1 - r.0 + self.extra_values.len() + 1;
        let mut i = 0;
        while i < rows.len() {
            let mut size = header.len() + cost(&rows[i]);
            let mut j = i + 1;
            while j < rows.len() && size + cost(&rows[j]) <= out.limit {
                size += cost(&rows[j]);
                j += 1;
            }
            let buf = out.statement(size, (j - i) as u64);
            buf.extend_from_slice(&header);
            for (k, &(s, e)) in rows[i..j].iter().enumerate() {
                if k > 0 {
                    buf.push(b',');
                }
                if self.extra_values.is_empty() {
                    buf.extend_from_slice(&ins.values[s..e]);
                } else {
                    buf.extend_from_slice(&ins.values[s..e - 1]);
                    buf.extend_from_slice(&self.extra_values);
                    buf.push(b')');
                }
            }
            i = j;
        }
        Ok(rows.len() as u64)
    }
}

/// One multi-statement query for the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub sql: Vec<u8>,
    /// Rows its INSERTs carry.
    pub rows: u64,
    /// It holds a SET from the dump: the session needs resetting after the file.
    pub sets_session: bool,
}

/// Joins statements into [`Request`]s of about `limit` bytes and hands each full one to a
/// sink (which returns `false` to stop: the receiver is gone).
pub struct RequestWriter<'a> {
    limit: usize,
    cur: Request,
    sink: &'a mut dyn FnMut(Request) -> bool,
    open: bool,
}

impl<'a> RequestWriter<'a> {
    /// A writer cutting at `limit` bytes.
    pub fn new(limit: usize, sink: &'a mut dyn FnMut(Request) -> bool) -> Self {
        Self {
            limit,
            cur: Request {
                sql: Vec::new(),
                rows: 0,
                sets_session: false,
            },
            sink,
            open: true,
        }
    }

    /// Room for a statement of about `size` bytes carrying `rows` rows: the buffer to write it
    /// into (the previous request is handed over first when the statement would not fit).
    pub fn statement(&mut self, size: usize, rows: u64) -> &mut Vec<u8> {
        if !self.cur.sql.is_empty() && self.cur.sql.len() + 2 + size > self.limit {
            self.flush();
        }
        if self.cur.sql.is_empty() {
            self.cur.sql.reserve(size.min(self.limit));
        } else {
            self.cur.sql.extend_from_slice(b";\n");
        }
        self.cur.rows += rows;
        &mut self.cur.sql
    }

    /// Adds a session statement (a dump's SET) as it is.
    pub fn session(&mut self, stmt: &[u8]) {
        self.statement(stmt.len(), 0).extend_from_slice(stmt);
        self.cur.sets_session = true;
    }

    /// Hands over the pending request, if any.
    pub fn flush(&mut self) {
        if self.cur.sql.is_empty() {
            return;
        }
        let req = std::mem::replace(
            &mut self.cur,
            Request {
                sql: Vec::new(),
                rows: 0,
                sets_session: false,
            },
        );
        if self.open {
            self.open = (self.sink)(req);
        }
    }

    /// Whether the sink still takes requests.
    pub fn is_open(&self) -> bool {
        self.open
    }
}

/// The parts of a dump INSERT the loader needs.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedInsert<'a> {
    /// The column list's inside (`` `a`,`b` ``), when there is one.
    pub columns: Option<&'a [u8]>,
    /// Everything after `VALUES`.
    pub values: &'a [u8],
}

/// Reads `INSERT|REPLACE [modifiers] [INTO] tbl [(cols)] VALUES|VALUE ...`.
pub fn parse_insert(s: &[u8]) -> Result<ParsedInsert<'_>, String> {
    let mut i = skip_space(s, 0);
    let verb = word_at(s, i);
    if !(verb.eq_ignore_ascii_case(b"INSERT") || verb.eq_ignore_ascii_case(b"REPLACE")) {
        return Err("not an INSERT statement".into());
    }
    i += verb.len();
    loop {
        i = skip_space(s, i);
        let w = word_at(s, i);
        if ["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO"]
            .iter()
            .any(|m| w.eq_ignore_ascii_case(m.as_bytes()))
        {
            i += w.len();
        } else {
            break;
        }
    }
    i = skip_ident(s, i)?;
    i = skip_space(s, i);
    if s.get(i) == Some(&b'.') {
        i = skip_ident(s, skip_space(s, i + 1))?;
        i = skip_space(s, i);
    }
    let mut columns = None;
    if s.get(i) == Some(&b'(') {
        let end = tuple_end(s, i)?;
        columns = Some(&s[i + 1..end - 1]);
        i = skip_space(s, end);
    }
    let w = word_at(s, i);
    if !(w.eq_ignore_ascii_case(b"VALUES") || w.eq_ignore_ascii_case(b"VALUE")) {
        return Err(format!(
            "expected VALUES at byte {i} of the INSERT (INSERT ... SELECT and INSERT ... SET \
             are not dump statements)"
        ));
    }
    Ok(ParsedInsert {
        columns,
        values: &s[i + w.len()..],
    })
}

/// Skips one table name (quoted or bare) at `i`.
fn skip_ident(s: &[u8], i: usize) -> Result<usize, String> {
    match s.get(i) {
        Some(&q @ (b'`' | b'"')) => {
            let mut j = i + 1;
            loop {
                match s.get(j) {
                    None => return Err("unterminated quoted table name".into()),
                    Some(&b) if b == q => {
                        if s.get(j + 1) == Some(&q) {
                            j += 2;
                        } else {
                            return Ok(j + 1);
                        }
                    }
                    Some(_) => j += 1,
                }
            }
        }
        Some(_) => {
            let n = s[i..]
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80))
                .unwrap_or(s.len() - i);
            if n == 0 {
                Err(format!("expected a table name at byte {i} of the INSERT"))
            } else {
                Ok(i + n)
            }
        }
        None => Err("the INSERT ends before its table name".into()),
    }
}

/// The end (one past the closing `)`) of the parenthesised group opening at `open`.
fn tuple_end(s: &[u8], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    let mut i = open;
    let n = s.len();
    while i < n {
        match s[i] {
            q @ (b'\'' | b'"' | b'`') => {
                let backslash = q != b'`';
                i += 1;
                loop {
                    if i >= n {
                        return Err(format!("unterminated quote in the row at byte {open}"));
                    }
                    let b = s[i];
                    if b == q {
                        break;
                    }
                    i += if backslash && b == b'\\' { 2 } else { 1 };
                }
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(format!("unbalanced parentheses in the row at byte {open}"))
}

/// The `[start, end)` byte ranges of the row tuples in an INSERT's VALUES part.
pub fn tuples(values: &[u8]) -> Result<Vec<(usize, usize)>, String> {
    let mut out = Vec::new();
    let mut i = skip_space(values, 0);
    while i < values.len() {
        if values[i] != b'(' {
            return Err(format!(
                "expected a row at byte {i} of the VALUES list (ON DUPLICATE KEY UPDATE and \
                 other clauses are not dump syntax)"
            ));
        }
        let end = tuple_end(values, i)?;
        out.push((i, end));
        i = skip_space(values, end);
        match values.get(i) {
            Some(b',') => i = skip_space(values, i + 1),
            None => {}
            Some(_) => {
                return Err(format!(
                    "expected `,` or the end after the row at byte {i} of the VALUES list"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(plan: &InsertPlan, stmt: &str, limit: usize) -> (Vec<String>, u64) {
        let mut reqs = Vec::new();
        let mut sink = |r: Request| {
            reqs.push(String::from_utf8(r.sql).unwrap());
            true
        };
        let mut w = RequestWriter::new(limit, &mut sink);
        let rows = plan.render(stmt.as_bytes(), &mut w).unwrap();
        w.flush();
        (reqs, rows)
    }

    #[test]
    fn parses_dump_inserts() {
        let p = parse_insert(b"INSERT INTO `t``x` (`a`,`b c`) VALUES (1,'x'),(2,'y')").unwrap();
        assert_eq!(p.columns, Some(&b"`a`,`b c`"[..]));
        assert_eq!(p.values, b" (1,'x'),(2,'y')");
        let p = parse_insert(b"/* c */ replace ignore into db.t values(1)").unwrap();
        assert_eq!(p.columns, None);
        assert_eq!(p.values, b"(1)");
        let p = parse_insert(b"INSERT INTO \"a\".\"b\" VALUE (1)").unwrap();
        assert_eq!(p.values, b" (1)");
        assert!(parse_insert(b"INSERT INTO t SELECT 1").is_err());
        assert!(parse_insert(b"INSERT INTO t SET a=1").is_err());
        assert!(parse_insert(b"INSERT INTO `t VALUES (1)").is_err());
    }

    #[test]
    fn finds_row_boundaries() {
        let v = b" (1,'a)(''\\'',\"b)\"),\n(2,f(3,(4)),`x)`) ,(3)";
        let t = tuples(v).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(&v[t[0].0..t[0].1], b"(1,'a)(''\\'',\"b)\")");
        assert_eq!(&v[t[1].0..t[1].1], b"(2,f(3,(4)),`x)`)");
        assert_eq!(&v[t[2].0..t[2].1], b"(3)");
        assert!(tuples(b"(1) ON DUPLICATE KEY UPDATE a=1").is_err());
        assert!(tuples(b"(1,'x)").is_err());
        assert!(tuples(b"(1,(2)").is_err());
    }

    #[test]
    fn renders_target_verb_and_extract_columns() {
        let plan = InsertPlan::new(OnDuplicate::Replace, "tdb", "m`x", &[], None);
        let (r, n) = render(&plan, "INSERT INTO `s` (`a`) VALUES (1),(2)", REQUEST_BYTES);
        assert_eq!(n, 2);
        assert_eq!(r, vec!["REPLACE INTO `tdb`.`m``x` (`a`) VALUES (1),(2)"]);

        let extra = vec![("c_table".to_string(), "1'".to_string())];
        let plan = InsertPlan::new(OnDuplicate::Ignore, "d", "t", &extra, None);
        let (r, _) = render(
            &plan,
            "INSERT INTO `s` (`a`,`b`) VALUES (1,'x'),(2,')')",
            1 << 20,
        );
        assert_eq!(
            r,
            vec![
                "INSERT IGNORE INTO `d`.`t` (`a`,`b`,`c_table`) VALUES \
                 (1,'x',_utf8mb4'1\\''),(2,')',_utf8mb4'1\\'')"
            ]
        );
        // Without a column list, the schema's columns are used, or it is an error.
        let cols = vec!["a".to_string(), "b".to_string()];
        let plan = InsertPlan::new(OnDuplicate::Error, "d", "t", &extra, Some(&cols));
        let (r, _) = render(&plan, "INSERT INTO s VALUES (1,2)", 1 << 20);
        assert_eq!(
            r,
            vec!["INSERT INTO `d`.`t` (`a`,`b`,`c_table`) VALUES (1,2,_utf8mb4'1\\'')"]
        );
        let plan = InsertPlan::new(OnDuplicate::Error, "d", "t", &extra, None);
        let mut sink = |_: Request| true;
        let mut w = RequestWriter::new(100, &mut sink);
        assert!(
            plan.render(b"INSERT INTO s VALUES (1,2)", &mut w)
                .unwrap_err()
                .contains("schema file")
        );
    }

    #[test]
    fn cuts_long_inserts_and_joins_short_ones() {
        let plan = InsertPlan::new(OnDuplicate::Error, "d", "t", &[], None);
        let rows: Vec<String> = (0..10)
            .map(|i| format!("({i},'{}')", "x".repeat(20)))
            .collect();
        let stmt = format!("INSERT INTO t VALUES {}", rows.join(","));
        // Header "INSERT INTO `d`.`t` VALUES " is 27 bytes; a row costs 27 bytes.
        let (r, n) = render(&plan, &stmt, 27 + 27 * 3);
        assert_eq!(n, 10);
        assert_eq!(r.len(), 4);
        assert!(r.iter().all(|q| q.len() <= 27 + 27 * 3));
        assert_eq!(
            r[0],
            format!("INSERT INTO `d`.`t` VALUES {}", rows[..3].join(","))
        );
        // Short statements share one request.
        let mut reqs = Vec::new();
        let mut sink = |r: Request| {
            reqs.push(r);
            true
        };
        let mut w = RequestWriter::new(1000, &mut sink);
        w.session(b"/*!40101 SET NAMES binary*/");
        plan.render(b"INSERT INTO t VALUES (1)", &mut w).unwrap();
        plan.render(b"INSERT INTO t VALUES (2),(3)", &mut w)
            .unwrap();
        w.flush();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].rows, 3);
        assert!(reqs[0].sets_session);
        assert_eq!(
            String::from_utf8(reqs[0].sql.clone()).unwrap(),
            "/*!40101 SET NAMES binary*/;\nINSERT INTO `d`.`t` VALUES (1);\n\
             INSERT INTO `d`.`t` VALUES (2),(3)"
        );
    }
}
