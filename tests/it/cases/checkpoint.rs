//! The syncer's checkpoint tables on a real MariaDB target.

use dm::binlog::gtid::GtidSet;
use dm::binlog::location::{Location, Position};
use dm::sql::checkpoint::CheckpointTables;
use mysql_async::prelude::*;

use crate::harness::{fresh_db, shared_downstream};

#[tokio::test]
async fn checkpoint_round_trips_and_worker_progress_resets() {
    let meta = fresh_db(shared_downstream(), "cp_meta");
    let cp = CheckpointTables::new(meta.name(), "task-1", "src-1");
    let other = CheckpointTables::new(meta.name(), "task-1", "src-2");
    let mut conn = meta.conn().await;
    cp.ensure(&mut conn).await.unwrap();
    cp.ensure(&mut conn).await.unwrap();
    assert_eq!(cp.load(&mut conn, 3).await.unwrap(), None);

    let loc = Location {
        position: Position::new("mysql-bin.000002", 1234),
        gtid: Some(GtidSet::parse_any("0-1-77").unwrap()),
    };
    let tables = vec![
        (
            "db".to_string(),
            "t1".to_string(),
            r#"{"columns":["a"]}"#.to_string(),
        ),
        ("db".to_string(), "t2".to_string(), "{}".to_string()),
    ];
    cp.save(&mut conn, &loc, &tables, 3, None, None)
        .await
        .unwrap();
    other
        .save(
            &mut conn,
            &Location::at(Position::new("x.000001", 4)),
            &[],
            2,
            None,
            None,
        )
        .await
        .unwrap();
    let saved = cp.load(&mut conn, 3).await.unwrap().unwrap();
    assert_eq!(saved.location, loc);
    assert_eq!(saved.tables.len(), 2);
    assert_eq!(saved.applied, Some(vec![0, 0, 0]));
    assert_eq!(saved.exit_safe, None);

    // A worker's batch bumps its counter inside its own transaction; a rollback does not.
    conn.query_drop(format!(
        "BEGIN; {}; COMMIT",
        cp.worker_progress_sql(0, 5, 77)
    ))
    .await
    .unwrap();
    conn.query_drop(format!(
        "BEGIN; {}; ROLLBACK",
        cp.worker_progress_sql(2, 9, 78)
    ))
    .await
    .unwrap();
    assert_eq!(
        cp.load(&mut conn, 3).await.unwrap().unwrap().applied,
        Some(vec![5, 0, 0])
    );
    assert_eq!(
        cp.load(&mut conn, 4).await.unwrap().unwrap().applied,
        None,
        "other worker count: no exact replay"
    );

    // The next flush moves the point, drops t2's row, resets the counters, keeps src-2 apart.
    let next = Location::at(Position::new("mysql-bin.000003", 4));
    cp.save(&mut conn, &next, &tables[..1], 3, Some(&loc), None)
        .await
        .unwrap();
    let saved = cp.load(&mut conn, 3).await.unwrap().unwrap();
    assert_eq!(saved.location, next);
    assert_eq!(saved.tables, tables[..1]);
    assert_eq!(saved.applied, Some(vec![0, 0, 0]));
    assert_eq!(saved.exit_safe, Some(loc));
    assert_eq!(
        other.load(&mut conn, 2).await.unwrap().unwrap().applied,
        Some(vec![0, 0])
    );

    cp.remove(&mut conn).await.unwrap();
    assert_eq!(cp.load(&mut conn, 3).await.unwrap(), None);
    assert!(other.load(&mut conn, 2).await.unwrap().is_some());
}

/// Subtasks of one task share the checkpoint tables: sources flushing at the same moment can
/// deadlock each other on InnoDB's gap locks (seen with two sources loading into one target).
/// Every save must still succeed: the transaction is retried by `db::retry_transient`. The
/// test runs rounds of concurrent saves until the target reports a deadlock on these tables
/// (so the retry path was really taken), and fails if any save fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_of_several_sources_survive_deadlocks() {
    let meta = fresh_db(shared_downstream(), "cp_deadlock");
    let task = format!("dl{:06x}", rand::random::<u32>() & 0xff_ffff);
    let mut conn = meta.conn().await;
    CheckpointTables::new(meta.name(), &task, "s0")
        .ensure(&mut conn)
        .await
        .unwrap();
    let tables: Vec<(String, String, String)> = (0..4)
        .map(|i| ("db".to_string(), format!("t{i}"), "{}".to_string()))
        .collect();
    let mut deadlocked = false;
    for round in 0..40 {
        // Six sources' flushes at once (concurrent I/O on one task; `save` need not be Send).
        let saves = (0..6).map(|s| {
            let cp = CheckpointTables::new(meta.name(), &task, &format!("s{s}"));
            let opts = meta.opts();
            let tables = &tables;
            async move {
                let mut c = mysql_async::Conn::new(opts).await.unwrap();
                for i in 0..5u32 {
                    let loc = Location::at(Position::new("mysql-bin.000001", 4 + round * 10 + i));
                    cp.save(&mut c, &loc, tables, 8, None, None).await?;
                }
                Ok::<_, dm::error::DmError>(())
            }
        });
        for r in futures_util::future::join_all(saves).await {
            r.unwrap_or_else(|e| panic!("a concurrent save failed: {}", e.report()));
        }
        let status: Option<(String, String, String)> =
            conn.query_first("SHOW ENGINE INNODB STATUS").await.unwrap();
        let text = status.map(|s| s.2).unwrap_or_default();
        if let Some(i) = text.find("LATEST DETECTED DEADLOCK") {
            let section = &text[i..text[i..]
                .find("TRANSACTIONS\n")
                .map_or(text.len(), |j| i + j)];
            if section.contains(&format!("{task}_syncer")) {
                deadlocked = true;
                break;
            }
        }
    }
    assert!(
        deadlocked,
        "no deadlock on the checkpoint tables in 40 rounds: the retry path was not exercised"
    );
}
