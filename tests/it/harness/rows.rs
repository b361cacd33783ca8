//! Comparing tables by their rows: every row, ordered by all columns, as SQL literals (a
//! checksum and a count can agree on different rows; a full comparison cannot).

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};

/// Every row of `table` (`db`.`t`, quoted) ordered by all columns; `None` when the table does
/// not exist (so that two missing tables never compare equal by accident).
pub async fn table_rows(server: &Opts, table: &str) -> Option<Vec<Vec<String>>> {
    let mut conn = Conn::new(server.clone())
        .await
        .expect("connect for a row dump");
    conn.query_drop("SET SESSION time_zone = '+00:00'")
        .await
        .unwrap();
    let cols: usize = match conn
        .query_first::<mysql_async::Row, _>(format!("SELECT * FROM {table} LIMIT 1"))
        .await
    {
        Ok(Some(r)) => r.len(),
        Ok(None) => return Some(Vec::new()),
        Err(_) => return None,
    };
    let order: Vec<String> = (1..=cols).map(|i| i.to_string()).collect();
    let rows: Vec<mysql_async::Row> = conn
        .query(format!(
            "SELECT * FROM {table} ORDER BY {}",
            order.join(",")
        ))
        .await
        .unwrap();
    let _ = conn.disconnect().await;
    Some(
        rows.into_iter()
            .map(|r| r.unwrap().into_iter().map(|v| v.as_sql(false)).collect())
            .collect(),
    )
}

/// Whether `up` and `down` both exist with the same rows.
pub fn same_rows(up: &Option<Vec<Vec<String>>>, down: &Option<Vec<Vec<String>>>) -> bool {
    up.is_some() && up == down
}

/// A short account of how two row sets differ, for failure messages.
pub fn difference(
    table: &str,
    up: &Option<Vec<Vec<String>>>,
    down: &Option<Vec<Vec<String>>>,
) -> String {
    match (up, down) {
        (None, _) => format!("{table}: missing upstream\n"),
        (_, None) => format!("{table}: missing downstream\n"),
        (Some(u), Some(d)) => {
            let only_up: Vec<_> = u.iter().filter(|r| !d.contains(r)).take(3).collect();
            let only_down: Vec<_> = d.iter().filter(|r| !u.contains(r)).take(3).collect();
            format!(
                "{table}: upstream {} rows, downstream {} rows\n  only upstream: {only_up:?}\n  only downstream: {only_down:?}\n",
                u.len(),
                d.len()
            )
        }
    }
}
