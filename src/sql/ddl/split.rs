//! The statement recognizer behind [`super::split`]: reads DDL heads from tokens, cuts ALTER
//! TABLE into its operations, asks sqlparser about column and key definitions, and renders
//! each piece from a template.

use sqlparser::ast::{AlterTableOperation, Statement, TableConstraint};

use super::lex::{Lexed, Tok, TokKind, parser_text};
use super::parse::{Change, ParsedTable, column_def, index_def, parse_alter_op, parse_statement};
use super::{AlterKind, DdlKind, DdlPiece, Part, abbreviate};
use crate::error::{DmError, codes};
use crate::sql::quote_ident;

/// Why a statement could not be split.
#[derive(Debug)]
pub(super) enum SplitError {
    /// The text is not valid (or not parsable) SQL.
    Parse(String),
    /// Valid, but not something the syncer can handle.
    Unsupported(String),
}

impl SplitError {
    pub(super) fn into_dm(self, sql: &str) -> DmError {
        match self {
            Self::Parse(why) => DmError::new(
                &codes::PARSE_SQL,
                format!("cannot parse DDL `{}`", abbreviate(sql)),
            )
            .with_cause_text(why),
            Self::Unsupported(why) => DmError::new(
                &codes::SYNCER_UNIT_HANDLE_DDL_FAILED,
                format!("cannot handle DDL `{}`", abbreviate(sql)),
            )
            .with_cause_text(why),
        }
    }
}

type R<T> = Result<T, SplitError>;

fn perr(msg: impl Into<String>) -> SplitError {
    SplitError::Parse(msg.into())
}

fn unsupported(msg: impl Into<String>) -> SplitError {
    SplitError::Unsupported(msg.into())
}

/// Words that start an ALTER TABLE table-option clause.
const TABLE_OPTIONS: &[&str] = &[
    "ENGINE",
    "AUTO_INCREMENT",
    "AVG_ROW_LENGTH",
    "CHARACTER",
    "CHARSET",
    "CHECKSUM",
    "TABLE_CHECKSUM",
    "COLLATE",
    "COMMENT",
    "COMPRESSION",
    "CONNECTION",
    "DATA",
    "DELAY_KEY_WRITE",
    "ENCRYPTION",
    "ENCRYPTED",
    "ENCRYPTION_KEY_ID",
    "IETF_QUOTES",
    "INSERT_METHOD",
    "KEY_BLOCK_SIZE",
    "MAX_ROWS",
    "MIN_ROWS",
    "PACK_KEYS",
    "PAGE_CHECKSUM",
    "PAGE_COMPRESSED",
    "PAGE_COMPRESSION_LEVEL",
    "PASSWORD",
    "ROW_FORMAT",
    "SECONDARY_ENGINE",
    "SECONDARY_ENGINE_ATTRIBUTE",
    "ENGINE_ATTRIBUTE",
    "STATS_AUTO_RECALC",
    "STATS_PERSISTENT",
    "STATS_SAMPLE_PAGES",
    "TABLESPACE",
    "TRANSACTIONAL",
    "UNION",
    "SEQUENCE",
    "AUTOEXTEND_SIZE",
];

/// Words that, followed by PARTITION, start a partition operation.
const PARTITION_VERBS: &[&str] = &[
    "ADD",
    "DROP",
    "DISCARD",
    "IMPORT",
    "TRUNCATE",
    "COALESCE",
    "REORGANIZE",
    "EXCHANGE",
    "ANALYZE",
    "CHECK",
    "OPTIMIZE",
    "REBUILD",
    "REPAIR",
    "CONVERT",
];

/// Option words of CREATE/ALTER DATABASE.
const DATABASE_OPTIONS: &[&str] = &[
    "CHARACTER",
    "CHARSET",
    "CHAR",
    "COLLATE",
    "COMMENT",
    "ENCRYPTION",
    "READ",
];

/// Reads one statement's tokens and collects its pieces.
pub(super) struct Splitter<'l, 'a> {
    lx: &'l Lexed<'a>,
    pos: usize,
    end: usize,
    default_schema: &'l str,
    pieces: Vec<DdlPiece>,
}

/// A piece's identity, before rendering.
struct Target {
    kind: DdlKind,
    schema: String,
    table: Option<String>,
    new_table: Option<(String, String)>,
    like_table: Option<(String, String)>,
}

impl Target {
    fn table(kind: DdlKind, (schema, table): &(String, String)) -> Self {
        Self {
            kind,
            schema: schema.clone(),
            table: Some(table.clone()),
            new_table: None,
            like_table: None,
        }
    }

    fn database(kind: DdlKind, schema: String) -> Self {
        Self {
            kind,
            schema,
            table: None,
            new_table: None,
            like_table: None,
        }
    }
}

fn text(s: impl Into<String>) -> Part {
    Part::Text(s.into())
}

