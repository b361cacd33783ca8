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
use super::tsv::convert_values;
use crate::sql::{quote_ident, quote_string};

/// About how much SQL one round trip carries: statements are joined (`;`-separated, one
/// multi-statement query) up to this size, and longer INSERTs are cut by rows.
pub const REQUEST_BYTES: usize = 1 << 20;

/// A `LOAD DATA` request carries up to this many times [`RequestWriter`]'s limit of text.
pub const LOAD_REQUEST_FACTOR: usize = 4;

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

    /// The duplicate handling word of `LOAD DATA` (none for `error`: the caller checks that
    /// every row was inserted, since LOAD DATA LOCAL skips duplicates by default).
    fn load_verb(self) -> &'static str {
        match self {
            Self::Replace => "REPLACE ",
            Self::Ignore => "IGNORE ",
            Self::Error => "",
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
    /// `LOAD DATA LOCAL INFILE 'dm-rs' REPLACE INTO TABLE `db`.`tbl``.
    load_head: Vec<u8>,
    /// ` SET `c1`=_utf8mb4'v1',...` (empty without extract columns).
    load_set: Vec<u8>,
    /// The upstream table's columns (unquoted) in order, when known.
    column_names: Option<Vec<String>>,
    /// Columns whose values are raw bytes (BINARY, VARBINARY, BLOB): hex literals go into
    /// LOAD DATA text as bytes only for these.
    binary_columns: Vec<String>,
    /// Every text column of the target table is utf8mb4: UTF-8 text can be read as
    /// `CHARACTER SET binary` (the same bytes are stored, and the server skips its
    /// multi-byte scan of the input).
    utf8mb4_target: bool,
    /// The table has generated columns (or they are unknown): an INSERT without a column
    /// list then names them too, and only the SQL path reports such a row exactly.
    generated_columns: bool,
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
        let load_head = format!(
            "LOAD DATA LOCAL INFILE 'dm-rs' {}INTO TABLE {}.{}",
            mode.load_verb(),
            quote_ident(schema),
            quote_ident(table)
        );
        let mut extra_columns = String::new();
        let mut extra_values = String::new();
        let mut load_set = String::new();
        for (i, (c, v)) in extra.iter().enumerate() {
            extra_columns.push(',');
            extra_columns.push_str(&quote_ident(c));
            // The introducer keeps the value UTF-8 under a dump's `SET NAMES binary`.
            extra_values.push_str(",_utf8mb4");
            extra_values.push_str(&quote_string(v));
            load_set.push_str(if i == 0 { " SET " } else { "," });
            load_set.push_str(&quote_ident(c));
            load_set.push_str("=_utf8mb4");
            load_set.push_str(&quote_string(v));
        }
        Self {
            load_head: load_head.into_bytes(),
            load_set: load_set.into_bytes(),
            column_names: columns.map(<[String]>::to_vec),
            binary_columns: Vec::new(),
            utf8mb4_target: false,
            generated_columns: false,
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

    /// Marks the columns whose values are raw bytes (BINARY, VARBINARY, BLOB), so that their
    /// hex literals can go into LOAD DATA text.
    pub fn with_binary_columns(mut self, names: Vec<String>) -> Self {
        self.binary_columns = names;
        self
    }

    /// Says whether the table has generated columns (see [`Self::render_load`]).
    pub fn with_generated_columns(mut self, yes: bool) -> Self {
        self.generated_columns = yes;
        self
    }

    /// Says whether every text column of the target table has the utf8mb4 character set
    /// (see [`Self::render_load`]).
    pub fn with_utf8mb4_target(mut self, yes: bool) -> Self {
        self.utf8mb4_target = yes;
        self
    }

    /// The character set LOAD DATA reads text of the file's `charset` in: `binary` for UTF-8
    /// text into a table whose text columns are all utf8mb4 (same bytes stored, less work for
    /// the server), else the file's own.
    fn load_charset<'a>(&self, charset: &'a str) -> &'a str {
        if self.utf8mb4_target && matches!(charset, "utf8mb4" | "utf8" | "utf8mb3") {
            "binary"
        } else {
            charset
        }
    }

    /// Renders one dump INSERT as a `LOAD DATA LOCAL INFILE` request into `out` (the rows as
    /// [`super::tsv`] text); `charset` is the character set of the file's text (its
    /// `SET NAMES`). Returns the row count, or `Ok(None)` when a value has no LOAD DATA form:
    /// nothing was written, and the statement goes through [`Self::render`] instead.
    pub fn render_load(
        &self,
        stmt: &[u8],
        charset: &str,
        scratch: &mut LoadScratch,
        out: &mut RequestWriter<'_>,
    ) -> Result<Option<u64>, String> {
        let ins = parse_insert(stmt)?;
        if ins.columns.is_none() && self.generated_columns {
            // Its values include the generated columns': SQL says what that means.
            return Ok(None);
        }
        let columns = match ins.columns {
            Some(c) => Some(c),
            None if self.load_set.is_empty() => None,
            None => match self.all_columns.as_deref() {
                Some(c) => Some(c),
                None => return Ok(None),
            },
        };
        // The column count every row must have; unknown without a list or the schema.
        let names = match ins.columns {
            Some(c) => column_list(c),
            None => self.column_names.clone(),
        };
        let Some(names) = names else {
            return Ok(None);
        };
        scratch.binary.clear();
        scratch
            .binary
            .extend(names.iter().map(|n| self.binary_columns.contains(n)));
        scratch.data.clear();
        scratch.ends.clear();
        if convert_values(
            ins.values,
            names.len(),
            &scratch.binary,
            &mut scratch.data,
            &mut scratch.ends,
        )
        .is_err()
        {
            return Ok(None);
        }
        let mut head = self.load_head.clone();
        head.extend_from_slice(b" CHARACTER SET ");
        head.extend_from_slice(self.load_charset(charset).as_bytes());
        head.extend_from_slice(
            b" FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'",
        );
        if let Some(c) = columns {
            head.extend_from_slice(b" (");
            head.extend_from_slice(c);
            head.push(b')');
        }
        head.extend_from_slice(&self.load_set);
        out.load(&head, &scratch.data, &scratch.ends);
        Ok(Some(scratch.ends.len() as u64))
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

/// Buffers [`InsertPlan::render_load`] reuses from statement to statement.
#[derive(Debug, Default)]
pub struct LoadScratch {
    data: Vec<u8>,
    ends: Vec<usize>,
    binary: Vec<bool>,
}

/// The names in an INSERT's column list (`` `a`,`b``c`,d ``); `None` if it does not scan.
fn column_list(s: &[u8]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut i = skip_space(s, 0);
    while i < s.len() {
        let mut name = Vec::new();
        if s[i] == b'`' {
            i += 1;
            loop {
                match s.get(i) {
                    None => return None,
                    Some(b'`') if s.get(i + 1) == Some(&b'`') => {
                        name.push(b'`');
                        i += 2;
                    }
                    Some(b'`') => {
                        i += 1;
                        break;
                    }
                    Some(&b) => {
                        name.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < s.len() && !matches!(s[i], b',' | b' ' | b'\t' | b'\n' | b'\r') {
                name.push(s[i]);
                i += 1;
            }
        }
        out.push(String::from_utf8(name).ok()?);
        i = skip_space(s, i);
        match s.get(i) {
            Some(b',') => i = skip_space(s, i + 1),
            None => {}
            Some(_) => return None,
        }
    }
    Some(out)
}

/// One request for the target: a multi-statement query, or one `LOAD DATA LOCAL INFILE`
/// statement and the text it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub sql: Vec<u8>,
    /// Rows its INSERTs (or its LOAD DATA) carry.
    pub rows: u64,
    /// It holds a SET from the dump: the session needs resetting after the file.
    pub sets_session: bool,
    /// For a LOAD DATA request (`sql` is the statement): the rows' text.
    pub data: Option<Vec<u8>>,
}

impl Request {
    fn empty() -> Self {
        Self {
            sql: Vec::new(),
            rows: 0,
            sets_session: false,
            data: None,
        }
    }
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
            cur: Request::empty(),
            sink,
            open: true,
        }
    }

    /// Room for a statement of about `size` bytes carrying `rows` rows: the buffer to write it
    /// into (the previous request is handed over first when the statement would not fit).
    pub fn statement(&mut self, size: usize, rows: u64) -> &mut Vec<u8> {
        if self.cur.data.is_some()
            || (!self.cur.sql.is_empty() && self.cur.sql.len() + 2 + size > self.limit)
        {
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

    /// Adds rows for the LOAD DATA statement `head`: `data` holds the lines, `ends[i]` is the
    /// end of row `i`. Rows join the current request when it is the same statement, and a
    /// request is cut at [`LOAD_REQUEST_FACTOR`] × the limit (a single longer row makes a
    /// longer request).
    pub fn load(&mut self, head: &[u8], data: &[u8], ends: &[usize]) {
        let limit = self.limit.saturating_mul(LOAD_REQUEST_FACTOR);
        let (mut start, mut i) = (0, 0);
        while i < ends.len() {
            if self.cur.data.is_none() || self.cur.sql != head {
                self.flush();
                self.cur.sql.extend_from_slice(head);
                // Room for a whole request at once: growing it would copy it again.
                self.cur.data = Some(Vec::with_capacity(limit));
            }
            let buf = self.cur.data.as_mut().expect("a load request");
            let room = limit.saturating_sub(buf.len());
            let mut j = i;
            while j < ends.len() && (ends[j] - start <= room || (j == i && buf.is_empty())) {
                j += 1;
            }
            if j == i {
                self.flush();
                continue;
            }
            buf.extend_from_slice(&data[start..ends[j - 1]]);
            self.cur.rows += (j - i) as u64;
            start = ends[j - 1];
            i = j;
        }
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
        let req = std::mem::replace(&mut self.cur, Request::empty());
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

    #[test]
    fn load_data_requests_keep_order_and_fall_back_per_statement() {
        let cols = ["a".to_string(), "b".to_string()];
        let plan = InsertPlan::new(
            OnDuplicate::Replace,
            "d",
            "t",
            &[("src".into(), "s1".into())],
            Some(&cols),
        )
        .with_binary_columns(vec!["b".into()]);
        let mut reqs = Vec::new();
        let mut sink = |r: Request| {
            reqs.push(r);
            true
        };
        let mut w = RequestWriter::new(20, &mut sink);
        let mut scratch = LoadScratch::default();
        w.session(b"SET NAMES binary");
        let load = |stmt: &str, w: &mut RequestWriter<'_>, scratch: &mut LoadScratch| {
            plan.render_load(stmt.as_bytes(), "binary", scratch, w)
                .unwrap()
        };
        assert_eq!(
            load(
                "INSERT INTO t VALUES (1,X'0941'),(2,NULL)",
                &mut w,
                &mut scratch
            ),
            Some(2)
        );
        // Same statement head: joins the request (up to 4 × 20 bytes of text).
        assert_eq!(
            load("INSERT INTO t VALUES (3,'x\ty')", &mut w, &mut scratch),
            Some(1)
        );
        // A bit literal has no LOAD DATA form: nothing written, the caller renders SQL.
        assert_eq!(
            load("INSERT INTO t VALUES (4,b'1')", &mut w, &mut scratch),
            None
        );
        plan.render(b"INSERT INTO t VALUES (4,b'1')", &mut w)
            .unwrap();
        // A column list of its own is a new statement; a long one is cut by rows.
        let long: Vec<String> = (0..20).map(|i| format!("({i},'{i:08}')")).collect();
        let stmt = format!("INSERT INTO t (`b`,`a`) VALUES {}", long.join(","));
        assert_eq!(load(&stmt, &mut w, &mut scratch), Some(20));
        w.flush();
        let text = |r: &Request| String::from_utf8(r.sql.clone()).unwrap();
        assert_eq!(text(&reqs[0]), "SET NAMES binary");
        assert!(reqs[0].data.is_none() && reqs[0].sets_session);
        assert_eq!(
            text(&reqs[1]),
            "LOAD DATA LOCAL INFILE 'dm-rs' REPLACE INTO TABLE `d`.`t` CHARACTER SET binary \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' \
             (`a`,`b`) SET `src`=_utf8mb4's1'"
        );
        assert_eq!(
            reqs[1].data.as_deref(),
            Some(&b"1\t\\tA\n2\t\\N\n3\tx\\ty\n"[..])
        );
        assert_eq!(reqs[1].rows, 3);
        assert!(text(&reqs[2]).starts_with("REPLACE INTO `d`.`t` (`a`,`b`,`src`) VALUES (4,b'1',"));
        assert!(reqs[2].data.is_none());
        let rest = &reqs[3..];
        assert!(rest.len() > 1);
        assert!(rest.iter().all(|r| text(r).contains("(`b`,`a`)")));
        assert!(rest.iter().all(|r| r.data.as_ref().unwrap().len() <= 80));
        assert_eq!(rest.iter().map(|r| r.rows).sum::<u64>(), 20);
        let all: Vec<u8> = rest.iter().flat_map(|r| r.data.clone().unwrap()).collect();
        assert!(all.starts_with(b"0\t00000000\n1\t00000001\n"));
        // Without a column list, a table with generated columns goes as SQL.
        let gen_plan = InsertPlan::new(OnDuplicate::Ignore, "d", "t", &[], Some(&cols))
            .with_generated_columns(true);
        let mut sink = |_: Request| true;
        let mut w = RequestWriter::new(100, &mut sink);
        assert_eq!(
            gen_plan
                .render_load(
                    b"INSERT INTO t VALUES (1,2)",
                    "utf8mb4",
                    &mut scratch,
                    &mut w
                )
                .unwrap(),
            None
        );
        assert_eq!(
            gen_plan
                .render_load(
                    b"INSERT INTO t (a,b) VALUES (1,2)",
                    "utf8mb4",
                    &mut scratch,
                    &mut w
                )
                .unwrap(),
            Some(1)
        );
        drop(w);
        // Without a column list or the table's columns the row width is unknown: SQL.
        let bare = InsertPlan::new(OnDuplicate::Ignore, "d", "t", &[], None);
        let mut sink = |_: Request| true;
        let mut w = RequestWriter::new(100, &mut sink);
        assert_eq!(
            bare.render_load(b"INSERT INTO t VALUES (1)", "utf8mb4", &mut scratch, &mut w)
                .unwrap(),
            None
        );
    }

    #[test]
    fn utf8_text_into_utf8mb4_tables_is_read_as_binary() {
        let cols = ["a".to_string()];
        let head = |plan: &InsertPlan, cs: &str| {
            let mut reqs = Vec::new();
            let mut sink = |r: Request| {
                reqs.push(String::from_utf8(r.sql).unwrap());
                true
            };
            let mut w = RequestWriter::new(100, &mut sink);
            plan.render_load(
                b"INSERT INTO t VALUES ('\xc3\xa9')",
                cs,
                &mut LoadScratch::default(),
                &mut w,
            )
            .unwrap()
            .unwrap();
            w.flush();
            reqs.remove(0)
        };
        let plan = InsertPlan::new(OnDuplicate::Ignore, "d", "t", &[], Some(&cols));
        assert!(head(&plan, "utf8mb4").contains(" CHARACTER SET utf8mb4 "));
        let plan = plan.with_utf8mb4_target(true);
        for cs in ["utf8mb4", "utf8", "utf8mb3"] {
            assert!(head(&plan, cs).contains(" CHARACTER SET binary "), "{cs}");
        }
        assert!(head(&plan, "latin1").contains(" CHARACTER SET latin1 "));
        assert!(head(&plan, "binary").contains(" CHARACTER SET binary "));
    }
}
