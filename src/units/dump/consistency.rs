//! The consistency point: snapshot transactions on every dump connection and the binlog
//! location they correspond to.
//!
//! # Invariants
//!
//! - `flush`: a control connection holds `FLUSH TABLES WITH READ LOCK` while every dump
//!   connection runs `START TRANSACTION WITH CONSISTENT SNAPSHOT` and `SHOW MASTER STATUS`
//!   (+ GTID) is read; then `UNLOCK TABLES`. No transaction commits while the lock is held,
//!   so all snapshots are the same point and the location is exactly that point. The dump
//!   connections are opened and configured *before* the lock, so the upstream is blocked
//!   only for the snapshot starts and the status read (milliseconds; measured and logged).
//! - `lock`: the same with `LOCK TABLES <each dumped table> READ`: no write to a dumped table
//!   commits while it is held, so every snapshot sees the dumped tables as of the location
//!   (other tables may move on; they are not dumped).
//! - `none`: no lock. `location` is read before any snapshot starts and `after` once all have
//!   started, so each snapshot lies between the two: replaying the binlog from `location` in
//!   safe mode up to `after` makes the downstream consistent.
//! - `snapshot` (TiDB's TSO) and `auto` on TiDB are refused; `auto` is `flush` otherwise.

use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use tracing::{info, warn};

use super::catalog::TableRef;
use crate::backoff::Backoff;
use crate::binlog::location::{Location, Position};
use crate::binlog::stream::{Flavor, master_status};
use crate::db::errno::{
    ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR, ER_SPECIFIC_ACCESS_DENIED_ERROR,
    ER_TABLEACCESS_DENIED_ERROR,
};
use crate::error::{DmError, codes};

/// Attempts to open one dump connection.
const CONNECT_ATTEMPTS: u32 = 3;

/// The dump's consistency mode (`--consistency` in the mydumper `extra-args`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// `FLUSH TABLES WITH READ LOCK` around the snapshot starts.
    Flush,
    /// `LOCK TABLES … READ` on the dumped tables around the snapshot starts.
    Lock,
    /// No lock; an extra location after the snapshots bounds the safe-mode window.
    None,
}

impl Consistency {
    /// Reads the configured value; `is_tidb` decides what `auto` means.
    pub fn parse(value: &str, is_tidb: bool) -> Result<Self, DmError> {
        match value.to_ascii_lowercase().as_str() {
            "auto" if !is_tidb => Ok(Self::Flush),
            "flush" => Ok(Self::Flush),
            "lock" => Ok(Self::Lock),
            "none" => Ok(Self::None),
            "auto" | "snapshot" => Err(DmError::new(
                &codes::DUMP_UNIT_RUNTIME,
                "consistency `snapshot` needs a TiDB upstream (a TSO snapshot); dm-rs dumps MySQL and MariaDB only",
            )
            .with_workaround(
                "Set `--consistency flush`, `lock` or `none` in the mydumper extra-args.",
            )),
            other => Err(DmError::new(
                &codes::DUMP_UNIT_RUNTIME,
                format!("unknown consistency `{other}`"),
            )
            .with_workaround(
                "Use one of auto, flush, lock, none in `--consistency` of the mydumper extra-args.",
            )),
        }
    }

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flush => "flush",
            Self::Lock => "lock",
            Self::None => "none",
        }
    }
}

