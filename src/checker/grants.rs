//! The account's privileges as `SHOW GRANTS` states them, and the checks on them.

use std::collections::BTreeSet;

use mysql_async::Conn;
use mysql_async::prelude::*;

use crate::sql::quote_string;

/// The privileges an account holds, from `SHOW GRANTS`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Grants {
    /// Privileges on `*.*`.
    global: BTreeSet<String>,
    /// (database LIKE pattern, privileges) for `db.*` grants.
    dbs: Vec<(String, BTreeSet<String>)>,
    /// (database, table, privileges) for whole-table grants (column grants are left out).
    tables: Vec<(String, String, BTreeSet<String>)>,
    /// Roles granted to the account (`GRANT role TO user`).
    pub roles: Vec<String>,
}

/// Splits `a, b (x, y), c` at top-level commas.
fn split_privileges(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for ch in list.chars() {
        match ch {
            '(' => {
                depth += 1;
                cur.push(ch);
            }
            ')' => {
                depth -= 1;
                cur.push(ch);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| {
            p.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_uppercase()
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// Reads one identifier (`` `a``b` `` or bare) from the front of `s`; returns it and the rest.
fn take_ident(s: &str) -> Option<(String, &str)> {
    if let Some(rest) = s.strip_prefix('`') {
        let mut out = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if matches!(chars.peek(), Some((_, '`'))) {
                    chars.next();
                    out.push('`');
                } else {
                    return Some((out, &rest[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        let end = s.find(['.', ' ']).unwrap_or(s.len());
        (end > 0).then(|| (s[..end].to_string(), &s[end..]))
    }
}

impl Grants {
    /// Parses the lines of `SHOW GRANTS`. Column-level, routine and proxy grants are left
    /// out; `BINLOG MONITOR` (MariaDB ≥ 10.5) counts as `REPLICATION CLIENT`.
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> Self {
        let mut g = Self::default();
        for line in lines {
            g.add_line(line.as_ref());
        }
        g
    }

    fn add_line(&mut self, line: &str) {
        let Some(body) = line.trim().strip_prefix("GRANT ") else {
            return;
        };
        let Some((privs, rest)) = body.split_once(" ON ") else {
            // `GRANT role TO user`.
            if let Some((role, _)) = body.split_once(" TO ")
                && let Some((name, _)) = take_ident(role.trim())
            {
                self.roles.push(name);
            }
            return;
        };
        let Some((target, _)) = rest.split_once(" TO ") else {
            return;
        };
        let mut set = BTreeSet::new();
        for p in split_privileges(privs) {
            if p.contains('(') {
                continue; // column privilege: not the whole table
            }
            let p = match p.as_str() {
                "ALL" => "ALL PRIVILEGES".to_string(),
                "BINLOG MONITOR" => "REPLICATION CLIENT".to_string(),
                _ => p,
            };
            set.insert(p);
        }
        let target = target.trim();
        if target == "*.*" {
            self.global.extend(set);
            return;
        }
        let upper = target.to_ascii_uppercase();
        if upper.starts_with("FUNCTION ")
            || upper.starts_with("PROCEDURE ")
            || upper.starts_with("PACKAGE ")
        {
            return;
        }
        let Some((db, rest)) = take_ident(target) else {
            return;
        };
        let Some(rest) = rest.strip_prefix('.') else {
            return;
        };
        if rest == "*" {
            self.dbs.push((db, set));
        } else if let Some((table, _)) = take_ident(rest) {
            self.tables.push((db, table, set));
        }
    }

    /// Adds the privileges of a granted role.
    pub fn merge(&mut self, other: Grants) {
        self.global.extend(other.global);
        self.dbs.extend(other.dbs);
        self.tables.extend(other.tables);
    }

    fn covers(set: &BTreeSet<String>, privilege: &str) -> bool {
        set.contains(privilege) || set.contains("ALL PRIVILEGES")
    }

    /// Whether `privilege` is held on `*.*`.
    pub fn has_global(&self, privilege: &str) -> bool {
        Self::covers(&self.global, privilege)
    }

    /// Whether `privilege` is held on all of `db`, or on some table of it (enough to read
    /// what the grant covers).
    pub fn has_on_db(&self, privilege: &str, db: &str) -> bool {
        self.has_global(privilege)
            || self
                .dbs
                .iter()
                .any(|(pat, set)| like_match(pat, db) && Self::covers(set, privilege))
            || self
                .tables
                .iter()
                .any(|(d, _, set)| d == db && Self::covers(set, privilege))
    }

    /// Whether `privilege` is held on the whole table `db`.`table`.
    pub fn has_on_table(&self, privilege: &str, db: &str, table: &str) -> bool {
        self.has_global(privilege)
            || self
                .dbs
                .iter()
                .any(|(pat, set)| like_match(pat, db) && Self::covers(set, privilege))
            || self
                .tables
                .iter()
                .any(|(d, t, set)| d == db && t == table && Self::covers(set, privilege))
    }
}

/// SQL `LIKE` as grants use it for database names: `%` any run, `_` one character, `\`
/// escapes the next character.
pub fn like_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('%', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('_', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                n.first() == Some(&rest[0]) && go(&rest[1..], &n[1..])
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// `SHOW GRANTS` of the current account, with the grants of its roles merged in.
pub async fn read_grants(conn: &mut Conn) -> Result<Grants, String> {
    let lines: Vec<String> = conn.query("SHOW GRANTS").await.map_err(|e| e.to_string())?;
    let mut grants = Grants::parse(&lines);
    for role in grants.roles.clone() {
        let sql = format!("SHOW GRANTS FOR {}", quote_string(&role));
        // A role the account cannot inspect adds nothing.
        if let Ok(lines) = conn.query::<String, _>(sql).await {
            grants.merge(Grants::parse(&lines));
        }
    }
    Ok(grants)
}

/// `lack of X global (*.*) privilege; lack of Y ...`.
pub fn lacking_global(grants: &Grants, required: &[&str]) -> Vec<String> {
    required
        .iter()
        .filter(|p| !grants.has_global(p))
        .map(|p| p.to_string())
        .collect()
}

pub fn lack_message(lacking: &[String]) -> String {
    lacking
        .iter()
        .map(|p| format!("lack of {p} global (*.*) privilege"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_global_db_table_and_roles() {
        let g = Grants::parse(&[
            "GRANT RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*AB'",
            "GRANT SELECT, INSERT ON `shop\\_%`.* TO `u`@`%`",
            "GRANT SELECT (`a`, `b`), UPDATE ON `x`.`t``1` TO `u`@`%`",
            "GRANT EXECUTE ON PROCEDURE `x`.`p` TO `u`@`%`",
            "GRANT `reader` TO `u`@`%`",
        ]);
        assert!(g.has_global("RELOAD"));
        assert!(
            g.has_global("REPLICATION CLIENT"),
            "BINLOG MONITOR is REPLICATION CLIENT"
        );
        assert!(!g.has_global("SELECT"));
        assert!(g.has_on_table("SELECT", "shop_1", "orders"));
        assert!(
            !g.has_on_table("SELECT", "shopx1", "orders"),
            "`\\_` is a literal underscore"
        );
        assert!(
            !g.has_on_table("SELECT", "x", "t`1"),
            "a column grant is not the table"
        );
        assert!(g.has_on_table("UPDATE", "x", "t`1"));
        assert_eq!(g.roles, vec!["reader".to_string()]);
    }

    #[test]
    fn all_privileges_cover_everything() {
        let g =
            Grants::parse(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]);
        assert!(g.has_global("REPLICATION SLAVE"));
        assert!(g.has_on_table("SELECT", "a", "b"));
        let g = Grants::parse(&["GRANT ALL ON `d`.* TO `u`@`%`"]);
        assert!(g.has_on_table("SELECT", "d", "t"));
        assert!(!g.has_global("SELECT"));
    }

    #[test]
    fn like_patterns() {
        assert!(like_match("a%", "abc"));
        assert!(like_match("a_c", "abc"));
        assert!(!like_match("a\\_c", "abc"));
        assert!(like_match("a\\_c", "a_c"));
        assert!(like_match("%", ""));
        assert!(!like_match("abc", "abcd"));
    }
}
