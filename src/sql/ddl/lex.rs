//! A small MySQL lexer for DDL text, and the token-level helpers [`super`] builds on.
//!
//! sqlparser's own tokenizer does not keep byte offsets and drops MariaDB's `/*M!...*/`
//! executable comments, while the DDL splitter must copy the user's text verbatim into the
//! pieces it renders (sqlparser's `Display` is not MySQL-exact: it drops quotes in `AFTER` and
//! does not re-escape quotes in `COMMENT`). So this lexer keeps, for every token, its raw text
//! and byte span, drops plain comments and inlines the content of `/*!NNNNN ... */` and
//! `/*M!NNNNNN ... */` comments (both servers execute it), remembering which executable comment
//! a token came from so that verbatim slices never cut one in half.
//!
//! [`parser_text`] rebuilds text for sqlparser from tokens, rewriting the MySQL/MariaDB column
//! and index attributes sqlparser 0.63 does not accept into ones it does (or dropping them):
//! that text is only ever parsed to learn the schema change, never sent to a server.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokKind {
    /// An unquoted word: keyword or identifier.
    Word,
    /// A backquoted identifier.
    Quoted,
    /// A string literal (`'..'`, `".."`, and `b'..'`/`x'..'`/`n'..'` forms).
    Str,
    /// A number literal.
    Num,
    /// One punctuation character.
    Punct,
}

/// One token with its raw text and byte span in the source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tok<'a> {
    pub kind: TokKind,
    /// The raw text (quotes included).
    pub text: &'a str,
    pub start: usize,
    pub end: usize,
    /// Whitespace or a comment came before this token.
    pub space_before: bool,
    /// Index of the executable comment (`/*!...*/`) holding this token.
    pub group: Option<usize>,
}

impl Tok<'_> {
    /// Whether this is the unquoted word `kw` (ASCII case-insensitive).
    pub fn is(&self, kw: &str) -> bool {
        self.kind == TokKind::Word && self.text.eq_ignore_ascii_case(kw)
    }

    /// Whether this is the unquoted word equal to one of `kws`.
    pub fn is_any(&self, kws: &[&str]) -> bool {
        kws.iter().any(|k| self.is(k))
    }

    /// Whether this is the punctuation character `c`.
    pub fn is_punct(&self, c: char) -> bool {
        self.kind == TokKind::Punct && self.text.len() == c.len_utf8() && self.text.starts_with(c)
    }

    /// The identifier this token names (a word, or a backquoted name unquoted).
    pub fn ident(&self) -> Option<String> {
        match self.kind {
            TokKind::Word => Some(self.text.to_string()),
            TokKind::Quoted => Some(self.text[1..self.text.len() - 1].replace("``", "`")),
            _ => None,
        }
    }

    /// An option value: identifier, string (unescaped) or number.
    pub fn value(&self) -> Option<String> {
        match self.kind {
            TokKind::Word | TokKind::Quoted => self.ident(),
            TokKind::Str => Some(unescape_str(self.text)),
            TokKind::Num => Some(self.text.to_string()),
            TokKind::Punct => None,
        }
    }
}