/// The established consistency point.
pub struct Snapshot {
    /// The dump connections, each inside its snapshot transaction.
    pub conns: Vec<Conn>,
    /// The binlog location of the snapshot (`none`: before the first snapshot).
    pub location: Location,
    /// `none` only: the location once every snapshot had started.
    pub after: Option<Location>,
    /// How long the lock was held (zero for `none`).
    pub lock_held: Duration,
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// Opens a connection and runs `setup`, retrying the connect a few times.
pub async fn connect(opts: &Opts, setup: &[String]) -> Result<Conn, DmError> {
    let mut backoff = Backoff::new(
        Duration::from_millis(100),
        Duration::from_secs(2),
        2.0,
        0.2,
        Duration::from_secs(60),
    );
    let mut attempt = 1;
    let mut conn = loop {
        match Conn::new(opts.clone()).await {
            Ok(c) => break c,
            Err(e) if attempt < CONNECT_ATTEMPTS && !matches!(e, mysql_async::Error::Server(_)) => {
                let wait = backoff.next_delay();
                warn!(attempt, error = %e, wait_ms = wait.as_millis() as u64, "connecting to the upstream failed, retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => {
                return Err(
                    DmError::new(&codes::DB_BAD_CONN, "cannot connect to the upstream")
                        .with_cause(e),
                );
            }
        }
    };
    for sql in setup {
        conn.query_drop(sql).await.map_err(|e| {
            DmError::new(
                &codes::DUMP_UNIT_RUNTIME,
                format!("setting up a dump session: `{sql}`"),
            )
            .with_cause(e)
        })?;
    }
    Ok(conn)
}

/// The session settings of a dump connection (after the source's own `session` settings).
pub fn dump_session_sql() -> Vec<String> {
    [
        "SET NAMES utf8mb4",
        "SET SESSION time_zone = '+00:00', SESSION sql_mode = '', SESSION sql_quote_show_create = 1",
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    ]
    .map(String::from)
    .to_vec()
}

async fn start_snapshots(conns: &mut [Conn]) -> Result<(), DmError> {
    try_join_all(
        conns
            .iter_mut()
            .map(|c| c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")),
    )
    .await
    .map_err(|e| {
        DmError::new(
            &codes::DUMP_UNIT_RUNTIME,
            "starting the snapshot transactions",
        )
        .with_cause(e)
    })?;
    Ok(())
}

async fn location(ctrl: &mut Conn, flavor: Flavor) -> Result<Location, DmError> {
    let (pos, gtid) = master_status(ctrl, flavor).await?;
    let position = pos.unwrap_or_else(|| {
        warn!("the upstream has no binlog: the dump records an empty position");
        Position::new("", 4)
    });
    Ok(Location { position, gtid })
}

/// `LOCK TABLES` for `tables` (a statement per call; empty when there are none).
fn lock_tables_sql(tables: &[TableRef]) -> String {
    let list: Vec<String> = tables
        .iter()
        .map(|t| format!("{} READ", t.qualified()))
        .collect();
    format!("LOCK TABLES {}", list.join(", "))
}

/// Establishes the consistency point on `conns` (configured, outside any transaction) using
/// the control connection `ctrl`; `user` names the account in privilege errors.
pub async fn establish(
    ctrl: &mut Conn,
    mut conns: Vec<Conn>,
    mode: Consistency,
    flavor: Flavor,
    tables: &[TableRef],
    user: &str,
) -> Result<Snapshot, DmError> {
    match mode {
        Consistency::None => {
            let loc = location(ctrl, flavor).await?;
            start_snapshots(&mut conns).await?;
            let after = location(ctrl, flavor).await?;
            Ok(Snapshot {
                conns,
                location: loc,
                after: Some(after),
                lock_held: Duration::ZERO,
            })
        }
        Consistency::Flush | Consistency::Lock => {
            let locked = Instant::now();
            let lock_sql = match mode {
                Consistency::Flush => Some("FLUSH TABLES WITH READ LOCK".to_string()),
                _ if tables.is_empty() => None,
                _ => Some(lock_tables_sql(tables)),
            };
            if let Some(sql) = &lock_sql {
                ctrl.query_drop(sql)
                    .await
                    .map_err(|e| lock_error(mode, user, e))?;
            }
            let inner = async {
                start_snapshots(&mut conns).await?;
                location(ctrl, flavor).await
            }
            .await;
            // Unlock at once, also when the snapshot failed.
            let unlocked = match &lock_sql {
                Some(_) => ctrl.query_drop("UNLOCK TABLES").await,
                None => Ok(()),
            };
            let lock_held = locked.elapsed();
            let loc = inner?;
            unlocked.map_err(|e| {
                DmError::new(&codes::DUMP_UNIT_GLOBAL_LOCK, "UNLOCK TABLES failed").with_cause(e)
            })?;
            info!(
                consistency = mode.as_str(),
                lock_held_ms = lock_held.as_secs_f64() * 1e3,
                location = %loc,
                "consistent snapshot taken"
            );
            Ok(Snapshot {
                conns,
                location: loc,
                after: None,
                lock_held,
            })
        }
    }
}

/// The error for a failed `FLUSH TABLES WITH READ LOCK` or `LOCK TABLES`.
fn lock_error(mode: Consistency, user: &str, e: mysql_async::Error) -> DmError {
    let denied = matches!(
        server_code(&e),
        Some(
            ER_DBACCESS_DENIED_ERROR
                | ER_ACCESS_DENIED_ERROR
                | ER_TABLEACCESS_DENIED_ERROR
                | ER_SPECIFIC_ACCESS_DENIED_ERROR
        )
    );
    match (mode, denied) {
        (Consistency::Flush, true) => DmError::new(
            &codes::DUMP_PRIVILEGE_MISSING,
            format!(
                "the dump account `{user}` lacks the RELOAD privilege that consistency `flush` \
                 needs for FLUSH TABLES WITH READ LOCK; grant RELOAD, or set \
                 `--consistency lock` or `--consistency none` in the mydumper extra-args"
            ),
        )
        .with_cause(e)
        .with_workaround(
            "Grant RELOAD to the account, or set `--consistency lock` (needs LOCK TABLES) or \
             `--consistency none` (no lock; the syncer replays a longer window in safe mode) \
             in the mydumper extra-args.",
        ),
        (Consistency::Flush, false) => DmError::new(
            &codes::DUMP_UNIT_GLOBAL_LOCK,
            "FLUSH TABLES WITH READ LOCK failed",
        )
        .with_cause(e),
        (_, true) => DmError::new(
            &codes::DUMP_PRIVILEGE_MISSING,
            format!(
                "the dump account `{user}` lacks the LOCK TABLES privilege that consistency \
                 `lock` needs; grant LOCK TABLES, or set `--consistency none` in the mydumper \
                 extra-args"
            ),
        )
        .with_cause(e)
        .with_workaround(
            "Grant LOCK TABLES on the dumped databases to the account, or set \
             `--consistency none` in the mydumper extra-args.",
        ),
        (_, false) => DmError::new(&codes::DUMP_UNIT_GLOBAL_LOCK, "LOCK TABLES … READ failed")
            .with_cause(e)
            .with_workaround(
                "Read the cause; or set `--consistency none` in the mydumper extra-args.",
            ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        assert_eq!(
            Consistency::parse("auto", false).unwrap(),
            Consistency::Flush
        );
        assert_eq!(
            Consistency::parse("FLUSH", false).unwrap(),
            Consistency::Flush
        );
        assert_eq!(
            Consistency::parse("lock", false).unwrap(),
            Consistency::Lock
        );
        assert_eq!(Consistency::parse("none", true).unwrap(), Consistency::None);
        let e = Consistency::parse("snapshot", false).unwrap_err();
        assert_eq!(e.code, 32001);
        assert!(e.message.contains("TiDB"));
        assert_eq!(Consistency::parse("auto", true).unwrap_err().code, 32001);
        assert!(
            Consistency::parse("weird", false)
                .unwrap_err()
                .message
                .contains("weird")
        );
    }

    #[test]
    fn lock_statement_quotes_names() {
        let t = |s: &str, n: &str| TableRef {
            schema: s.into(),
            name: n.into(),
            rows_estimate: 0,
            avg_row_length: 0,
        };
        assert_eq!(
            lock_tables_sql(&[t("a", "b`c"), t("d", "e")]),
            "LOCK TABLES `a`.`b``c` READ, `d`.`e` READ"
        );
    }

    #[test]
    fn privilege_errors_name_the_privilege() {
        let denied = || {
            mysql_async::Error::Server(mysql_async::ServerError {
                code: ER_SPECIFIC_ACCESS_DENIED_ERROR,
                message: "Access denied; you need (at least one of) the RELOAD privilege(s)".into(),
                state: "42000".into(),
            })
        };
        let e = lock_error(Consistency::Flush, "norel", denied());
        assert_eq!(e.code, codes::DUMP_PRIVILEGE_MISSING.code);
        assert!(e.message.contains("RELOAD"));
        assert!(e.message.contains("--consistency lock"));
        assert!(e.workaround.contains("--consistency lock"));
        assert!(e.workaround.contains("--consistency none"));
        let e = lock_error(Consistency::Lock, "norel", denied());
        assert!(e.message.contains("LOCK TABLES"));
        assert!(e.workaround.contains("--consistency none"));
        let other = mysql_async::Error::Server(mysql_async::ServerError {
            code: crate::db::errno::ER_LOCK_WAIT_TIMEOUT,
            message: "Lock wait timeout exceeded".into(),
            state: "HY000".into(),
        });
        assert_eq!(
            lock_error(Consistency::Flush, "u", other).code,
            codes::DUMP_UNIT_GLOBAL_LOCK.code
        );
    }
}
