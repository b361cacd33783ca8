//! Opening a binlog stream as a replica (mysql_async's COM_BINLOG_DUMP), for both flavors,
//! from a file + position or from a GTID set, and reading the upstream's own state.
//!
//! - MariaDB needs `@mariadb_slave_capability=4` first, or it rewrites GTID events into
//!   `BEGIN` queries and drops GTID_LIST; a GTID start is an empty file name plus
//!   `@slave_connect_state`.
//! - MySQL starts from a GTID set with COM_BINLOG_DUMP_GTID (intervals sent end-exclusive).
//! - Every stream has its own server id: a second replica with the same id makes the server
//!   drop the first connection.
//! - Server errors (a purged start position, error 1236) arrive as stream items, not from
//!   the request, which is lazy.

use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts};

use super::gtid::{GtidSet, MysqlGtidSet};
use super::location::Position;
use crate::error::{DmError, codes};

pub use crate::db::errno::{ER_CONNECTION_ALREADY_EXISTS, ER_MASTER_FATAL_ERROR_READING_BINLOG};

/// Upstream server family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MySql,
    MariaDb,
}

impl Flavor {
    /// Parses a config `flavor` (empty means "detect").
    pub fn from_config(s: &str) -> Option<Self> {
        match s {
            "mysql" => Some(Self::MySql),
            "mariadb" => Some(Self::MariaDb),
            _ => None,
        }
    }
}

/// Where a stream starts.
#[derive(Debug, Clone, PartialEq)]
pub enum StartPoint {
    Position(Position),
    Gtid(GtidSet),
}

/// A replica stream request.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    /// Replica server id, unique among the upstream's replicas.
    pub server_id: u32,
    pub flavor: Flavor,
    pub start: StartPoint,
    /// Heartbeat period when the upstream is idle.
    pub heartbeat: Duration,
}

fn db_err(what: &str, e: mysql_async::Error) -> DmError {
    DmError::new(&codes::DB_QUERY_FAILED, what.to_string()).with_cause(e)
}

/// Reads the upstream's flavor from its version string.
pub async fn detect_flavor(conn: &mut Conn) -> Result<Flavor, DmError> {
    let v: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| db_err("reading the upstream version", e))?;
    Ok(
        if v.unwrap_or_default()
            .to_ascii_lowercase()
            .contains("mariadb")
        {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        },
    )
}

/// The upstream's current binlog end: `SHOW MASTER STATUS` position and executed GTID set
/// (MariaDB: `@@gtid_binlog_pos`; MySQL: `Executed_Gtid_Set`). `None` position when binlog is
/// off.
pub async fn master_status(
    conn: &mut Conn,
    flavor: Flavor,
) -> Result<(Option<Position>, Option<GtidSet>), DmError> {
    let row: Option<mysql_async::Row> = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .map_err(|e| db_err("SHOW MASTER STATUS", e))?;
    let Some(row) = row else {
        return Ok((None, None));
    };
    let name: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or(0);
    let position = Some(Position::new(name, pos as u32));
    let gtid = match flavor {
        Flavor::MariaDb => {
            let g: Option<String> = conn
                .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
                .await
                .map_err(|e| db_err("reading gtid_binlog_pos", e))?;
            g.filter(|s| !s.is_empty())
                .map(|s| GtidSet::parse_any(&s))
                .transpose()
        }
        Flavor::MySql => {
            let g: Option<String> = if row.len() >= 5 { row.get(4) } else { None };
            g.map(|s| s.replace('\n', ""))
                .filter(|s| !s.is_empty())
                .map(|s| GtidSet::parse_any(&s))
                .transpose()
        }
    }
    .map_err(|e| DmError::new(&codes::PARSE_GTID, format!("upstream GTID set: {e}")))?;
    Ok((position, gtid))
}

/// Opens a stream on `opts` as described by `req`. The returned stream yields events; its
/// first items are a fake ROTATE naming the file it reads and that file's FDE.
pub async fn open_stream(opts: Opts, req: &StreamRequest) -> Result<BinlogStream, DmError> {
    let mut conn = Conn::new(opts).await.map_err(|e| {
        DmError::new(
            &codes::DB_BAD_CONN,
            "cannot connect to the upstream for the binlog stream",
        )
        .with_cause(e)
    })?;
    let period_ns = req.heartbeat.as_nanos().min(u64::MAX as u128) as u64;
    conn.query_drop(format!("SET @master_heartbeat_period = {period_ns}"))
        .await
        .map_err(|e| db_err("setting the heartbeat", e))?;
    let stream = match (req.flavor, &req.start) {
        (Flavor::MariaDb, start) => {
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(|e| db_err("declaring replica capabilities", e))?;
            match start {
                StartPoint::Position(p) => {
                    let r = BinlogStreamRequest::new(req.server_id)
                        .with_filename(p.name.as_bytes())
                        .with_pos(p.pos.max(4) as u64);
                    conn.get_binlog_stream(r).await
                }
                StartPoint::Gtid(g) => {
                    conn.exec_drop("SET @slave_connect_state = ?", (g.to_string(),))
                        .await
                        .map_err(|e| db_err("setting slave_connect_state", e))?;
                    conn.query_drop(
                        "SET @slave_gtid_strict_mode = 0, @slave_gtid_ignore_duplicates = 0",
                    )
                    .await
                    .map_err(|e| db_err("setting GTID replica options", e))?;
                    conn.get_binlog_stream(
                        BinlogStreamRequest::new(req.server_id)
                            .with_filename(b"")
                            .with_pos(4),
                    )
                    .await
                }
            }
        }
        (Flavor::MySql, StartPoint::Position(p)) => {
            let r = BinlogStreamRequest::new(req.server_id)
                .with_filename(p.name.as_bytes())
                .with_pos(p.pos.max(4) as u64);
            conn.get_binlog_stream(r).await
        }
        (Flavor::MySql, StartPoint::Gtid(GtidSet::MySql(set))) => {
            conn.get_binlog_stream(
                BinlogStreamRequest::new(req.server_id)
                    .with_gtid()
                    .with_gtid_set(mysql_sids(set)?),
            )
            .await
        }
        (Flavor::MySql, StartPoint::Gtid(g)) => {
            return Err(DmError::new(
                &codes::PARSE_GTID,
                format!("`{g}` is a MariaDB GTID set but the upstream is MySQL"),
            ));
        }
    };
    stream
        .map_err(|e| DmError::new(&codes::DB_BAD_CONN, "binlog dump request failed").with_cause(e))
}

/// A MySQL GTID set as COM_BINLOG_DUMP_GTID's SID blocks (end-exclusive intervals).
fn mysql_sids(set: &MysqlGtidSet) -> Result<Vec<mysql_async::Sid<'static>>, DmError> {
    set.sets
        .iter()
        .map(|(uuid, ivs)| {
            let raw = hex::decode(uuid.replace('-', ""))
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| {
                    DmError::new(&codes::PARSE_GTID, format!("bad server UUID `{uuid}`"))
                })?;
            let intervals = ivs
                .iter()
                .map(|&(a, b)| mysql_async::GnoInterval::new(a, b + 1))
                .collect();
            Ok(mysql_async::Sid::new(raw).with_intervals(intervals))
        })
        .collect()
}

/// Whether a stream error is the server refusing the start point (purged or unknown binlog),
/// which retrying cannot fix.
pub fn is_start_point_gone(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == ER_MASTER_FATAL_ERROR_READING_BINLOG)
}