/// A lexed statement.
#[derive(Debug)]
pub(crate) struct Lexed<'a> {
    pub src: &'a str,
    pub toks: Vec<Tok<'a>>,
    /// Byte spans of the executable comments, indexed by [`Tok::group`].
    pub groups: Vec<(usize, usize)>,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// A lazy lexer, so that [`super::classify`] can stop after a few words.
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    space: bool,
    group: Option<usize>,
    groups: Vec<(usize, usize)>,
    failed: bool,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            space: false,
            group: None,
            groups: Vec::new(),
            failed: false,
        }
    }

    /// Ends of a quoted run starting at `start` (which holds the quote byte `q`): the index
    /// one past the closing quote. Backslash escapes apply to strings, not to backquotes.
    fn quoted_end(&self, start: usize, q: u8) -> Result<usize, String> {
        let b = self.src.as_bytes();
        let mut i = start + 1;
        while i < b.len() {
            match b[i] {
                b'\\' if q != b'`' => i += 2,
                c if c == q => {
                    if b.get(i + 1) == Some(&q) {
                        i += 2;
                    } else {
                        return Ok(i + 1);
                    }
                }
                _ => i += 1,
            }
        }
        Err(format!("unterminated quoted text starting at byte {start}"))
    }

    fn next_tok(&mut self) -> Result<Option<Tok<'a>>, String> {
        let b = self.src.as_bytes();
        loop {
            let i = self.pos;
            let Some(&c) = b.get(i) else {
                if let Some(g) = self.group {
                    return Err(format!(
                        "unterminated executable comment starting at byte {}",
                        self.groups[g].0
                    ));
                }
                return Ok(None);
            };
            let next = b.get(i + 1).copied();
            if c.is_ascii_whitespace() {
                self.pos += 1;
                self.space = true;
                continue;
            }
            let dash_comment = c == b'-'
                && next == Some(b'-')
                && b.get(i + 2)
                    .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control());
            if c == b'#' || dash_comment {
                self.pos = self.src[i..].find('\n').map_or(b.len(), |p| i + p + 1);
                self.space = true;
                continue;
            }
            if c == b'/' && next == Some(b'*') {
                let rest = &b[i + 2..];
                let exec = if rest.first() == Some(&b'!') {
                    Some(1)
                } else if rest.starts_with(b"M!") {
                    Some(2)
                } else {
                    None
                };
                match exec {
                    Some(skip) if self.group.is_none() => {
                        let mut j = i + 2 + skip;
                        let digits = b[j..]
                            .iter()
                            .take(6)
                            .take_while(|c| c.is_ascii_digit())
                            .count();
                        j += digits;
                        self.group = Some(self.groups.len());
                        self.groups.push((i, usize::MAX));
                        self.pos = j;
                    }
                    _ => {
                        let Some(p) = self.src[i + 2..].find("*/") else {
                            return Err(format!("unterminated comment starting at byte {i}"));
                        };
                        self.pos = i + 2 + p + 2;
                    }
                }
                self.space = true;
                continue;
            }
            if c == b'*'
                && next == Some(b'/')
                && let Some(g) = self.group.take()
            {
                self.groups[g].1 = i + 2;
                self.pos = i + 2;
                self.space = true;
                continue;
            }
            let (kind, end) = match c {
                b'\'' | b'"' => (TokKind::Str, self.quoted_end(i, c)?),
                b'`' => (TokKind::Quoted, self.quoted_end(i, c)?),
                b'0'..=b'9' => {
                    let mut j = i;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    if b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
                        j += 1;
                        while j < b.len() && b[j].is_ascii_digit() {
                            j += 1;
                        }
                    }
                    if matches!(b.get(j), Some(b'e' | b'E')) {
                        let k = j + 1 + usize::from(matches!(b.get(j + 1), Some(b'+' | b'-')));
                        if b.get(k).is_some_and(u8::is_ascii_digit) {
                            j = k;
                            while j < b.len() && b[j].is_ascii_digit() {
                                j += 1;
                            }
                        }
                    }
                    if b.get(j).is_some_and(|&c| is_word_byte(c)) {
                        // `0x1F`, `1abc`: a hex number or an identifier starting with digits.
                        while j < b.len() && is_word_byte(b[j]) {
                            j += 1;
                        }
                        let word = &self.src[i..j];
                        let hex = word.len() > 2
                            && (word.starts_with("0x") || word.starts_with("0b"))
                            && word[2..].bytes().all(|c| c.is_ascii_hexdigit());
                        (if hex { TokKind::Num } else { TokKind::Word }, j)
                    } else {
                        (TokKind::Num, j)
                    }
                }
                c if is_word_byte(c) => {
                    let mut j = i;
                    while j < b.len() && is_word_byte(b[j]) {
                        j += 1;
                    }
                    let prefixed = j == i + 1
                        && matches!(c, b'b' | b'B' | b'x' | b'X' | b'n' | b'N')
                        && b.get(j) == Some(&b'\'');
                    if prefixed {
                        (TokKind::Str, self.quoted_end(j, b'\'')?)
                    } else {
                        (TokKind::Word, j)
                    }
                }
                _ => {
                    let len = self.src[i..].chars().next().map_or(1, char::len_utf8);
                    (TokKind::Punct, i + len)
                }
            };
            let tok = Tok {
                kind,
                text: &self.src[i..end],
                start: i,
                end,
                space_before: self.space,
                group: self.group,
            };
            self.pos = end;
            self.space = false;
            return Ok(Some(tok));
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Result<Tok<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.next_tok().transpose();
        if matches!(r, Some(Err(_))) {
            self.failed = true;
        }
        r
    }
}

