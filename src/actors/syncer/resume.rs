//! The sync unit's resume invariant as plain, unit-tested logic (no actix, no I/O):
//!
//! - [`Resume::resolve`]: where an incarnation starts. A checkpoint wins (its position, or its
//!   GTID set with `enable-gtid`), with the DML workers' progress since it (exact replay) and
//!   the safe-mode exit point; without one, the task's `meta` (GTID set or file/position); with
//!   neither, there is no start (coded error).
//! - [`StreamPosition`]: where the stream is. Events advance the file and the GTID set; the
//!   **boundary** is the end of the last complete transaction — the only place a checkpoint may
//!   be saved, because every change before it is in a transaction that ended. It is brought up
//!   to date lazily (once per read, not per transaction).

use crate::binlog::gtid::{GtidSet, MariaGtid, MariaGtidSet};
use crate::binlog::location::{Location, Position};
use crate::binlog::stream::{Flavor, StartPoint};
use crate::config::task::Meta;
use crate::error::{DmError, codes};
use crate::sql::checkpoint::SavedCheckpoint;

/// Where an incarnation of the sync unit starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// What the binlog stream is asked for.
    pub start: StartPoint,
    /// The location the stream starts at (the checkpoint's, or `meta`'s; a GTID start has an
    /// empty file name until the first transaction is read).
    pub location: Location,
    /// Changes each DML worker committed since `location` (None: unknown, replay is covered by
    /// safe mode only).
    pub applied: Option<Vec<u64>>,
    /// DM's safe-mode exit point: safe mode stays on until the stream passes it.
    pub exit_safe: Option<Location>,
    /// No checkpoint matches this run yet: save one before the first change.
    pub needs_initial_save: bool,
}

impl Resume {
    /// Resolves the start from the checkpoint `saved` (if any), else from `meta`.
    pub fn resolve(
        saved: Option<&SavedCheckpoint>,
        meta: Option<&Meta>,
        enable_gtid: bool,
    ) -> Result<Self, DmError> {
        if let Some(cp) = saved {
            let start = match (&cp.location.gtid, enable_gtid) {
                (Some(g), true) => StartPoint::Gtid(g.clone()),
                _ => StartPoint::Position(cp.location.position.clone()),
            };
            return Ok(Self {
                start,
                location: cp.location.clone(),
                applied: cp.applied.clone(),
                exit_safe: cp.exit_safe.clone(),
                needs_initial_save: cp.applied.is_none(),
            });
        }
        let meta = meta.cloned().unwrap_or_default();
        let parse_gtid =
            |s: &str| GtidSet::parse_any(s).map_err(|e| DmError::new(&codes::PARSE_GTID, e));
        if !meta.binlog_gtid.is_empty() && (enable_gtid || meta.binlog_name.is_empty()) {
            let g = parse_gtid(&meta.binlog_gtid)?;
            return Ok(Self {
                start: StartPoint::Gtid(g.clone()),
                location: Location {
                    position: Position::new("", 4),
                    gtid: Some(g),
                },
                applied: None,
                exit_safe: None,
                needs_initial_save: true,
            });
        }
        if !meta.binlog_name.is_empty() {
            let p = Position::new(meta.binlog_name.clone(), meta.binlog_pos.max(4));
            let gtid = (!meta.binlog_gtid.is_empty())
                .then(|| parse_gtid(&meta.binlog_gtid))
                .transpose()?;
            return Ok(Self {
                start: StartPoint::Position(p.clone()),
                location: Location { position: p, gtid },
                applied: None,
                exit_safe: None,
                needs_initial_save: true,
            });
        }
        Err(DmError::bare(&codes::SYNC_NO_START_POSITION))
    }
}

/// A GTID event read but whose transaction has not ended yet.
#[derive(Debug, Clone)]
pub enum PendingGtid {
    Maria(MariaGtid),
    Mysql(String, u64),
}

/// Where the stream is, and the last transaction boundary.
#[derive(Debug, Clone)]
pub struct StreamPosition {
    file: String,
    gtid: Option<GtidSet>,
    pending_gtid: Option<PendingGtid>,
    /// End of the last transaction read, as of the last [`StreamPosition::boundary`] call.
    boundary: Location,
    /// The end (in `file`, with `gtid`) of transactions closed since `boundary` was last
    /// brought up to date: it is only materialized when read, not per transaction.
    boundary_end: Option<u32>,
    in_txn: bool,
}

impl StreamPosition {
    /// At `start` (the resume location).
    pub fn new(start: &Location) -> Self {
        Self {
            file: start.position.name.clone(),
            gtid: start.gtid.clone(),
            pending_gtid: None,
            boundary: start.clone(),
            boundary_end: None,
            in_txn: false,
        }
    }

