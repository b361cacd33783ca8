//! A streaming splitter for the SQL text of dump files, and a cheap classifier of the
//! statements it yields.
//!
//! Dump files (dumpling, mydumper, dm-rs's own dump unit) end every statement with `;`. The
//! splitter cuts at a `;` outside quotes and comments, so a `;` inside `'...'` (with backslash
//! and doubled-quote escapes), `"..."`, `` `...` ``, `/* ... */` (executable comments
//! included), `-- ...` or `# ...` never ends a statement. It is fed one line at a time, so a
//! data file is never held in memory whole: only the statement being assembled is (dumpers cap
//! a statement at about 1 MB; dumpling and mydumper also put each row on its own line, while a
//! file written as one single line would be read as one line). Everything is bytes: a dump written with `SET NAMES binary` may
//! hold text that is not UTF-8.

/// One statement of a dump file, without its terminating `;`, trimmed of surrounding
/// whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Byte offset in the file where the statement's text (after the previous `;`) starts.
    pub offset: u64,
    pub text: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    /// Inside a quoted string or identifier; the byte is the quote.
    Quoted(u8),
    /// Inside `/* ... */`.
    Block,
    /// Inside `-- ...` or `# ...` (until the end of the line).
    Line,
}

/// Bytes that can change [`State::Normal`]: quotes, comment starts and `;`.
const NORMAL_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'\'' as usize] = true;
    t[b'"' as usize] = true;
    t[b'`' as usize] = true;
    t[b'/' as usize] = true;
    t[b'#' as usize] = true;
    t[b'-' as usize] = true;
    t[b';' as usize] = true;
    t
};

/// Splits a stream of lines into statements (see the module docs).
#[derive(Debug)]
pub struct Splitter {
    state: State,
    /// The previous byte was a backslash inside a `'` or `"` string.
    escaped: bool,
    buf: Vec<u8>,
    /// The start of a line [`Self::feed`] has not seen the end of.
    carry: Vec<u8>,
    /// File offset of `buf`'s first byte.
    start: u64,
    /// File offset of the next byte fed.
    pos: u64,
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Splitter {
    /// A splitter at the start of a file.
    pub fn new() -> Self {
        Self {
            state: State::Normal,
            escaped: false,
            buf: Vec::new(),
            carry: Vec::new(),
            start: 0,
            pos: 0,
        }
    }

    /// Feeds the next line (with its `\n`, except perhaps the file's last line) and appends
    /// every statement it completes to `out`.
    pub fn feed_line(&mut self, line: &[u8], out: &mut Vec<Statement>) {
        self.scan(line, out);
        if self.state == State::Line {
            // A comment runs to the end of its line even when the line had no `\n`.
            self.state = State::Normal;
        }
    }

    /// Feeds the next bytes of the file, cut anywhere, and appends every statement they
    /// complete to `out`. Whole lines are scanned (so that `/*`, `*/` and `--` are never cut);
    /// a partial line waits for the rest, or for [`Self::finish`].
    pub fn feed(&mut self, block: &[u8], out: &mut Vec<Statement>) {
        let mut block = block;
        if !self.carry.is_empty() {
            let Some(k) = memchr::memchr(b'\n', block) else {
                self.carry.extend_from_slice(block);
                return;
            };
            let mut line = std::mem::take(&mut self.carry);
            line.extend_from_slice(&block[..=k]);
            self.scan(&line, out);
            line.clear();
            self.carry = line;
            block = &block[k + 1..];
        }
        match memchr::memrchr(b'\n', block) {
            Some(k) => {
                self.scan(&block[..=k], out);
                self.carry.extend_from_slice(&block[k + 1..]);
            }
            None => self.carry.extend_from_slice(block),
        }
    }

    /// Scans whole lines.
    fn scan(&mut self, line: &[u8], out: &mut Vec<Statement>) {
        let n = line.len();
        let mut seg = 0;
        let mut i = 0;
        while i < n {
            match self.state {
                State::Normal => {
                    // Skip the bytes that cannot change the state in one tight loop.
                    while i < n && !NORMAL_SPECIAL[usize::from(line[i])] {
                        i += 1;
                    }
                    if i == n {
                        break;
                    }
                    match line[i] {
                        q @ (b'\'' | b'"' | b'`') => self.state = State::Quoted(q),
                        b'/' if line.get(i + 1) == Some(&b'*') => {
                            self.state = State::Block;
                            i += 1;
                        }
                        b'#' => self.state = State::Line,
                        b'-' if line.get(i + 1) == Some(&b'-')
                            && line.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) =>
                        {
                            self.state = State::Line;
                        }
                        b';' => {
                            self.buf.extend_from_slice(&line[seg..i]);
                            self.emit(out);
                            seg = i + 1;
                            self.start = self.pos + seg as u64;
                        }
                        _ => {}
                    }
                    i += 1;
                }
                State::Quoted(q) => {
                    // Jump to the next quote or backslash.
                    let backslash = q != b'`';
                    while i < n {
                        if self.escaped {
                            self.escaped = false;
                            i += 1;
                            continue;
                        }
                        let rest = &line[i..];
                        let Some(k) = (if backslash {
                            memchr::memchr2(q, b'\\', rest)
                        } else {
                            memchr::memchr(q, rest)
                        }) else {
                            i = n;
                            break;
                        };
                        i += k + 1;
                        if rest[k] == q {
                            // A doubled quote re-enters the string at the next byte.
                            self.state = State::Normal;
                            break;
                        }
                        self.escaped = true;
                    }
                }
                State::Block => {
                    while i < n {
                        if line[i] == b'*' && line.get(i + 1) == Some(&b'/') {
                            self.state = State::Normal;
                            i += 2;
                            break;
                        }
                        i += 1;
                    }
                }
                State::Line => {
                    while i < n {
                        let b = line[i];
                        i += 1;
                        if b == b'\n' {
                            self.state = State::Normal;
                            break;
                        }
                    }
                }
            }
        }
        self.buf.extend_from_slice(&line[seg..]);
        self.pos += n as u64;
    }