/// Lexes a whole statement.
pub(crate) fn lex(src: &str) -> Result<Lexed<'_>, String> {
    let mut lexer = Lexer::new(src);
    let mut toks = Vec::new();
    while let Some(t) = lexer.next_tok()? {
        toks.push(t);
    }
    Ok(Lexed {
        src,
        toks,
        groups: lexer.groups,
    })
}

impl Lexed<'_> {
    /// The source text from token `first` to token `last` (inclusive), widened to whole
    /// executable comments that start or end inside it; an error if such a comment also holds
    /// tokens outside the range (the text could not be cut there).
    pub fn slice(&self, first: usize, last: usize) -> Result<&str, String> {
        let (a, b) = (&self.toks[first], &self.toks[last]);
        let mut start = a.start;
        let mut end = b.end;
        if a.group != b.group || a.group.is_none() {
            for (i, t) in [(first, a), (last, b)] {
                let Some(g) = t.group else { continue };
                let inside = self
                    .toks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.group == Some(g))
                    .all(|(j, _)| (first..=last).contains(&j));
                if !inside {
                    return Err(format!(
                        "an executable comment spans two parts of the statement near `{}`",
                        self.toks[i].text
                    ));
                }
                let (gs, ge) = self.groups[g];
                start = start.min(gs);
                end = end.max(ge);
            }
        }
        Ok(&self.src[start..end])
    }

    /// Index of the `)` matching the `(` at `open`, if any.
    pub fn matching_paren(&self, open: usize, end: usize) -> Option<usize> {
        let mut depth = 0usize;
        for (i, t) in self.toks[..end].iter().enumerate().skip(open) {
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Splits `[start, end)` at the commas outside parentheses, returning `[a, b)` ranges.
    pub fn split_commas(&self, start: usize, end: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut depth = 0i32;
        let mut from = start;
        for i in start..end {
            let t = &self.toks[i];
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') {
                depth -= 1;
            } else if depth == 0 && t.is_punct(',') {
                out.push((from, i));
                from = i + 1;
            }
        }
        out.push((from, end));
        out
    }
}

/// The value of a MySQL string literal token (quotes removed, escapes and doubled quotes
/// resolved). Prefixed forms (`x'..'`) keep their raw text.
pub(crate) fn unescape_str(raw: &str) -> String {
    let Some(q) = raw.chars().next().filter(|c| *c == '\'' || *c == '"') else {
        return raw.to_string();
    };
    let inner = &raw[1..raw.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('0') => out.push('\0'),
                Some('b') => out.push('\u{8}'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('Z') => out.push('\u{1a}'),
                // `\%` and `\_` keep the backslash (they are LIKE escapes).
                Some(e @ ('%' | '_')) => {
                    out.push('\\');
                    out.push(e);
                }
                Some(e) => out.push(e),
                None => out.push('\\'),
            }
        } else if c == q && chars.peek() == Some(&q) {
            chars.next();
            out.push(q);
        } else {
            out.push(c);
        }
    }
    out
}

/// Quotes `s` as a single-quoted MySQL string literal.
pub(crate) fn quote_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