impl<'l, 'a> Splitter<'l, 'a> {
    pub(super) fn new(lx: &'l Lexed<'a>, default_schema: &'l str) -> Self {
        let mut end = lx.toks.len();
        while end > 0 && lx.toks[end - 1].is_punct(';') {
            end -= 1;
        }
        Self {
            lx,
            pos: 0,
            end,
            default_schema,
            pieces: Vec::new(),
        }
    }

    // ---- cursor ----

    fn peek(&self) -> Option<&Tok<'a>> {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok<'a>> {
        let i = self.pos + n;
        (i < self.end).then(|| &self.lx.toks[i])
    }

    fn peek_is(&self, kw: &str) -> bool {
        self.peek().is_some_and(|t| t.is(kw))
    }

    fn peek_any(&self, kws: &[&str]) -> bool {
        self.peek().is_some_and(|t| t.is_any(kws))
    }

    fn peek_punct(&self, c: char) -> bool {
        self.peek().is_some_and(|t| t.is_punct(c))
    }

    fn eat(&mut self, kw: &str) -> bool {
        let hit = self.peek_is(kw);
        self.pos += usize::from(hit);
        hit
    }

    fn eat_any(&mut self, kws: &[&str]) -> bool {
        let hit = self.peek_any(kws);
        self.pos += usize::from(hit);
        hit
    }

    /// Eats the words `kws` if all of them come next.
    fn eat_seq(&mut self, kws: &[&str]) -> bool {
        let hit = kws
            .iter()
            .enumerate()
            .all(|(i, k)| self.peek_at(i).is_some_and(|t| t.is(k)));
        if hit {
            self.pos += kws.len();
        }
        hit
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let hit = self.peek_punct(c);
        self.pos += usize::from(hit);
        hit
    }

