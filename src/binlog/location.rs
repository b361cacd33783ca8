//! Where in the binlog: a file + position, optionally with the GTID set executed up to there.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::gtid::GtidSet;

/// A binlog file name and a byte position in it. Positions are event *end* positions (the
/// header's `log_pos`): resuming from one starts at the next event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub name: String,
    pub pos: u32,
}

impl Position {
    /// `name:pos`.
    pub fn new(name: impl Into<String>, pos: u32) -> Self {
        Self {
            name: name.into(),
            pos,
        }
    }
}

/// Splits `mysql-bin.000123` into (`mysql-bin`, 123). Relay-log names written by DM as
/// `mysql-bin|000001.000123` keep the part before the last `.` as their base.
pub fn split_binlog_name(name: &str) -> (&str, u64) {
    match name.rsplit_once('.') {
        Some((base, n)) => (base, n.parse().unwrap_or(0)),
        None => (name, 0),
    }
}

/// Orders binlog names by their numeric suffix, so `.999999` < `.1000000`.
pub fn compare_binlog_names(a: &str, b: &str) -> Ordering {
    let (ba, na) = split_binlog_name(a);
    let (bb, nb) = split_binlog_name(b);
    ba.cmp(bb).then(na.cmp(&nb))
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_binlog_names(&self.name, &other.name).then(self.pos.cmp(&other.pos))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.name, self.pos)
    }
}

/// A position plus the GTID set executed up to it (when GTID mode is on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub position: Position,
    pub gtid: Option<GtidSet>,
}

impl Location {
    /// A position-only location.
    pub fn at(position: Position) -> Self {
        Self {
            position,
            gtid: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "position: {}", self.position)?;
        if let Some(g) = &self.gtid {
            write!(f, ", gtid-set: {g}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_order_by_number() {
        assert_eq!(
            compare_binlog_names("mysql-bin.999999", "mysql-bin.1000000"),
            Ordering::Less
        );
        assert!(Position::new("b.000002", 4) > Position::new("b.000001", 9000));
        assert!(Position::new("b.000002", 4) < Position::new("b.000002", 5));
        assert_eq!(
            Position::new("mysql-bin.000003", 120).to_string(),
            "(mysql-bin.000003, 120)"
        );
    }
}
