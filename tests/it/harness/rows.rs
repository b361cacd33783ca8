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

/// Every row of the query `sql` as text (`NULL` for null), in the query's order; `None` when
/// the query fails (e.g. the table does not exist).
pub async fn query_text(server: Opts, sql: &str) -> Option<Vec<Vec<String>>> {
    let mut conn = Conn::new(server).await.expect("connect for a query");
    let rows: Result<Vec<mysql_async::Row>, _> = conn.query(sql).await;
    let _ = conn.disconnect().await;
    rows.ok().map(|rows| {
        rows.into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => "NULL".to_string(),
                        mysql_async::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                        other => other.as_sql(false),
                    })
                    .collect()
            })
            .collect()
    })
}

/// The column names of `db`.`table`, in table order (empty when it does not exist).
pub async fn column_names(server: Opts, db: &str, table: &str) -> Vec<String> {
    query_text(
        server,
        &format!(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
        ),
    )
    .await
    .unwrap_or_default()
    .into_iter()
    .map(|mut r| r.remove(0))
    .collect()
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