    /// At MariaDB's `SYSTEM VERSIONING` or `PERIOD FOR` (after ADD/DROP); not a column
    /// named `system` or `period`.
    fn at_versioning_clause(&self) -> bool {
        let next = |kw: &str| self.peek_at(1).is_some_and(|t| t.is(kw));
        (self.peek_is("SYSTEM") && next("VERSIONING")) || (self.peek_is("PERIOD") && next("FOR"))
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("`{}`", t.text),
            None => "the end".to_string(),
        }
    }

    fn expect(&mut self, kw: &str) -> R<()> {
        if self.eat(kw) {
            Ok(())
        } else {
            Err(perr(format!("expected {kw}, found {}", self.found())))
        }
    }

    fn expect_punct(&mut self, c: char) -> R<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(perr(format!("expected `{c}`, found {}", self.found())))
        }
    }

    fn expect_end(&self) -> R<()> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(perr(format!("unexpected `{}`", t.text))),
        }
    }

    fn ident(&mut self) -> R<String> {
        match self.peek().and_then(Tok::ident) {
            Some(id) => {
                self.pos += 1;
                Ok(id)
            }
            None => Err(perr(format!("expected a name, found {}", self.found()))),
        }
    }

    /// `[schema.]name`, the schema defaulted.
    fn object_name(&mut self) -> R<(String, String)> {
        let first = self.ident()?;
        if self.eat_punct('.') {
            let second = self.ident()?;
            Ok((first, second))
        } else {
            Ok((self.schema_or_default(None)?, first))
        }
    }

    fn schema_or_default(&self, schema: Option<String>) -> R<String> {
        match schema {
            Some(s) => Ok(s),
            None if !self.default_schema.is_empty() => Ok(self.default_schema.to_string()),
            None => Err(unsupported(
                "no database selected for an unqualified table name",
            )),
        }
    }

    /// The verbatim source text of tokens `[a, b)`; empty when the range is.
    fn slice(&self, a: usize, b: usize) -> R<String> {
        if a >= b {
            return Ok(String::new());
        }
        self.lx.slice(a, b - 1).map(str::to_string).map_err(perr)
    }

    /// `" " + slice` or nothing.
    fn spaced(&self, a: usize, b: usize) -> R<String> {
        let s = self.slice(a, b)?;
        Ok(if s.is_empty() { s } else { format!(" {s}") })
    }

    fn parser_text(&self, a: usize, b: usize) -> String {
        parser_text(&self.lx.toks[a..b])
    }

    fn push(&mut self, t: Target, template: Vec<Part>, change: Change) {
        let mut p = DdlPiece {
            kind: t.kind,
            schema: t.schema,
            table: t.table,
            new_table: t.new_table,
            like_table: t.like_table,
            sql: String::new(),
            template,
            change,
        };
        p.sql = p.render();
        self.pieces.push(p);
    }

    // ---- statements ----

    pub(super) fn run(mut self) -> R<Vec<DdlPiece>> {
        if self.lx.toks[..self.end].iter().any(|t| t.is_punct(';')) {
            return Err(perr("more than one statement"));
        }
        if self.eat("CREATE") {
            let or_replace = self.eat_seq(&["OR", "REPLACE"]);
            if self.eat("TABLE") {
                self.create_table(or_replace)?;
            } else if self.eat_any(&["DATABASE", "SCHEMA"]) {
                self.create_database(or_replace)?;
            } else {
                let kind = ["UNIQUE", "FULLTEXT", "SPATIAL"]
                    .into_iter()
                    .find(|k| self.eat(k));
                self.eat_any(&["ONLINE", "OFFLINE"]);
                if !self.eat("INDEX") {
                    return Err(unsupported(format!(
                        "CREATE {} is not supported",
                        self.found()
                    )));
                }
                self.create_index(kind, or_replace)?;
            }
        } else if self.eat("DROP") {
            if self.eat_any(&["TABLE", "TABLES"]) {
                self.drop_tables()?;
            } else if self.eat_any(&["DATABASE", "SCHEMA"]) {
                self.eat_seq(&["IF", "EXISTS"]);
                let name = self.ident()?;
                self.expect_end()?;
                self.push_drop_database(name);
            } else if self.eat("INDEX") {
                self.drop_index()?;
            } else {
                return Err(unsupported(format!(
                    "DROP {} is not supported",
                    self.found()
                )));
            }
        } else if self.eat("ALTER") {
            self.eat_any(&["ONLINE", "OFFLINE"]);
            let ignore = self.eat("IGNORE");
            if self.eat("TABLE") {
                self.alter_table(ignore)?;
            } else if !ignore && self.eat_any(&["DATABASE", "SCHEMA"]) {
                self.alter_database()?;
            } else {
                return Err(unsupported(format!(
                    "ALTER {} is not supported",
                    self.found()
                )));
            }
        } else if self.eat("RENAME") {
            if !self.eat_any(&["TABLE", "TABLES"]) {
                return Err(unsupported(format!(
                    "RENAME {} is not supported",
                    self.found()
                )));
            }
            self.rename_tables()?;
        } else if self.eat("TRUNCATE") {
            self.eat("TABLE");
            let name = self.object_name()?;
            self.expect_end()?;
            let t = Target::table(DdlKind::TruncateTable, &name);
            self.push(t, vec![text("TRUNCATE TABLE "), Part::Table], Change::None);
        } else {
            return Err(unsupported(format!(
                "{} is not a DDL dm-rs handles",
                self.found()
            )));
        }
        Ok(self.pieces)
    }

    fn push_drop_database(&mut self, name: String) {
        let t = Target::database(DdlKind::DropDatabase, name);
        self.push(
            t,
            vec![text("DROP DATABASE IF EXISTS "), Part::Schema],
            Change::None,
        );
    }

    fn push_drop_table(&mut self, name: &(String, String)) {
        let t = Target::table(DdlKind::DropTable, name);
        self.push(
            t,
            vec![text("DROP TABLE IF EXISTS "), Part::Table],
            Change::None,
        );
    }

    /// Checks `[[DEFAULT] option [=] value]...` of CREATE/ALTER DATABASE from the cursor on.
    fn database_options(&mut self) -> R<()> {
        while self.peek().is_some() {
            self.eat("DEFAULT");
            if !self.eat_any(DATABASE_OPTIONS) {
                return Err(perr(format!("unknown database option {}", self.found())));
            }
            // `CHARACTER SET`, `CHAR SET`, `READ ONLY`
            self.eat_any(&["SET", "ONLY"]);
            self.eat_punct('=');
            match self.peek() {
                Some(t) if t.kind != TokKind::Punct => self.pos += 1,
                _ => {
                    return Err(perr(format!(
                        "expected an option value, found {}",
                        self.found()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The character set options of CREATE/ALTER DATABASE from token `rest` on.
    fn database_charset(&self, rest: usize) -> Change {
        match charset_options(&self.lx.toks[rest..self.end]) {
            (None, None) => Change::None,
            (charset, collation) => Change::Charset {
                charset,
                collation,
                convert: false,
            },
        }
    }

    fn create_database(&mut self, or_replace: bool) -> R<()> {
        self.eat_seq(&["IF", "NOT", "EXISTS"]);
        let name = self.ident()?;
        let rest = self.pos;
        self.database_options()?;
        if or_replace {
            self.push_drop_database(name.clone());
        }
        let opts = self.spaced(rest, self.end)?;
        let change = self.database_charset(rest);
        let t = Target::database(DdlKind::CreateDatabase, name);
        self.push(
            t,
            vec![
                text("CREATE DATABASE IF NOT EXISTS "),
                Part::Schema,
                text(opts),
            ],
            change,
        );
        Ok(())
    }

    fn alter_database(&mut self) -> R<()> {
        let named = self.peek().is_some_and(|t| {
            t.kind == TokKind::Quoted
                || (t.kind == TokKind::Word && !t.is_any(DATABASE_OPTIONS) && !t.is("DEFAULT"))
        });
        let name = if named { Some(self.ident()?) } else { None };
        let name = self.schema_or_default(name)?;
        let rest = self.pos;
        if self.peek().is_none() {
            return Err(perr("ALTER DATABASE without options"));
        }
        self.database_options()?;
        let opts = self.spaced(rest, self.end)?;
        let t = Target::database(DdlKind::AlterDatabase, name);
        let change = self.database_charset(rest);
        self.push(
            t,
            vec![text("ALTER DATABASE "), Part::Schema, text(opts)],
            change,
        );
        Ok(())
    }

    fn drop_tables(&mut self) -> R<()> {
        self.eat_seq(&["IF", "EXISTS"]);
        let mut names = vec![self.object_name()?];
        while self.eat_punct(',') {
            names.push(self.object_name()?);
        }
        self.eat_any(&["RESTRICT", "CASCADE"]);
        self.expect_end()?;
        for n in &names {
            self.push_drop_table(n);
        }
        Ok(())
    }

    fn rename_tables(&mut self) -> R<()> {
        self.eat_seq(&["IF", "EXISTS"]);
        loop {
            let old = self.object_name()?;
            if self.eat("WAIT") {
                self.pos += 1;
            } else {
                self.eat("NOWAIT");
            }
            self.expect("TO")?;
            let new = self.object_name()?;
            let mut t = Target::table(DdlKind::RenameTable, &old);
            t.new_table = Some(new);
            self.push(
                t,
                vec![
                    text("RENAME TABLE "),
                    Part::Table,
                    text(" TO "),
                    Part::NewTable,
                ],
                Change::None,
            );
            if !self.eat_punct(',') {
                break;
            }
        }
        self.expect_end()
    }

    /// CREATE TABLE (after `CREATE [OR REPLACE] TABLE`).
    fn create_table(&mut self, or_replace: bool) -> R<()> {
        self.eat_seq(&["IF", "NOT", "EXISTS"]);
        let name = self.object_name()?;
        let like = if self.eat("LIKE") {
            Some(self.object_name()?)
        } else if self.peek_punct('(') && self.peek_at(1).is_some_and(|t| t.is("LIKE")) {
            self.pos += 2;
            let like = self.object_name()?;
            self.expect_punct(')')?;
            Some(like)
        } else {
            None
        };
        if or_replace {
            self.push_drop_table(&name);
        }
        if let Some(like) = like {
            self.expect_end()?;
            let mut t = Target::table(DdlKind::CreateTableLike, &name);
            t.like_table = Some(like);
            let template = vec![
                text("CREATE TABLE IF NOT EXISTS "),
                Part::Table,
                text(" LIKE "),
                Part::LikeTable,
            ];
            self.push(t, template, Change::None);
            return Ok(());
        }
        let body = self.pos;
        let table = self.table_body()?;
        let rest = self.spaced(body, self.end)?;
        let t = Target::table(DdlKind::CreateTable, &name);
        self.push(
            t,
            vec![text("CREATE TABLE IF NOT EXISTS "), Part::Table, text(rest)],
            Change::CreateTable(Box::new(table)),
        );
        Ok(())
    }

    /// For [`super::parse_create_table`]: the whole statement must be a CREATE TABLE with a
    /// column list; its name keeps an absent schema absent.
    pub(super) fn create_table_only(mut self) -> R<(Option<String>, String, ParsedTable)> {
        if !self.eat("CREATE") {
            return Err(perr("not a CREATE TABLE statement"));
        }
        self.eat_seq(&["OR", "REPLACE"]);
        if !self.eat("TABLE") {
            return Err(perr("not a CREATE TABLE statement"));
        }
        self.eat_seq(&["IF", "NOT", "EXISTS"]);
        let first = self.ident()?;
        let (schema, name) = if self.eat_punct('.') {
            (Some(first), self.ident()?)
        } else {
            (None, first)
        };
        let table = self.table_body()?;
        Ok((schema, name, table))
    }

    /// The `(definitions) options` of CREATE TABLE, from the cursor to the end.
    fn table_body(&mut self) -> R<ParsedTable> {
        let open = self.pos;
        if !self.peek_punct('(') || self.peek_at(1).is_some_and(|t| t.is("SELECT")) {
            return Err(unsupported(
                "CREATE TABLE without a column list (CREATE TABLE ... SELECT) is not supported",
            ));
        }
        let close = self
            .lx
            .matching_paren(open, self.end)
            .ok_or_else(|| perr("unbalanced parentheses"))?;
        let tail = &self.lx.toks[close + 1..self.end];
        let mut depth = 0i32;
        for t in tail {
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') {
                depth -= 1;
            } else if t.is("SELECT") || (depth == 0 && t.is_any(&["AS", "TABLE", "VALUES"])) {
                // Partition definitions hold VALUES only inside parentheses.
                return Err(unsupported("CREATE TABLE ... SELECT is not supported"));
            }
        }
        let (charset, collation) = charset_options(tail);
        let sql = format!("CREATE TABLE `t` {}", self.parser_text(open, close + 1));
        let ct = match parse_statement(&sql).map_err(perr)? {
            Statement::CreateTable(ct) => ct,
            other => return Err(perr(format!("parsed as another statement: {other}"))),
        };
        self.pos = self.end;
        Ok(ParsedTable::from_create(ct, charset, collation))
    }

    /// CREATE INDEX (after `CREATE [OR REPLACE] [UNIQUE|FULLTEXT|SPATIAL] INDEX`).
    fn create_index(&mut self, kind: Option<&str>, or_replace: bool) -> R<()> {
        self.eat_seq(&["IF", "NOT", "EXISTS"]);
        let index = self.ident()?;
        let using = if self.eat_any(&["USING", "TYPE"]) {
            Some(self.ident()?)
        } else {
            None
        };
        self.expect("ON")?;
        let name = self.object_name()?;
        let open = self.pos;
        if !self.peek_punct('(') {
            return Err(perr(format!("expected `(`, found {}", self.found())));
        }
        let close = self
            .lx
            .matching_paren(open, self.end)
            .ok_or_else(|| perr("unbalanced parentheses"))?;
        let kw = kind
            .map(|k| format!("{} ", k.to_ascii_uppercase()))
            .unwrap_or_default();
        let spec = format!("ADD {kw}INDEX `i` {}", self.parser_text(open, close + 1));
        let mut def = match parse_alter_op(&spec).map_err(perr)? {
            AlterTableOperation::AddConstraint { constraint, .. } => index_def(&constraint),
            _ => None,
        }
        .ok_or_else(|| perr("not an index definition"))?;
        def.name = Some(index.clone());
        if or_replace {
            self.push_drop_index(&name, &index);
        }
        let mut rest = format!(" {}", self.slice(open, close + 1)?);
        if let Some(u) = using {
            rest.push_str(" USING ");
            rest.push_str(&u);
        }
        rest.push_str(&self.spaced(close + 1, self.end)?);
        let head = format!("CREATE {kw}INDEX IF NOT EXISTS {} ON ", quote_ident(&index));
        let t = Target::table(DdlKind::CreateIndex, &name);
        self.push(
            t,
            vec![text(head), Part::Table, text(rest)],
            Change::AddIndex(def),
        );
        Ok(())
    }

    fn push_drop_index(&mut self, name: &(String, String), index: &str) {
        let head = format!("DROP INDEX IF EXISTS {} ON ", quote_ident(index));
        let change = drop_index_change(index);
        let t = Target::table(DdlKind::DropIndex, name);
        self.push(t, vec![text(head), Part::Table], change);
    }

    /// DROP INDEX (after `DROP INDEX`).
    fn drop_index(&mut self) -> R<()> {
        self.eat_seq(&["IF", "EXISTS"]);
        let index = self.ident()?;
        self.expect("ON")?;
        let name = self.object_name()?;
        // Only ALGORITHM/LOCK options may follow; they are dropped like in ALTER TABLE.
        while self.peek().is_some() {
            if !self.eat_any(&["ALGORITHM", "LOCK"]) {
                return Err(perr(format!("unexpected {}", self.found())));
            }
            self.eat_punct('=');
            self.ident()?;
        }
        self.push_drop_index(&name, &index);
        Ok(())
    }

    // ---- ALTER TABLE ----

    fn alter_table(&mut self, ignore: bool) -> R<()> {
        self.eat_seq(&["IF", "EXISTS"]);
        let mut cur = self.object_name()?;
        let head = if ignore {
            "ALTER IGNORE TABLE "
        } else {
            "ALTER TABLE "
        };
        let start = self.pos;
        let end = self.end;
        let cut = self.partition_start(start, end);
        let mut specs_end = cut;
        if cut < end && cut > start && self.lx.toks[cut - 1].is_punct(',') {
            specs_end = cut - 1;
        }
        if specs_end > start {
            for (a, b) in self.lx.split_commas(start, specs_end) {
                if a == b {
                    return Err(perr("empty ALTER TABLE clause"));
                }
                self.pos = a;
                self.end = b;
                let r = self.alter_spec(head, &mut cur);
                self.end = end;
                r?;
            }
        }
        if cut < end {
            let rest = self.spaced(cut, end)?;
            let t = Target::table(DdlKind::AlterTable(AlterKind::Partition), &cur);
            self.push(t, vec![text(head), Part::Table, text(rest)], Change::None);
        }
        self.pos = end;
        Ok(())
    }

    /// Where the partition clauses of an ALTER TABLE start (`end` if none): `PARTITION BY`,
    /// `REMOVE PARTITIONING`, or `<verb> PARTITION` at the start of a clause. PARTITION is
    /// reserved, so an unquoted one at depth 0 is always such a clause.
    fn partition_start(&self, start: usize, end: usize) -> usize {
        let toks = &self.lx.toks;
        let mut depth = 0i32;
        for i in start..end {
            let t = &toks[i];
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') {
                depth -= 1;
            }
            if depth != 0 || t.kind != TokKind::Word {
                continue;
            }
            let next = toks.get(i + 1).filter(|_| i + 1 < end);
            let clause_start = i == start || toks[i - 1].is_punct(',');
            if (t.is("PARTITION") && next.is_some_and(|n| n.is("BY")))
                || (t.is("REMOVE") && next.is_some_and(|n| n.is("PARTITIONING")))
                || (clause_start
                    && t.is_any(PARTITION_VERBS)
                    && next.is_some_and(|n| n.is("PARTITION")))
            {
                return i;
            }
        }
        end
    }

    /// One ALTER TABLE clause `[pos, end)`; `cur` is the table's name so far (a RENAME clause
    /// changes it for the clauses after it, as DM does).
    fn alter_spec(&mut self, head: &str, cur: &mut (String, String)) -> R<()> {
        let a = self.pos;
        let end = self.end;
        let verbatim = |this: &mut Self, kind: AlterKind, change: Change| -> R<()> {
            let rest = this.spaced(a, end)?;
            let t = Target::table(DdlKind::AlterTable(kind), cur);
            this.push(t, vec![text(head), Part::Table, text(rest)], change);
            Ok(())
        };
        let canonical = |this: &mut Self, kind: AlterKind, rest: String, change: Change| {
            let t = Target::table(DdlKind::AlterTable(kind), cur);
            this.push(t, vec![text(head), Part::Table, text(rest)], change);
        };
        if self.eat("ADD") {
            let column_kw = self.eat("COLUMN");
            if !column_kw && self.at_versioning_clause() {
                return verbatim(self, AlterKind::Other, Change::None);
            }
            let key_words = [
                "INDEX",
                "KEY",
                "UNIQUE",
                "PRIMARY",
                "FULLTEXT",
                "SPATIAL",
                "CONSTRAINT",
                "FOREIGN",
                "CHECK",
            ];
            if !column_kw && self.peek_any(&key_words) {
                return self.add_constraint(a, head, cur);
            }
            self.eat_seq(&["IF", "NOT", "EXISTS"]);
            if self.peek_punct('(') {
                let open = self.pos;
                let close = self.lx.matching_paren(open, end);
                if close != Some(end - 1) {
                    return Err(perr("expected `ADD (column, ...)`"));
                }
                for (x, y) in self.lx.split_commas(open + 1, end - 1) {
                    if x == y {
                        return Err(perr("empty column definition"));
                    }
                    self.add_column(head, cur, x, y)?;
                }
                return Ok(());
            }
            let def = self.pos;
            return self.add_column(head, cur, def, end);
        }
        if self.eat("DROP") {
            if self.eat_any(&["INDEX", "KEY"]) {
                self.eat_seq(&["IF", "EXISTS"]);
                let index = self.ident()?;
                self.expect_end()?;
                let kind = if index.eq_ignore_ascii_case("PRIMARY") {
                    AlterKind::DropPrimaryKey
                } else {
                    AlterKind::DropIndex
                };
                let rest = format!(" DROP INDEX IF EXISTS {}", quote_ident(&index));
                canonical(self, kind, rest, drop_index_change(&index));
                return Ok(());
            }
            if self.eat("PRIMARY") {
                self.expect("KEY")?;
                self.expect_end()?;
                return verbatim(self, AlterKind::DropPrimaryKey, Change::DropPrimaryKey);
            }
            if self.eat("FOREIGN") {
                self.expect("KEY")?;
                self.eat_seq(&["IF", "EXISTS"]);
                self.ident()?;
                self.expect_end()?;
                return verbatim(self, AlterKind::DropForeignKey, Change::None);
            }
            if self.eat("CONSTRAINT") {
                self.eat_seq(&["IF", "EXISTS"]);
                let name = self.ident()?;
                self.expect_end()?;
                return verbatim(
                    self,
                    AlterKind::DropConstraint,
                    Change::DropConstraint(name),
                );
            }
            if self.eat("CHECK") {
                self.ident()?;
                self.expect_end()?;
                return verbatim(self, AlterKind::Other, Change::None);
            }
            if self.at_versioning_clause() {
                return verbatim(self, AlterKind::Other, Change::None);
            }
            self.eat("COLUMN");
            self.eat_seq(&["IF", "EXISTS"]);
            let column = self.ident()?;
            self.eat_any(&["RESTRICT", "CASCADE"]);
            self.expect_end()?;
            let rest = format!(" DROP COLUMN IF EXISTS {}", quote_ident(&column));
            canonical(
                self,
                AlterKind::DropColumn,
                rest,
                Change::DropColumn(column),
            );
            return Ok(());
        }
        if self.eat("MODIFY") {
            self.eat("COLUMN");
            self.eat_seq(&["IF", "EXISTS"]);
            let spec = format!("MODIFY COLUMN {}", self.parser_text(self.pos, end));
            let change = match parse_alter_op(&spec).map_err(perr)? {
                AlterTableOperation::ModifyColumn {
                    col_name,
                    data_type,
                    options,
                    column_position,
                } => Change::ModifyColumn {
                    old: col_name.value.clone(),
                    def: Box::new(column_def(col_name, data_type, options)),
                    position: column_position.map(Into::into),
                },
                other => return Err(perr(format!("parsed as another operation: {other}"))),
            };
            return verbatim(self, AlterKind::ModifyColumn, change);
        }
        if self.eat("CHANGE") {
            self.eat("COLUMN");
            self.eat_seq(&["IF", "EXISTS"]);
            let old = self.ident()?;
            let spec = format!(
                "CHANGE COLUMN {} {}",
                quote_ident(&old),
                self.parser_text(self.pos, end)
            );
            let change = match parse_alter_op(&spec).map_err(perr)? {
                AlterTableOperation::ChangeColumn {
                    new_name,
                    data_type,
                    options,
                    column_position,
                    ..
                } => Change::ModifyColumn {
                    old,
                    def: Box::new(column_def(new_name, data_type, options)),
                    position: column_position.map(Into::into),
                },
                other => return Err(perr(format!("parsed as another operation: {other}"))),
            };
            return verbatim(self, AlterKind::ChangeColumn, change);
        }
        if self.eat("RENAME") {
            if self.eat("COLUMN") {
                let old = self.ident()?;
                self.expect("TO")?;
                let new = self.ident()?;
                self.expect_end()?;
                return verbatim(
                    self,
                    AlterKind::RenameColumn,
                    Change::RenameColumn { old, new },
                );
            }
            if self.eat_any(&["INDEX", "KEY"]) {
                let old = self.ident()?;
                self.expect("TO")?;
                let new = self.ident()?;
                self.expect_end()?;
                return verbatim(
                    self,
                    AlterKind::RenameIndex,
                    Change::RenameIndex { old, new },
                );
            }
            if !self.eat_any(&["TO", "AS"]) {
                self.eat_punct('=');
            }
            let new = self.object_name()?;
            self.expect_end()?;
            let mut t = Target::table(DdlKind::AlterTable(AlterKind::RenameTable), cur);
            t.new_table = Some(new.clone());
            self.push(
                t,
                vec![text(head), Part::Table, text(" RENAME TO "), Part::NewTable],
                Change::None,
            );
            *cur = new;
            return Ok(());
        }
        if self.peek_is("ALTER") {
            return verbatim(self, AlterKind::AlterColumn, Change::None);
        }
        if self.eat_any(&["ALGORITHM", "LOCK"]) {
            self.eat_punct('=');
            self.ident()?;
            return self.expect_end();
        }
        if self.eat_seq(&["WITH", "VALIDATION"]) || self.eat_seq(&["WITHOUT", "VALIDATION"]) {
            return self.expect_end();
        }
        if self.eat_seq(&["CONVERT", "TO"]) {
            let (charset, collation) = charset_options(&self.lx.toks[self.pos..end]);
            if charset.is_none() {
                return Err(perr("expected CONVERT TO CHARACTER SET"));
            }
            let change = Change::Charset {
                charset,
                collation,
                convert: true,
            };
            return verbatim(self, AlterKind::ConvertCharset, change);
        }
        if self.peek_any(TABLE_OPTIONS) || self.peek_is("DEFAULT") {
            let (charset, collation) = charset_options(&self.lx.toks[a..end]);
            let change = if charset.is_some() || collation.is_some() {
                Change::Charset {
                    charset,
                    collation,
                    convert: false,
                }
            } else {
                Change::None
            };
            return verbatim(self, AlterKind::TableOptions, change);
        }
        if self.peek_any(&["FORCE", "ORDER", "ENABLE", "DISABLE", "DISCARD", "IMPORT"]) {
            return verbatim(self, AlterKind::Other, Change::None);
        }
        Err(perr(format!(
            "unknown ALTER TABLE clause `{}`",
            self.slice(a, end)?
        )))
    }

    /// One ADD COLUMN definition `[def, end)`.
    fn add_column(&mut self, head: &str, cur: &(String, String), def: usize, end: usize) -> R<()> {
        let spec = format!("ADD COLUMN {}", self.parser_text(def, end));
        let change = match parse_alter_op(&spec).map_err(perr)? {
            AlterTableOperation::AddColumn {
                column_def,
                column_position,
                ..
            } => Change::AddColumn {
                def: Box::new(column_def),
                position: column_position.map(Into::into),
            },
            other => return Err(perr(format!("parsed as another operation: {other}"))),
        };
        let rest = format!(" ADD COLUMN IF NOT EXISTS {}", self.slice(def, end)?);
        let t = Target::table(DdlKind::AlterTable(AlterKind::AddColumn), cur);
        self.push(t, vec![text(head), Part::Table, text(rest)], change);
        Ok(())
    }

    /// `ADD [CONSTRAINT [name]] {INDEX|KEY|UNIQUE|PRIMARY KEY|FULLTEXT|SPATIAL|FOREIGN KEY|CHECK}`
    /// starting at token `a` (the ADD).
    fn add_constraint(&mut self, a: usize, head: &str, cur: &(String, String)) -> R<()> {
        let end = self.end;
        let toks = &self.lx.toks;
        // Find and remove `IF NOT EXISTS` in the clause head for sqlparser.
        let first_paren = (a..end).find(|&i| toks[i].is_punct('(')).unwrap_or(end);
        let ine = (a + 1..first_paren.saturating_sub(2))
            .find(|&i| toks[i].is("IF") && toks[i + 1].is("NOT") && toks[i + 2].is("EXISTS"));
        let parts: Vec<Tok<'a>> = (a + 1..end)
            .filter(|i| ine.is_none_or(|x| !(x..x + 3).contains(i)))
            .map(|i| toks[i])
            .collect();
        let spec = format!("ADD {}", parser_text(&parts));
        let constraint = match parse_alter_op(&spec).map_err(perr)? {
            AlterTableOperation::AddConstraint { constraint, .. } => constraint,
            other => return Err(perr(format!("parsed as another operation: {other}"))),
        };
        let kind = match &constraint {
            TableConstraint::PrimaryKey(_) => AlterKind::AddPrimaryKey,
            TableConstraint::Unique(_) => AlterKind::AddUniqueKey,
            TableConstraint::Index(_) | TableConstraint::FulltextOrSpatial(_) => {
                AlterKind::AddIndex
            }
            TableConstraint::ForeignKey(_) => AlterKind::AddForeignKey,
            _ => AlterKind::Other,
        };
        let def = index_def(&constraint);
        // A named plain or UNIQUE index (no CONSTRAINT) gets IF NOT EXISTS.
        let mut i = a + 1;
        let mut rest = None;
        if matches!(kind, AlterKind::AddIndex | AlterKind::AddUniqueKey)
            && toks[i].is_any(&["INDEX", "KEY", "UNIQUE"])
        {
            let unique = toks[i].is("UNIQUE");
            i += 1;
            if unique && i < end && toks[i].is_any(&["INDEX", "KEY"]) {
                i += 1;
            }
            if ine == Some(i) {
                i += 3;
            }
            let named = i < end
                && matches!(toks[i].kind, TokKind::Word | TokKind::Quoted)
                && !toks[i].is_any(&["USING", "TYPE"]);
            if named {
                let kw = if unique { "UNIQUE INDEX" } else { "INDEX" };
                rest = Some(format!(" ADD {kw} IF NOT EXISTS {}", self.slice(i, end)?));
            }
        }
        let rest = match rest {
            Some(r) => r,
            None => self.spaced(a, end)?,
        };
        let change = def.map_or(Change::None, Change::AddIndex);
        let t = Target::table(DdlKind::AlterTable(kind), cur);
        self.push(t, vec![text(head), Part::Table, text(rest)], change);
        self.pos = end;
        Ok(())
    }
}

fn drop_index_change(index: &str) -> Change {
    if index.eq_ignore_ascii_case("PRIMARY") {
        Change::DropPrimaryKey
    } else {
        Change::DropIndex(index.to_string())
    }
}

/// `[DEFAULT] {CHARACTER SET|CHARSET|CHAR SET} [=] x` and `[DEFAULT] COLLATE [=] y` among
/// `toks` (outside parentheses), lower-cased.
fn charset_options(toks: &[Tok<'_>]) -> (Option<String>, Option<String>) {
    let mut charset = None;
    let mut collation = None;
    let mut depth = 0i32;
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth -= 1;
        }
        let is_next = |k: &str| toks.get(i + 1).is_some_and(|n| n.is(k));
        let value_at = if depth != 0 {
            None
        } else if t.is("CHARSET") || t.is("COLLATE") {
            Some(i + 1)
        } else if (t.is("CHARACTER") || t.is("CHAR")) && is_next("SET") {
            Some(i + 2)
        } else {
            None
        };
        if let Some(mut v) = value_at {
            if toks.get(v).is_some_and(|n| n.is_punct('=')) {
                v += 1;
            }
            let value = toks
                .get(v)
                .and_then(Tok::value)
                .map(|s| s.to_ascii_lowercase())
                .filter(|s| s != "default");
            if t.is("COLLATE") {
                collation = value.or(collation);
            } else {
                charset = value.or(charset);
            }
            i = v + 1;
            continue;
        }
        i += 1;
    }
    (charset, collation)
}