const TEXT_TYPES: &[&str] = &[
    "CHAR",
    "CHARACTER",
    "VARCHAR",
    "TEXT",
    "TINYTEXT",
    "MEDIUMTEXT",
    "LONGTEXT",
];

/// Rebuilds `toks` as text for sqlparser, rewriting what sqlparser 0.63 cannot parse in MySQL
/// and MariaDB column and index definitions:
///
/// | written                                  | given to sqlparser                |
/// |------------------------------------------|-----------------------------------|
/// | `"text"` (double-quoted string)          | `'text'`                          |
/// | `ZEROFILL`                               | `UNSIGNED` (ZEROFILL implies it)  |
/// | `CHARSET x` / `CHAR SET x`               | `CHARACTER SET x`                 |
/// | `VARCHAR(10) BINARY`, `TEXT BINARY`      | `VARCHAR(10)` (a `_bin` collation)|
/// | `PERSISTENT` (generated column)          | `STORED`                          |
/// | `NATIONAL CHAR`, `NATIONAL VARCHAR`      | `NCHAR`, `NVARCHAR`               |
/// | `LONG VARCHAR`, `LONG VARBINARY`         | `MEDIUMTEXT`, `MEDIUMBLOB`        |
/// | `SERIAL DEFAULT VALUE`                   | `NOT NULL AUTO_INCREMENT UNIQUE`  |
/// | `USING BTREE/HASH/RTREE`                 | dropped                           |
/// | `ASCII`, `UNICODE` (column attributes)   | `CHARACTER SET latin1`, `... ucs2`|
/// | `COLUMN_FORMAT x`, `STORAGE x`, `COMPRESSED[=x]`, `[NOT] IGNORED`, `[IN]VISIBLE`, `KEY_BLOCK_SIZE[=]n`, `WITH PARSER x`, `REF_SYSTEM_ID=n`, `ENGINE_ATTRIBUTE=x`, `SECONDARY_ENGINE_ATTRIBUTE=x`, `WITH[OUT] SYSTEM VERSIONING`, `CLUSTERED`, `NONCLUSTERED` | dropped |
///
/// None of these change what the tracker records: column names, types, signedness, nullability,
/// character sets and keys (invisible columns and indexes are tracked like visible ones).
pub(crate) fn parser_text(toks: &[Tok<'_>]) -> String {
    let mut out = String::new();
    let mut force_space = false;
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let (replacement, skip) = rewrite(toks, i);
        match replacement {
            None => {
                if (t.space_before || force_space) && !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(t.text);
                force_space = false;
            }
            Some(text) => {
                // A dropped token must not glue its neighbours together; a replacement keeps
                // the spacing of the tokens it replaces.
                if !text.is_empty() {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(&text);
                }
                force_space = text.is_empty();
            }
        }
        i += skip.max(1);
    }
    out
}

