//! Classifying binlog events into what the syncer acts on, including MariaDB's own events
//! that mysql_common does not decode (GTID 162, GTID_LIST 163, BINLOG_CHECKPOINT 161,
//! ANNOTATE_ROWS 160).
//!
//! Rows and TABLE_MAP events are only tagged here: their bodies go to [`super::decode`].

use mysql_async::binlog::events::{Event, QueryEvent, RotateEvent, XidEvent};

use super::gtid::MariaGtid;
use crate::error::{DmError, codes};

/// Binlog event type numbers used here (MySQL's `Log_event_type` and MariaDB's additions).
pub mod types {
    pub const QUERY: u8 = 2;
    pub const ROTATE: u8 = 4;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const HEARTBEAT: u8 = 27;
    pub const WRITE_ROWS_V2: u8 = 30;
    pub const UPDATE_ROWS_V2: u8 = 31;
    pub const DELETE_ROWS_V2: u8 = 32;
    pub const MYSQL_GTID: u8 = 33;
    pub const MYSQL_ANONYMOUS_GTID: u8 = 34;
    pub const MYSQL_PREVIOUS_GTIDS: u8 = 35;
    pub const XA_PREPARE: u8 = 38;
    pub const TRANSACTION_PAYLOAD: u8 = 40;
    pub const MARIA_ANNOTATE_ROWS: u8 = 160;
    pub const MARIA_BINLOG_CHECKPOINT: u8 = 161;
    pub const MARIA_GTID: u8 = 162;
    pub const MARIA_GTID_LIST: u8 = 163;
    pub const MARIA_QUERY_COMPRESSED: u8 = 165;
    pub const MARIA_WRITE_ROWS_COMPRESSED_V1: u8 = 166;
    pub const MARIA_UPDATE_ROWS_COMPRESSED_V1: u8 = 167;
    pub const MARIA_DELETE_ROWS_COMPRESSED_V1: u8 = 168;
    pub const MARIA_WRITE_ROWS_COMPRESSED: u8 = 169;
    pub const MARIA_UPDATE_ROWS_COMPRESSED: u8 = 170;
    pub const MARIA_DELETE_ROWS_COMPRESSED: u8 = 171;
}

/// MariaDB GTID event flag: the event group is a single statement without BEGIN/COMMIT (DDL).
const FL_STANDALONE: u8 = 1;
/// MariaDB GTID event flag: a commit id follows.
const FL_GROUP_COMMIT_ID: u8 = 2;

/// What an event means to the syncer.
#[derive(Debug, Clone, PartialEq)]
pub enum BinlogEvent {
    /// Switch to `next` at `pos`. `fake` rotates come first in every stream and move nothing.
    Rotate {
        next: String,
        pos: u64,
        fake: bool,
    },
    FormatDescription,
    /// MariaDB: start of a transaction (or of a standalone DDL when `standalone`).
    MariaGtid {
        gtid: MariaGtid,
        standalone: bool,
    },
    /// MariaDB: the GTID state at the start of a binlog file.
    MariaGtidList(Vec<MariaGtid>),
    /// MySQL: start of a transaction with this GTID (`uuid:gno`).
    MysqlGtid {
        uuid: String,
        gno: u64,
    },
    /// A statement: `BEGIN`, `COMMIT`, or DDL, run with default schema `schema`.
    Query {
        schema: String,
        sql: String,
    },
    TableMap,
    /// A rows event of raw type `event_type`; decode its body with the table's plan.
    Rows {
        event_type: u8,
    },
    /// End of an InnoDB transaction.
    Xid {
        xid: u64,
    },
    Heartbeat,
    /// Anything else (checkpoints, annotations, previous-gtids, ...), with its type number.
    Other(u8),
}

impl BinlogEvent {
    /// Reads what `ev` means.
    pub fn classify(ev: &Event) -> Result<Self, DmError> {
        let t = ev.header().event_type_raw();
        let bad = |what: &str, e: std::io::Error| {
            DmError::new(&codes::NOT_SET, format!("cannot read binlog {what} event")).with_cause(e)
        };
        Ok(match t {
            types::ROTATE => {
                let r: RotateEvent = ev.read_event().map_err(|e| bad("ROTATE", e))?;
                let mut name = r.name_raw();
                // The fake rotate that opens a stream comes before any FDE, so its 4 CRC32
                // bytes are still on the name; they are there exactly when they verify.
                if has_unstripped_checksum(ev) {
                    name = &name[..name.len() - 4];
                }
                let fake = ev.header().timestamp() == 0;
                BinlogEvent::Rotate {
                    next: String::from_utf8_lossy(name).into_owned(),
                    pos: r.position(),
                    fake,
                }
            }
            types::FORMAT_DESCRIPTION => BinlogEvent::FormatDescription,
            types::QUERY => {
                let q: QueryEvent = ev.read_event().map_err(|e| bad("QUERY", e))?;
                BinlogEvent::Query {
                    schema: q.schema().to_string(),
                    sql: q.query().to_string(),
                }
            }
            types::XID => {
                let x: XidEvent = ev.read_event().map_err(|e| bad("XID", e))?;
                BinlogEvent::Xid { xid: x.xid }
            }
            types::TABLE_MAP => BinlogEvent::TableMap,
            types::WRITE_ROWS_V1
            | types::UPDATE_ROWS_V1
            | types::DELETE_ROWS_V1
            | types::WRITE_ROWS_V2
            | types::UPDATE_ROWS_V2
            | types::DELETE_ROWS_V2
            | types::MARIA_WRITE_ROWS_COMPRESSED_V1
            | types::MARIA_UPDATE_ROWS_COMPRESSED_V1
            | types::MARIA_DELETE_ROWS_COMPRESSED_V1
            | types::MARIA_WRITE_ROWS_COMPRESSED
            | types::MARIA_UPDATE_ROWS_COMPRESSED
            | types::MARIA_DELETE_ROWS_COMPRESSED => BinlogEvent::Rows { event_type: t },
            types::MARIA_QUERY_COMPRESSED => {
                // Skipping it would silently lose a statement (possibly DDL).
                return Err(DmError::new(&codes::SYNC_DECODE_FAILED, "compressed binlog events are not supported")
                    .with_workaround("Set log_bin_compress=OFF on the upstream and restart the task from a position after the compressed events."));
            }
            types::HEARTBEAT => BinlogEvent::Heartbeat,
            types::MARIA_GTID => {
                let (gtid, standalone) = parse_maria_gtid(ev.data(), ev.header().server_id())?;
                BinlogEvent::MariaGtid { gtid, standalone }
            }
            types::MARIA_GTID_LIST => BinlogEvent::MariaGtidList(parse_maria_gtid_list(ev.data())?),
            types::MYSQL_GTID => {
                let d = ev.data();
                if d.len() < 25 {
                    return Err(DmError::new(
                        &codes::PARSE_GTID,
                        "MySQL GTID event is too short",
                    ));
                }
                let uuid = format_uuid(&d[1..17]);
                let gno = u64::from_le_bytes(d[17..25].try_into().expect("8 bytes"));
                BinlogEvent::MysqlGtid { uuid, gno }
            }
            other => BinlogEvent::Other(other),
        })
    }
}