    /// The end of the last complete transaction (brought up to date).
    pub fn boundary(&mut self) -> &Location {
        if let Some(end) = self.boundary_end.take() {
            self.boundary.position.name.clone_from(&self.file);
            self.boundary.position.pos = end;
            self.boundary.gtid.clone_from(&self.gtid);
        }
        &self.boundary
    }

    /// The boundary as of the last [`Self::boundary`] call (no update; for status).
    pub fn last_boundary(&self) -> &Location {
        &self.boundary
    }

    /// Inside a transaction (between BEGIN/GTID and its XID/COMMIT).
    pub fn in_txn(&self) -> bool {
        self.in_txn
    }

    /// A ROTATE to `next`: the last boundary stays in the file being left.
    pub fn rotate(&mut self, next: String) {
        self.boundary();
        self.file = next;
    }

    /// A BEGIN query.
    pub fn begin(&mut self) {
        self.in_txn = true;
    }

    /// A GTID event opening a transaction.
    pub fn gtid(&mut self, g: PendingGtid) {
        self.pending_gtid = Some(g);
    }

    /// MariaDB's GTID_LIST at the start of a file: the set, when the run knows none yet.
    pub fn gtid_list(&mut self, list: Vec<MariaGtid>, flavor: Flavor) {
        if self.gtid.is_none() && flavor == Flavor::MariaDb {
            self.boundary();
            let mut set = MariaGtidSet::default();
            for g in list {
                set.update(g);
            }
            self.gtid = Some(GtidSet::MariaDb(set));
        }
    }

    /// A GTID start knows no file position: the start of the first transaction received
    /// (its GTID event ends at `end` and is `size` bytes) is where a position-based replay of
    /// this run must begin. Only while `unsaved` (no checkpoint written yet).
    pub fn note_first_transaction(&mut self, end: u32, size: u32, unsaved: bool) {
        if unsaved && self.boundary().position.name.is_empty() && end >= size {
            self.boundary.position = Position::new(self.file.clone(), end - size);
        }
    }

    /// A transaction's end at `end` (0: an event without a position): its GTID joins the set
    /// and `end` becomes the boundary.
    pub fn close_txn(&mut self, end: u32) {
        self.in_txn = false;
        if end == 0 {
            // No position to move to: the boundary keeps its GTID state as of now.
            self.boundary();
        }
        match self.pending_gtid.take() {
            Some(PendingGtid::Maria(g)) => match &mut self.gtid {
                Some(GtidSet::MariaDb(set)) => set.update(g),
                _ => {
                    let mut set = MariaGtidSet::default();
                    set.update(g);
                    self.gtid = Some(GtidSet::MariaDb(set));
                }
            },
            Some(PendingGtid::Mysql(uuid, gno)) => {
                let mut set = match self.gtid.take() {
                    Some(GtidSet::MySql(s)) => s,
                    _ => Default::default(),
                };
                set.add_interval(&uuid, gno, gno);
                self.gtid = Some(GtidSet::MySql(set));
            }
            None => {}
        }
        if end > 0 {
            self.boundary_end = Some(end);
        }
    }

