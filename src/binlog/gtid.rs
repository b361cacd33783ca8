//! GTID sets of both flavors.
//!
//! - MariaDB: a list of `domain-server-seq`, at most one per domain (the last transaction of
//!   each replication domain), e.g. `0-1-42,1-2-7`. A position is "reached" per domain by
//!   sequence number.
//! - MySQL: `uuid:interval[:interval]...` per server, intervals closed `[a,b]` as written
//!   (`3E11FA47-...:1-5:7`). A set contains another when every interval is covered.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A MariaDB GTID `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl MariaGtid {
    /// Parses `domain-server-seq`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split('-').collect();
        let [d, sv, sq] = parts.as_slice() else {
            return Err(format!("`{s}` is not a MariaDB GTID (domain-server-seq)"));
        };
        let num = |x: &str| {
            x.parse::<u64>()
                .map_err(|_| format!("`{s}` is not a MariaDB GTID (domain-server-seq)"))
        };
        let domain =
            u32::try_from(num(d)?).map_err(|_| format!("domain of `{s}` is out of range"))?;
        let server =
            u32::try_from(num(sv)?).map_err(|_| format!("server id of `{s}` is out of range"))?;
        Ok(Self {
            domain,
            server,
            seq: num(sq)?,
        })
    }
}

/// MariaDB's GTID position: the last GTID of each domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MariaGtidSet {
    pub domains: BTreeMap<u32, MariaGtid>,
}

impl MariaGtidSet {
    /// Parses a comma-separated list; an empty string is the empty set.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut set = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g = MariaGtid::parse(part)?;
            if set.domains.insert(g.domain, g).is_some() {
                return Err(format!("`{s}` has domain {} twice", g.domain));
            }
        }
        Ok(set)
    }

    /// Records that `g` was executed.
    pub fn update(&mut self, g: MariaGtid) {
        self.domains.insert(g.domain, g);
    }

    /// True when every domain of `other` is at or behind this set.
    pub fn contains(&self, other: &Self) -> bool {
        other
            .domains
            .values()
            .all(|o| self.domains.get(&o.domain).is_some_and(|m| m.seq >= o.seq))
    }
}

impl fmt::Display for MariaGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.domains.values().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// MySQL's executed GTID set: per server UUID, sorted disjoint closed intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MysqlGtidSet {
    /// UUID (lower case, with dashes) → sorted, merged `[start, end]` intervals.
    pub sets: BTreeMap<String, Vec<(u64, u64)>>,
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl MysqlGtidSet {
    /// Parses `uuid:a-b[:c-d],uuid2:...`; newlines (as `SHOW MASTER STATUS` prints) allowed.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut set = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split(':');
            let uuid = fields.next().unwrap_or("").trim().to_ascii_lowercase();
            if !is_uuid(&uuid) {
                return Err(format!("`{part}` does not start with a server UUID"));
            }
            let mut any = false;
            for iv in fields {
                any = true;
                let (a, b) = match iv.split_once('-') {
                    Some((a, b)) => (a, b),
                    None => (iv, iv),
                };
                let a: u64 = a
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad interval `{iv}` in `{part}`"))?;
                let b: u64 = b
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad interval `{iv}` in `{part}`"))?;
                if a == 0 || b < a {
                    return Err(format!("bad interval `{iv}` in `{part}`"));
                }
                set.add_interval(&uuid, a, b);
            }
            if !any {
                return Err(format!("`{part}` has no interval"));
            }
        }
        Ok(set)
    }

    /// Adds `[a, b]` for `uuid`, merging adjacent and overlapping intervals.
    pub fn add_interval(&mut self, uuid: &str, a: u64, b: u64) {
        let ivs = self.sets.entry(uuid.to_ascii_lowercase()).or_default();
        ivs.push((a, b));
        ivs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
        for &(s, e) in ivs.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *ivs = merged;
    }

    /// True when every transaction of `other` is in this set.
    pub fn contains(&self, other: &Self) -> bool {
        other.sets.iter().all(|(uuid, ivs)| {
            let Some(mine) = self.sets.get(uuid) else {
                return ivs.is_empty();
            };
            ivs.iter()
                .all(|&(a, b)| mine.iter().any(|&(s, e)| s <= a && b <= e))
        })
    }
}

impl fmt::Display for MysqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .sets
            .iter()
            .map(|(uuid, ivs)| {
                let mut s = uuid.clone();
                for &(a, b) in ivs {
                    if a == b {
                        s.push_str(&format!(":{a}"))
                    } else {
                        s.push_str(&format!(":{a}-{b}"))
                    }
                }
                s
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A GTID set of either flavor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GtidSet {
    MariaDb(MariaGtidSet),
    MySql(MysqlGtidSet),
}

impl GtidSet {
    /// Parses a set whose flavor is told by its form (a UUID means MySQL).
    pub fn parse_any(s: &str) -> Result<Self, String> {
        if s.contains(':') {
            MysqlGtidSet::parse(s).map(Self::MySql)
        } else {
            MariaGtidSet::parse(s).map(Self::MariaDb)
        }
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MariaDb(s) => s.fmt(f),
            Self::MySql(s) => s.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn mariadb_sets() {
        let s = MariaGtidSet::parse("0-1-42, 1-2-7").unwrap();
        assert_eq!(s.to_string(), "0-1-42,1-2-7");
        assert!(s.contains(&MariaGtidSet::parse("0-1-40").unwrap()));
        assert!(!s.contains(&MariaGtidSet::parse("0-1-43").unwrap()));
        assert!(!s.contains(&MariaGtidSet::parse("2-1-1").unwrap()));
        assert!(MariaGtidSet::parse("0-1").is_err());
        assert!(MariaGtidSet::parse("0-1-2,0-1-3").is_err());
        assert_eq!(MariaGtidSet::parse("").unwrap(), MariaGtidSet::default());
    }

    #[test]
    fn mysql_sets_merge_and_contain() {
        let mut s = MysqlGtidSet::parse(&format!("{}:1-5:7", U1.to_uppercase())).unwrap();
        assert_eq!(s.to_string(), format!("{U1}:1-5:7"));
        s.add_interval(U1, 6, 6);
        assert_eq!(s.to_string(), format!("{U1}:1-7"));
        assert!(s.contains(&MysqlGtidSet::parse(&format!("{U1}:2-3")).unwrap()));
        assert!(!s.contains(&MysqlGtidSet::parse(&format!("{U1}:2-9")).unwrap()));
        assert!(MysqlGtidSet::parse("nope:1-2").is_err());
        assert!(MysqlGtidSet::parse(&format!("{U1}:5-2")).is_err());
    }

    #[test]
    fn flavor_by_form() {
        assert!(matches!(
            GtidSet::parse_any("0-1-1").unwrap(),
            GtidSet::MariaDb(_)
        ));
        assert!(matches!(
            GtidSet::parse_any(&format!("{U1}:1")).unwrap(),
            GtidSet::MySql(_)
        ));
        assert!(GtidSet::parse_any("garbage").is_err());
    }
}