/// True when the last 4 bytes of `ev`'s data are the CRC32 of its header and the rest of
/// its data, i.e. the checksum was not stripped.
fn has_unstripped_checksum(ev: &Event) -> bool {
    let h = ev.header();
    let d = ev.data();
    if d.len() < 4 || h.event_size() as usize != 19 + d.len() {
        return false;
    }
    let mut header = Vec::with_capacity(19);
    header.extend(h.timestamp().to_le_bytes());
    header.push(h.event_type_raw());
    header.extend(h.server_id().to_le_bytes());
    header.extend(h.event_size().to_le_bytes());
    header.extend(h.log_pos().to_le_bytes());
    header.extend(h.flags_raw().to_le_bytes());
    let (body, crc) = d.split_at(d.len() - 4);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header);
    hasher.update(body);
    hasher.finalize() == u32::from_le_bytes(crc.try_into().expect("4 bytes"))
}

/// MariaDB GTID event payload: seq u64, domain u32, flags2 u8 [+ commit id u64].
pub fn parse_maria_gtid(d: &[u8], server_id: u32) -> Result<(MariaGtid, bool), DmError> {
    if d.len() < 13 {
        return Err(DmError::new(
            &codes::PARSE_GTID,
            "MariaDB GTID event is too short",
        ));
    }
    let seq = u64::from_le_bytes(d[0..8].try_into().expect("8 bytes"));
    let domain = u32::from_le_bytes(d[8..12].try_into().expect("4 bytes"));
    let flags = d[12];
    let _has_commit_id = flags & FL_GROUP_COMMIT_ID != 0;
    Ok((
        MariaGtid {
            domain,
            server: server_id,
            seq,
        },
        flags & FL_STANDALONE != 0,
    ))
}

/// MariaDB GTID_LIST payload: count (low 28 bits of a u32), then (domain, server, seq) each.
pub fn parse_maria_gtid_list(d: &[u8]) -> Result<Vec<MariaGtid>, DmError> {
    let short = || DmError::new(&codes::PARSE_GTID, "MariaDB GTID_LIST event is too short");
    if d.len() < 4 {
        return Err(short());
    }
    let count = (u32::from_le_bytes(d[0..4].try_into().expect("4 bytes")) & 0x0fff_ffff) as usize;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let o = 4 + i * 16;
        let e = d.get(o..o + 16).ok_or_else(short)?;
        out.push(MariaGtid {
            domain: u32::from_le_bytes(e[0..4].try_into().expect("4 bytes")),
            server: u32::from_le_bytes(e[4..8].try_into().expect("4 bytes")),
            seq: u64::from_le_bytes(e[8..16].try_into().expect("8 bytes")),
        });
    }
    Ok(out)
}

/// 16 bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn format_uuid(b: &[u8]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maria_gtid_payloads() {
        let mut d = 42u64.to_le_bytes().to_vec();
        d.extend(7u32.to_le_bytes());
        d.push(FL_STANDALONE);
        let (g, standalone) = parse_maria_gtid(&d, 3).unwrap();
        assert_eq!(g.to_string(), "7-3-42");
        assert!(standalone);
        assert!(parse_maria_gtid(&d[..5], 3).is_err());

        let mut l = 2u32.to_le_bytes().to_vec();
        for (dom, srv, seq) in [(0u32, 1u32, 9u64), (1, 2, 3)] {
            l.extend(dom.to_le_bytes());
            l.extend(srv.to_le_bytes());
            l.extend(seq.to_le_bytes());
        }
        let list = parse_maria_gtid_list(&l).unwrap();
        assert_eq!(
            list.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
            ["0-1-9", "1-2-3"]
        );
        assert!(parse_maria_gtid_list(&l[..20]).is_err());
    }

    #[test]
    fn uuid_text() {
        assert_eq!(
            format_uuid(&[0xab; 16]),
            "abababab-abab-abab-abab-abababababab"
        );
    }
}
