//! The binlog stream against a real MariaDB: by position, by GTID, and a refused start.

use std::time::Duration;

use dm::binlog::event::{BinlogEvent, types};
use dm::binlog::gtid::GtidSet;
use dm::binlog::location::Position;
use dm::binlog::stream::{
    Flavor, StartPoint, StreamRequest, detect_flavor, is_start_point_gone, master_status,
    open_stream,
};
use futures_util::StreamExt;

use crate::harness::{fresh_db, shared_upstream};

fn request(start: StartPoint) -> StreamRequest {
    StreamRequest {
        server_id: 100_000 + rand::random::<u32>() % 1_000_000,
        flavor: Flavor::MariaDb,
        start,
        heartbeat: Duration::from_secs(1),
    }
}

/// Reads events until `stop` says so (or 30 s pass), returning them with their end positions.
async fn collect(
    stream: &mut mysql_async::BinlogStream,
    mut stop: impl FnMut(&BinlogEvent) -> bool,
) -> Vec<(BinlogEvent, u32)> {
    let mut out = Vec::new();
    let read = async {
        while let Some(ev) = stream.next().await {
            let ev = ev.expect("stream item");
            let b = BinlogEvent::classify(&ev).expect("event classifies");
            let done = stop(&b);
            out.push((b, ev.header().log_pos()));
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("events within 30 s");
    out
}

#[tokio::test]
async fn stream_from_position_sees_ddl_and_a_transaction_in_order() {
    let up = shared_upstream();
    let db = fresh_db(up, "stream_pos");
    let mut conn = up.conn().await;
    assert_eq!(detect_flavor(&mut conn).await.unwrap(), Flavor::MariaDb);
    let (pos, gtid) = master_status(&mut conn, Flavor::MariaDb).await.unwrap();
    let pos = pos.expect("binlog on");
    assert!(matches!(gtid, Some(GtidSet::MariaDb(_))));

    let mut stream = open_stream(up.opts(None), &request(StartPoint::Position(pos.clone())))
        .await
        .unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
        .await;
    db.exec(
        "BEGIN; INSERT INTO t VALUES (1, 'a'), (2, 'b'); UPDATE t SET v = 'c' WHERE id = 2; COMMIT",
    )
    .await;

    let mut seen_insert = false;
    let events = collect(&mut stream, |e| {
        let is_xid = matches!(e, BinlogEvent::Xid { .. });
        let done = is_xid && seen_insert;
        if matches!(e, BinlogEvent::Rows { .. }) {
            seen_insert = true;
        }
        done
    })
    .await;
    let kinds: Vec<&BinlogEvent> = events
        .iter()
        .map(|(e, _)| e)
        .filter(|e| !matches!(e, BinlogEvent::Heartbeat))
        .collect();
    match kinds[0] {
        BinlogEvent::Rotate { next, pos: p, fake } => {
            assert!(*fake);
            assert_eq!(
                next, &pos.name,
                "the fake rotate names the requested file, checksum stripped"
            );
            assert_eq!(*p, pos.pos as u64);
        }
        other => panic!("first event {other:?}"),
    }
    assert_eq!(kinds[1], &BinlogEvent::FormatDescription);
    let ddl_at = kinds
        .iter()
        .position(|e| matches!(e, BinlogEvent::Query { sql, .. } if sql.contains("CREATE TABLE t")))
        .expect("DDL seen");
    assert!(
        matches!(
            kinds[ddl_at - 1],
            BinlogEvent::MariaGtid {
                standalone: true,
                ..
            }
        ),
        "{kinds:?}"
    );
    let tail: Vec<String> = kinds[ddl_at + 1..]
        .iter()
        .filter(|e| !matches!(e, BinlogEvent::Other(_)))
        .map(|e| match e {
            BinlogEvent::MariaGtid { standalone, .. } => format!("gtid(standalone={standalone})"),
            BinlogEvent::TableMap => "table_map".into(),
            BinlogEvent::Rows { event_type } => format!("rows({event_type})"),
            BinlogEvent::Xid { .. } => "xid".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        tail,
        [
            "gtid(standalone=false)",
            "table_map",
            format!("rows({})", types::WRITE_ROWS_V1).as_str(),
            "table_map",
            format!("rows({})", types::UPDATE_ROWS_V1).as_str(),
            "xid"
        ]
    );
    let positions: Vec<u32> = events
        .iter()
        .skip(2)
        .map(|(_, p)| *p)
        .filter(|p| *p > 0)
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "end positions grow: {positions:?}"
    );
}

#[tokio::test]
async fn stream_from_gtid_starts_after_the_given_set() {
    let up = shared_upstream();
    let db = fresh_db(up, "stream_gtid");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let mut conn = up.conn().await;
    let (_, gtid) = master_status(&mut conn, Flavor::MariaDb).await.unwrap();
    let Some(GtidSet::MariaDb(before)) = gtid else {
        panic!("MariaDB GTID expected")
    };
    db.exec("INSERT INTO t VALUES (1)").await;

    let mut stream = open_stream(
        up.opts(None),
        &request(StartPoint::Gtid(GtidSet::MariaDb(before.clone()))),
    )
    .await
    .unwrap();
    let events = collect(&mut stream, |e| matches!(e, BinlogEvent::Xid { .. })).await;
    let first_gtid = events
        .iter()
        .find_map(|(e, _)| match e {
            BinlogEvent::MariaGtid { gtid, .. } => Some(*gtid),
            _ => None,
        })
        .expect("a GTID event");
    let prev = before.domains.get(&first_gtid.domain).map_or(0, |g| g.seq);
    assert!(first_gtid.seq > prev, "{first_gtid} comes after {before}");
    assert!(
        events
            .iter()
            .any(|(e, _)| matches!(e, BinlogEvent::MariaGtidList(_))),
        "GTID_LIST is delivered with capability 4"
    );
}

#[tokio::test]
async fn missing_start_file_is_a_refused_start_point() {
    let up = shared_upstream();
    let start = StartPoint::Position(Position::new("mysql-bin.999998", 4));
    let mut stream = open_stream(up.opts(None), &request(start)).await.unwrap();
    let item = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("an answer")
        .expect("an item");
    let err = item.expect_err("the server refuses a file it does not have");
    assert!(is_start_point_gone(&err), "{err:?}");
}