    /// Ends the input: the statements of a last line [`Self::feed`] held back, and the
    /// trailing statement without a `;`, if any (an error when the file ends inside a quoted
    /// string or a block comment).
    pub fn finish(mut self) -> Result<Vec<Statement>, String> {
        let rest = std::mem::take(&mut self.carry);
        let mut out = Vec::new();
        self.scan(&rest, &mut out);
        match self.state {
            State::Quoted(q) => {
                return Err(format!(
                    "the file ends inside a {} started after offset {}",
                    if q == b'`' { "quoted name" } else { "string" },
                    self.start
                ));
            }
            State::Block => {
                return Err(format!(
                    "the file ends inside a comment started after offset {}",
                    self.start
                ));
            }
            State::Normal | State::Line => {}
        }
        self.emit(&mut out);
        Ok(out)
    }

    fn emit(&mut self, out: &mut Vec<Statement>) {
        let text = std::mem::take(&mut self.buf);
        let lead = text
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(text.len());
        let trail = text
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(lead, |p| p + 1);
        if lead < trail {
            let text = if lead == 0 && trail == text.len() {
                text
            } else {
                text[lead..trail].to_vec()
            };
            out.push(Statement {
                offset: self.start + lead as u64,
                text,
            });
        }
    }
}

/// What a dump-file statement is, for the loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// `INSERT ...` or `REPLACE ...`: rows.
    Insert,
    /// `SET ...`, also inside an executable comment (`/*!40101 SET NAMES binary*/`): a session
    /// setting the following rows depend on.
    Set,
    /// Comments only, or an executable comment that is not a SET (mysqldump's
    /// `/*!40000 ALTER TABLE ... DISABLE KEYS */`): nothing to run.
    Skip,
    /// Anything else.
    Other,
}