/// The rewrite [`parser_text`] applies at token `i`: `(None, 1)` keeps the token, else the
/// replacement text and how many tokens it replaces.
fn rewrite(toks: &[Tok<'_>], i: usize) -> (Option<String>, usize) {
    let t = &toks[i];
    let next = toks.get(i + 1);
    let prev = i.checked_sub(1).map(|p| &toks[p]);
    let next_is = |kw: &str| next.is_some_and(|n| n.is(kw));
    let then_is = |kw: &str| toks.get(i + 2).is_some_and(|n| n.is(kw));
    let put = |text: &str, skip: usize| (Some(text.to_string()), skip);
    if t.kind == TokKind::Str && t.text.starts_with('"') {
        return (Some(quote_str(&unescape_str(t.text))), 1);
    }
    if t.kind != TokKind::Word {
        return (None, 1);
    }
    if t.is("ZEROFILL") {
        let signed = prev.is_some_and(|p| p.is("UNSIGNED")) || next_is("UNSIGNED");
        put(if signed { "" } else { "UNSIGNED" }, 1)
    } else if t.is("CHARSET") {
        put("CHARACTER SET", 1)
    } else if t.is("CHAR") && next_is("SET") {
        put("CHARACTER SET", 2)
    } else if t.is("BINARY")
        && !next.is_some_and(|n| n.is_punct('('))
        && prev.is_some_and(|p| {
            let before = i.checked_sub(2).map(|j| &toks[j]);
            // `VARCHAR(10) BINARY`, `name TEXT BINARY`, `... CHARSET utf8 BINARY`
            p.is_punct(')')
                || (p.is_any(TEXT_TYPES)
                    && before.is_some_and(|b| matches!(b.kind, TokKind::Word | TokKind::Quoted)))
                || before.is_some_and(|b| b.is_any(&["CHARSET", "SET"]))
        })
    {
        put("", 1)
    } else if t.is("PERSISTENT") {
        put("STORED", 1)
    } else if t.is("NATIONAL") && next_is("VARCHAR") {
        put("NVARCHAR", 2)
    } else if t.is("NATIONAL") && next.is_some_and(|n| n.is_any(&["CHAR", "CHARACTER"])) {
        put("NCHAR", 2)
    } else if t.is("LONG") && next_is("VARCHAR") {
        put("MEDIUMTEXT", 2)
    } else if t.is("LONG") && next_is("VARBINARY") {
        put("MEDIUMBLOB", 2)
    } else if t.is("SERIAL") && next_is("DEFAULT") && then_is("VALUE") {
        put("NOT NULL AUTO_INCREMENT UNIQUE", 3)
    } else if (t.is("USING") && next.is_some_and(|n| n.is_any(&["BTREE", "HASH", "RTREE"])))
        || (t.is_any(&["COLUMN_FORMAT", "STORAGE"])
            && next.is_some_and(|n| n.kind == TokKind::Word))
    {
        put("", 2)
    } else if t.is_any(&[
        "COMPRESSED",
        "REF_SYSTEM_ID",
        "ENGINE_ATTRIBUTE",
        "SECONDARY_ENGINE_ATTRIBUTE",
    ]) && !prev.is_some_and(|p| p.is_punct('='))
    {
        let with_value = next.is_some_and(|n| n.is_punct('='));
        let skip = match (with_value, t.is("COMPRESSED")) {
            (true, _) => 3,
            (false, true) => 1,
            (false, false) => 2,
        };
        put("", skip)
    } else if t.is("IGNORED") {
        put("", 1)
    } else if t.is("NOT") && next_is("IGNORED") {
        put("", 2)
    } else if t.is_any(&["WITH", "WITHOUT"]) && next_is("SYSTEM") && then_is("VERSIONING") {
        put("", 3)
    } else if t.is_any(&["CLUSTERED", "NONCLUSTERED", "VISIBLE", "INVISIBLE"]) {
        put("", 1)
    } else if t.is("KEY_BLOCK_SIZE") {
        put(
            "",
            if next.is_some_and(|n| n.is_punct('=')) {
                3
            } else {
                2
            },
        )
    } else if t.is("WITH") && next_is("PARSER") {
        put("", 3)
    } else if t.is("ASCII") && !next.is_some_and(|n| n.is_punct('(')) {
        put("CHARACTER SET latin1", 1)
    } else if t.is("UNICODE") && !next.is_some_and(|n| n.is_punct('(')) {
        put("CHARACTER SET ucs2", 1)
    } else {
        (None, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        lex(sql)
            .unwrap()
            .toks
            .iter()
            .map(|t| t.text.to_string())
            .collect()
    }

    #[test]
    fn tokens_comments_and_quotes() {
        assert_eq!(
            texts("ALTER /* x */ TABLE `a``b`.t -- c\n ADD c INT DEFAULT 'it''s\\'' # z"),
            [
                "ALTER",
                "TABLE",
                "`a``b`",
                ".",
                "t",
                "ADD",
                "c",
                "INT",
                "DEFAULT",
                "'it''s\\''"
            ]
        );
        assert_eq!(
            texts("x'AF' b'01' _utf8mb4'x' 1.5e3 0x1F 1abc"),
            ["x'AF'", "b'01'", "_utf8mb4", "'x'", "1.5e3", "0x1F", "1abc"]
        );
        assert_eq!(texts("a--b"), ["a", "-", "-", "b"]);
        assert!(lex("'open").is_err());
        assert!(lex("/* open").is_err());
        assert!(lex("/*!40101 open").is_err());
    }

    #[test]
    fn executable_comments_are_inlined_and_sliced_whole() {
        let lx =
            lex("CREATE TABLE t (a INT) /*!50100 PARTITION BY HASH(a) */ /*M!100100 X */").unwrap();
        let words: Vec<&str> = lx.toks.iter().map(|t| t.text).collect();
        assert_eq!(words[7..10], ["PARTITION", "BY", "HASH"]);
        assert_eq!(lx.groups.len(), 2);
        let last = lx.toks.len() - 1;
        assert_eq!(
            lx.slice(7, last).unwrap(),
            "/*!50100 PARTITION BY HASH(a) */ /*M!100100 X */"
        );
        // Cutting inside a comment is refused.
        assert!(lx.slice(3, 8).is_err());
        // A range wholly inside one comment is the plain text.
        assert_eq!(lx.slice(7, 8).unwrap(), "PARTITION BY");
    }

    #[test]
    fn strings_unescape_and_quote() {
        assert_eq!(unescape_str(r"'a''b\'c\\d\n'"), "a'b'c\\d\n");
        assert_eq!(unescape_str(r#""say ""hi""""#), "say \"hi\"");
        assert_eq!(quote_str("a'b\\c"), r"'a''b\\c'");
    }

    #[test]
    fn parser_text_rewrites() {
        let t = |sql: &str| parser_text(&lex(sql).unwrap().toks);
        assert_eq!(t("a INT(10) ZEROFILL"), "a INT(10) UNSIGNED");
        assert_eq!(
            t("a INT UNSIGNED ZEROFILL NOT NULL"),
            "a INT UNSIGNED NOT NULL"
        );
        assert_eq!(
            t("b VARCHAR(10) CHARSET utf8 BINARY"),
            "b VARCHAR(10) CHARACTER SET utf8"
        );
        assert_eq!(
            t("c TEXT BINARY COMMENT \"it's\""),
            "c TEXT COMMENT 'it''s'"
        );
        assert_eq!(t("d BINARY(3)"), "d BINARY(3)");
        assert_eq!(t("e INT AS (a+1) PERSISTENT"), "e INT AS (a+1) STORED");
        assert_eq!(t("f NATIONAL VARCHAR(3)"), "f NVARCHAR(3)");
        assert_eq!(t("f NATIONAL CHAR(3)"), "f NCHAR(3)");
        assert_eq!(t("g LONG VARCHAR"), "g MEDIUMTEXT");
        assert_eq!(t("KEY k USING BTREE (a) IGNORED"), "KEY k (a)");
        assert_eq!(t("KEY k (a) KEY_BLOCK_SIZE=8 INVISIBLE"), "KEY k (a)");
        assert_eq!(t("FULLTEXT f (a) WITH PARSER ngram"), "FULLTEXT f (a)");
        assert_eq!(
            t("a VARCHAR(3) ASCII DEFAULT ASCII('x')"),
            "a VARCHAR(3) CHARACTER SET latin1 DEFAULT ASCII('x')"
        );
        assert_eq!(
            t("h INT /*!50606 COLUMN_FORMAT DYNAMIC */ NOT NULL"),
            "h INT NOT NULL"
        );
        assert_eq!(
            t("i BLOB COMPRESSED=zlib DEFAULT NULL"),
            "i BLOB DEFAULT NULL"
        );
        assert_eq!(
            t("j INT SERIAL DEFAULT VALUE"),
            "j INT NOT NULL AUTO_INCREMENT UNIQUE"
        );
        assert_eq!(
            t("k CHAR(1) CHAR SET latin1"),
            "k CHAR(1) CHARACTER SET latin1"
        );
        assert_eq!(t("a<=b"), "a<=b");
    }
}