    /// Where the event ending at `end` is, for error messages.
    pub fn here(&self, end: u32) -> Location {
        Location {
            position: Position::new(self.file.clone(), end),
            gtid: self.gtid.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(applied: Option<Vec<u64>>, gtid: Option<&str>) -> SavedCheckpoint {
        SavedCheckpoint {
            location: Location {
                position: Position::new("mysql-bin.000003", 900),
                gtid: gtid.map(|g| GtidSet::parse_any(g).unwrap()),
            },
            tables: Vec::new(),
            applied,
            exit_safe: Some(Location::at(Position::new("mysql-bin.000003", 1200))),
        }
    }

    fn meta(name: &str, pos: u32, gtid: &str) -> Meta {
        Meta {
            binlog_name: name.into(),
            binlog_pos: pos,
            binlog_gtid: gtid.into(),
        }
    }

    #[test]
    fn a_checkpoint_beats_meta_and_carries_the_workers_progress() {
        let cp = saved(Some(vec![3, 0, 7]), Some("0-1-42"));
        let m = meta("mysql-bin.000001", 4, "");
        let r = Resume::resolve(Some(&cp), Some(&m), false).unwrap();
        assert_eq!(
            r.start,
            StartPoint::Position(Position::new("mysql-bin.000003", 900))
        );
        assert_eq!(r.location, cp.location);
        assert_eq!(r.applied, Some(vec![3, 0, 7]));
        assert_eq!(r.exit_safe, cp.exit_safe);
        assert!(!r.needs_initial_save);
        // With enable-gtid the stream is asked by the checkpoint's GTID set.
        let r = Resume::resolve(Some(&cp), None, true).unwrap();
        assert!(matches!(r.start, StartPoint::Gtid(_)));
        // Worker rows of another worker-count (None): replay is not exact, save at once.
        let r = Resume::resolve(Some(&saved(None, None)), None, true).unwrap();
        assert_eq!(r.applied, None);
        assert!(r.needs_initial_save);
        assert!(
            matches!(r.start, StartPoint::Position(_)),
            "no GTID in the checkpoint"
        );
    }

    #[test]
    fn without_a_checkpoint_meta_decides() {
        let r = Resume::resolve(None, Some(&meta("mysql-bin.000002", 0, "")), false).unwrap();
        assert_eq!(
            r.start,
            StartPoint::Position(Position::new("mysql-bin.000002", 4))
        );
        assert!(r.needs_initial_save && r.applied.is_none());
        // A GTID set alone, or with enable-gtid, starts by GTID with no file position yet.
        for (m, gtid) in [
            (meta("", 0, "0-1-5"), false),
            (meta("f.000001", 4, "0-1-5"), true),
        ] {
            let r = Resume::resolve(None, Some(&m), gtid).unwrap();
            assert!(matches!(r.start, StartPoint::Gtid(_)), "{m:?}");
            assert_eq!(r.location.position.name, "");
        }
        // File and GTID without enable-gtid: by position, the set kept for status.
        let r = Resume::resolve(None, Some(&meta("f.000001", 120, "0-1-5")), false).unwrap();
        assert_eq!(
            r.start,
            StartPoint::Position(Position::new("f.000001", 120))
        );
        assert!(r.location.gtid.is_some());
        let e = Resume::resolve(None, Some(&meta("", 0, "")), false).unwrap_err();
        assert_eq!(e.code, codes::SYNC_NO_START_POSITION.code);
        let e = Resume::resolve(None, Some(&meta("", 0, "nonsense")), true).unwrap_err();
        assert_eq!(e.code, codes::PARSE_GTID.code);
    }

    fn g(seq: u64) -> PendingGtid {
        PendingGtid::Maria(MariaGtid {
            domain: 0,
            server: 1,
            seq,
        })
    }

    #[test]
    fn the_boundary_moves_only_at_transaction_ends() {
        let start = Location {
            position: Position::new("bin.000001", 4),
            gtid: Some(GtidSet::parse_any("0-1-10").unwrap()),
        };
        let mut p = StreamPosition::new(&start);
        p.gtid(g(11));
        p.begin();
        assert!(p.in_txn());
        // Inside the transaction the boundary is still the start.
        assert_eq!(p.boundary(), &start);
        p.close_txn(500);
        assert!(!p.in_txn());
        assert_eq!(p.boundary().position, Position::new("bin.000001", 500));
        assert_eq!(p.boundary().gtid.as_ref().unwrap().to_string(), "0-1-11");
        // A rotate keeps the boundary in the old file until the next transaction ends.
        p.rotate("bin.000002".into());
        assert_eq!(p.boundary().position.name, "bin.000001");
        assert_eq!(p.here(77).position, Position::new("bin.000002", 77));
        p.gtid(g(12));
        p.close_txn(300);
        assert_eq!(p.boundary().position, Position::new("bin.000002", 300));
        // An event without a position (end 0) closes the transaction but keeps the position.
        p.gtid(g(13));
        p.close_txn(0);
        assert_eq!(p.boundary().position, Position::new("bin.000002", 300));
    }

    #[test]
    fn a_gtid_start_learns_its_file_position_from_the_first_transaction() {
        let start = Location {
            position: Position::new("", 4),
            gtid: Some(GtidSet::parse_any("0-1-5").unwrap()),
        };
        let mut p = StreamPosition::new(&start);
        p.rotate("bin.000009".into());
        // The GTID event of the first transaction ends at 1042 and is 42 bytes long.
        p.note_first_transaction(1042, 42, true);
        assert_eq!(p.boundary().position, Position::new("bin.000009", 1000));
        // Later transactions do not move the start again.
        p.note_first_transaction(5042, 42, true);
        assert_eq!(p.boundary().position, Position::new("bin.000009", 1000));
        // MariaDB's GTID_LIST sets the GTID set when the run knows none (the state from here
        // on; the last boundary keeps what it had), and only then.
        let list = |seq| {
            vec![MariaGtid {
                domain: 0,
                server: 1,
                seq,
            }]
        };
        let mut fresh = StreamPosition::new(&Location::at(Position::new("bin.000001", 4)));
        fresh.gtid_list(list(9), Flavor::MariaDb);
        assert_eq!(fresh.here(100).gtid.unwrap().to_string(), "0-1-9");
        fresh.gtid_list(list(20), Flavor::MariaDb);
        assert_eq!(fresh.here(100).gtid.unwrap().to_string(), "0-1-9");
        fresh.gtid(g(10));
        fresh.close_txn(200);
        assert_eq!(
            fresh.boundary().gtid.as_ref().unwrap().to_string(),
            "0-1-10"
        );
    }
}