/// Skips whitespace and plain comments from `i`; stops at an executable comment `/*!`.
pub(crate) fn skip_space(s: &[u8], mut i: usize) -> usize {
    loop {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        if s[i..].starts_with(b"/*") && !s[i..].starts_with(b"/*!") {
            i = match find(&s[i + 2..], b"*/") {
                Some(p) => i + 2 + p + 2,
                None => s.len(),
            };
        } else if s[i..].starts_with(b"#")
            || (s[i..].starts_with(b"--") && s.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()))
        {
            i = match s[i..].iter().position(|&b| b == b'\n') {
                Some(p) => i + p + 1,
                None => s.len(),
            };
        } else {
            return i;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The word (ASCII letters, digits, `_`) starting at `i`.
pub(crate) fn word_at(s: &[u8], i: usize) -> &[u8] {
    let end = s[i..]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .map_or(s.len(), |p| i + p);
    &s[i..end]
}

/// Sorts a statement by its first word (see [`StatementKind`]).
pub fn classify(stmt: &[u8]) -> StatementKind {
    let i = skip_space(stmt, 0);
    if i >= stmt.len() {
        return StatementKind::Skip;
    }
    if stmt[i..].starts_with(b"/*!") {
        let mut j = i + 3;
        while j < stmt.len() && stmt[j].is_ascii_digit() {
            j += 1;
        }
        let j = skip_space(stmt, j);
        return if word_at(stmt, j).eq_ignore_ascii_case(b"SET") {
            StatementKind::Set
        } else {
            StatementKind::Skip
        };
    }
    let w = word_at(stmt, i);
    if w.eq_ignore_ascii_case(b"INSERT") || w.eq_ignore_ascii_case(b"REPLACE") {
        StatementKind::Insert
    } else if w.eq_ignore_ascii_case(b"SET") {
        StatementKind::Set
    } else {
        StatementKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_lines(text: &[u8]) -> Vec<(u64, String)> {
        let mut s = Splitter::new();
        let mut out = Vec::new();
        for line in text.split_inclusive(|&b| b == b'\n') {
            s.feed_line(line, &mut out);
        }
        out.extend(s.finish().unwrap());
        out.into_iter()
            .map(|st| (st.offset, String::from_utf8(st.text).unwrap()))
            .collect()
    }

    fn texts(text: &str) -> Vec<String> {
        split_lines(text.as_bytes())
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        let text = "/*!40101 SET NAMES binary*/;\n\
            INSERT INTO `t` VALUES (1,'a;'),\n(2,'it''s;\n;still'),(3,\"x\\\";\"),(4,'\\\\');\n\
            -- a comment; with a semicolon\n\
            # another; one\n\
            INSERT INTO `we;ird``` (`c;`) VALUES (/* ; */5);\n";
        assert_eq!(
            texts(text),
            vec![
                "/*!40101 SET NAMES binary*/".to_string(),
                "INSERT INTO `t` VALUES (1,'a;'),\n(2,'it''s;\n;still'),(3,\"x\\\";\"),(4,'\\\\')"
                    .into(),
                "-- a comment; with a semicolon\n# another; one\nINSERT INTO `we;ird``` (`c;`) VALUES (/* ; */5)"
                    .into(),
            ]
        );
    }

    #[test]
    fn blocks_cut_anywhere_split_like_lines() {
        let text = "/*!40101 SET NAMES binary*/;\n\
            INSERT INTO `t` VALUES (1,'a;'),\n(2,'it''s;\n;still'),(3,\"x\\\";\"),(4,'\\\\');\n\
            -- a comment; with a semicolon\n\
            # another; one\n\
            INSERT INTO `we;ird``` (`c;`) VALUES (/* ; */5);\nSET x=1; SELECT 1 -- last";
        let want = split_lines(text.as_bytes());
        for size in 1..=text.len() {
            let mut s = Splitter::new();
            let mut out = Vec::new();
            for block in text.as_bytes().chunks(size) {
                s.feed(block, &mut out);
            }
            out.extend(s.finish().unwrap());
            let got: Vec<(u64, String)> = out
                .into_iter()
                .map(|st| (st.offset, String::from_utf8(st.text).unwrap()))
                .collect();
            assert_eq!(got, want, "blocks of {size}");
        }
    }

    #[test]
    fn offsets_point_at_statement_text() {
        let text = b"SET a=1;\n  INSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2)";
        let got = split_lines(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, 11);
        assert_eq!(&text[11..17], b"INSERT");
        assert_eq!(got[2].1, "INSERT INTO t VALUES (2)");
        assert_eq!(got[2].0, 37);
    }

    #[test]
    fn several_statements_on_one_line_and_lines_without_newline() {
        assert_eq!(
            texts("SET a=1; SET b=2;SET c=';'"),
            vec!["SET a=1", "SET b=2", "SET c=';'"]
        );
        // A line-by-line feed where a string spans many lines.
        let text = "INSERT INTO t VALUES ('a\n\n;\nb');\n";
        assert_eq!(texts(text).len(), 1);
    }

    #[test]
    fn dash_dash_needs_whitespace() {
        assert_eq!(
            texts("SELECT 1--1;SELECT 2"),
            vec!["SELECT 1--1", "SELECT 2"]
        );
        assert_eq!(
            texts("SELECT 1 -- x;\n;SELECT 2"),
            vec!["SELECT 1 -- x;", "SELECT 2"]
        );
    }

    #[test]
    fn unterminated_strings_are_errors() {
        let mut s = Splitter::new();
        let mut out = Vec::new();
        s.feed_line(b"INSERT INTO t VALUES ('abc);\n", &mut out);
        assert!(out.is_empty());
        assert!(s.finish().unwrap_err().contains("inside a string"));
        let mut s = Splitter::new();
        s.feed_line(b"/* never closed ;\n", &mut out);
        assert!(s.finish().unwrap_err().contains("comment"));
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        let mut s = Splitter::new();
        let mut out = Vec::new();
        s.feed_line(b"INSERT INTO t VALUES ('\xff\xfe;');\n", &mut out);
        assert_eq!(out[0].text, b"INSERT INTO t VALUES ('\xff\xfe;')");
    }

    #[test]
    fn classifies() {
        use StatementKind::*;
        for (s, k) in [
            ("INSERT INTO t VALUES (1)", Insert),
            ("  replace into t values (1)", Insert),
            ("/* c */ INSERT INTO t VALUES (1)", Insert),
            ("-- c\nINSERT INTO t VALUES (1)", Insert),
            ("/*!40101 SET NAMES binary*/", Set),
            ("/*!40014 SET FOREIGN_KEY_CHECKS=0 */", Set),
            ("SET NAMES utf8mb4", Set),
            ("/*!40000 ALTER TABLE `t` DISABLE KEYS */", Skip),
            ("-- only a comment", Skip),
            ("DELETE FROM t", Other),
            ("INSERTX", Other),
        ] {
            assert_eq!(classify(s.as_bytes()), k, "{s}");
        }
    }
}
