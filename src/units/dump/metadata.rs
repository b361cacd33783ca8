//! The dump directory's `metadata` file, in dumpling's format (mydumper's is read too); the
//! indented lines start with a tab:
//!
//! ```text
//! Started dump at: 2026-11-21 20:00:00
//! SHOW MASTER STATUS:
//!     Log: mysql-bin.000003
//!     Pos: 1234
//!     GTID:0-1-42
//!
//! SHOW MASTER STATUS: /* AFTER CONNECTION POOL ESTABLISHED */
//!     Log: mysql-bin.000003
//!     Pos: 1300
//!     GTID:0-1-43
//!
//! Finished dump at: 2026-11-21 20:00:09
//! ```
//!
//! The first block is the snapshot's binlog location; the optional second block (consistency
//! `none`) is where the dump's connections were all open, up to which the syncer replays in
//! safe mode. A dump without `Finished dump at` did not complete.

use std::path::Path;

use crate::binlog::gtid::GtidSet;
use crate::binlog::location::{Location, Position};
use crate::error::{DmError, codes};

/// What `metadata` says.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpMetadata {
    pub started: String,
    /// The snapshot's binlog location.
    pub location: Location,
    /// Consistency `none`: the location once every dump connection was open.
    pub after: Option<Location>,
    /// `None` until the dump completed.
    pub finished: Option<String>,
}

impl DumpMetadata {
    /// The file's text.
    pub fn render(&self) -> String {
        let block = |title: &str, l: &Location| {
            let gtid = l.gtid.as_ref().map(ToString::to_string).unwrap_or_default();
            format!(
                "{title}\n\tLog: {}\n\tPos: {}\n\tGTID:{gtid}\n\n",
                l.position.name, l.position.pos
            )
        };
        let mut s = format!("Started dump at: {}\n", self.started);
        s.push_str(&block("SHOW MASTER STATUS:", &self.location));
        if let Some(a) = &self.after {
            s.push_str(&block(
                "SHOW MASTER STATUS: /* AFTER CONNECTION POOL ESTABLISHED */",
                a,
            ));
        }
        if let Some(f) = &self.finished {
            s.push_str(&format!("Finished dump at: {f}\n"));
        }
        s
    }

    /// Parses dumpling's or mydumper's `metadata` text.
    pub fn parse(text: &str) -> Result<Self, DmError> {
        let bad = |m: String| DmError::new(&codes::LOAD_DUMP_DIR_INVALID, format!("metadata: {m}"));
        let mut started = String::new();
        let mut finished = None;
        let mut blocks: Vec<(bool, Option<String>, Option<u32>, String)> = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if let Some(v) = t.strip_prefix("Started dump at:") {
                started = v.trim().to_string();
            } else if let Some(v) = t.strip_prefix("Finished dump at:") {
                finished = Some(v.trim().to_string());
            } else if t.starts_with("SHOW MASTER STATUS:") {
                blocks.push((
                    t.contains("AFTER CONNECTION POOL ESTABLISHED"),
                    None,
                    None,
                    String::new(),
                ));
            } else if t.starts_with("SHOW SLAVE STATUS:") {
                // mydumper/dumpling may record the upstream's own replica state: not ours.
                blocks.push((true, None, None, String::from("\u{0}slave")));
            } else if let Some(b) = blocks.last_mut() {
                if let Some(v) = t.strip_prefix("Log:") {
                    b.1 = Some(v.trim().to_string());
                } else if let Some(v) = t.strip_prefix("Pos:") {
                    b.2 = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| bad(format!("bad Pos `{}`", v.trim())))?,
                    );
                } else if let Some(v) = t.strip_prefix("GTID:") {
                    b.3.push_str(v.trim());
                } else if !t.is_empty() && b.3.ends_with(',') {
                    // MySQL prints long GTID sets over several lines.
                    b.3.push_str(t);
                }
            }
        }
        let to_loc =
            |b: &(bool, Option<String>, Option<u32>, String)| -> Result<Location, DmError> {
                let name =
                    b.1.clone()
                        .ok_or_else(|| bad("a SHOW MASTER STATUS block has no Log".into()))?;
                let pos =
                    b.2.ok_or_else(|| bad("a SHOW MASTER STATUS block has no Pos".into()))?;
                let gtid = (!b.3.is_empty())
                    .then(|| GtidSet::parse_any(&b.3))
                    .transpose()
                    .map_err(bad)?;
                Ok(Location {
                    position: Position::new(name, pos),
                    gtid,
                })
            };
        let main = blocks
            .iter()
            .find(|b| !b.0)
            .ok_or_else(|| bad("no SHOW MASTER STATUS block".into()))?;
        let after = blocks
            .iter()
            .find(|b| b.0 && b.3 != "\u{0}slave")
            .map(to_loc)
            .transpose()?;
        Ok(Self {
            started,
            location: to_loc(main)?,
            after,
            finished,
        })
    }

    /// Reads `<dir>/metadata`.
    pub fn read(dir: &Path) -> Result<Self, DmError> {
        let path = dir.join("metadata");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            DmError::new(
                &codes::LOAD_DUMP_DIR_INVALID,
                format!("cannot read `{}`", path.display()),
            )
            .with_cause(e)
        })?;
        Self::parse(&text)
    }

    /// Writes `<dir>/metadata` atomically (temp file + rename).
    pub fn write(&self, dir: &Path) -> Result<(), DmError> {
        let tmp = dir.join("metadata.tmp");
        let fail = |e: std::io::Error| {
            DmError::new(
                &codes::DUMP_WRITE_FILE,
                format!("writing `{}`", dir.join("metadata").display()),
            )
            .with_cause(e)
        };
        std::fs::write(&tmp, self.render()).map_err(fail)?;
        std::fs::rename(&tmp, dir.join("metadata")).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_mydumper() {
        let m = DumpMetadata {
            started: "2026-11-21 20:00:00".into(),
            location: Location {
                position: Position::new("mysql-bin.000003", 1234),
                gtid: Some(GtidSet::parse_any("0-1-42").unwrap()),
            },
            after: Some(Location::at(Position::new("mysql-bin.000003", 1300))),
            finished: Some("2026-11-21 20:00:09".into()),
        };
        assert_eq!(DumpMetadata::parse(&m.render()).unwrap(), m);
        let unfinished = DumpMetadata {
            finished: None,
            after: None,
            ..m.clone()
        };
        assert_eq!(
            DumpMetadata::parse(&unfinished.render()).unwrap().finished,
            None
        );

        let mydumper = "Started dump at: 2020-01-01 00:00:00\nSHOW MASTER STATUS:\n\tLog: mysql-bin.000001\n\tPos: 154\n\tGTID:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n3e11fa47-71ca-11e1-9e33-c80aa9429563:1-2\n\nSHOW SLAVE STATUS:\n\tHost: 10.0.0.1\n\tLog: other-bin.000009\n\tPos: 9\n\tGTID:\n\nFinished dump at: 2020-01-01 00:00:01\n";
        let p = DumpMetadata::parse(mydumper).unwrap();
        assert_eq!(p.location.position, Position::new("mysql-bin.000001", 154));
        assert!(
            p.location
                .gtid
                .unwrap()
                .to_string()
                .contains("c80aa9429563:1-2")
        );
        assert_eq!(p.after, None, "the replica block is not ours");
        assert!(DumpMetadata::parse("nothing").is_err());
    }
}
