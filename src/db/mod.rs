//! MySQL plumbing shared by the units (dump, load, sync), the checkpoint tables and the
//! precheck: the server error numbers ([`errno`]), one classifier of failures ([`classify`]),
//! the one way a server error becomes a [`DmError`] ([`error`]: an error retrying cannot heal
//! is never auto-resumed), connecting with a session's settings ([`connect`]), and retrying
//! meta-table transactions through deadlocks ([`retry_transient`]), and the upstream binlog
//! settings replication needs ([`upstream`]).

pub mod errno;
pub mod meta;
pub mod upstream;

use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use tracing::warn;

use crate::error::{DmError, ErrorCode, codes};

/// How long a unit keeps reconnecting through a lost downstream before it gives up (and its
/// subtask is auto-resumed).
pub const RETRY_WINDOW: Duration = Duration::from_secs(300);

/// Attempts of a transaction that keeps hitting deadlocks or lock wait timeouts.
pub const TRANSIENT_ATTEMPTS: u32 = 8;

/// What kind of failure a MySQL error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The connection (or the server behind it) is gone: reconnect and retry.
    ConnectionLost,
    /// The transaction was rolled back by a deadlock or a lock wait timeout: run it again.
    Transient,
    /// Retrying cannot help: the statement, account or configuration must change.
    Permanent,
    /// Anything else; the caller's error code decides.
    Other,
}

/// The server error number of `e`, if the server answered with one.
pub fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// Classifies `e` by error number (never by message text).
pub fn classify(e: &mysql_async::Error) -> Fault {
    use errno::*;
    match e {
        mysql_async::Error::Server(s) => match s.code {
            ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT => Fault::Transient,
            ER_SERVER_SHUTDOWN | ER_CON_COUNT_ERROR | ER_CONNECTION_KILLED
            | ER_QUERY_INTERRUPTED => Fault::ConnectionLost,
            c if PERMANENT.contains(&c) => Fault::Permanent,
            _ => Fault::Other,
        },
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Fault::ConnectionLost,
        _ => Fault::Other,
    }
}

/// True when `e` means the connection is gone, so reconnecting and retrying may succeed.
pub fn is_connection_error(e: &mysql_async::Error) -> bool {
    classify(e) == Fault::ConnectionLost
}

/// The [`DmError`] of `code` for the failed `what`, caused by `e`. An error retrying cannot
/// heal ([`Fault::Permanent`]) is not resumable whatever `code` says, so auto-resume does not
/// repeat it forever; the message says so.
pub fn error(code: &ErrorCode, what: impl Into<String>, e: mysql_async::Error) -> DmError {
    let permanent = classify(&e) == Fault::Permanent;
    let mut err = DmError::new(code, what).with_cause(e);
    if permanent {
        err.resumable = false;
        err = err.with_cause_text(
            "retrying cannot fix this server error; correct the configuration, account or statement, then resume the task",
        );
    }
    err
}

/// Statements every downstream connection starts with: UTC for TIMESTAMP literals, a
/// permissive sql_mode so upstream values (zero dates, explicit 0 in AUTO_INCREMENT) land as
/// they are, no foreign key checks (as DM) unless the task's session says otherwise, then the
/// task's own `session` settings (`target-database.session`, as statements).
pub fn downstream_session(task_session: Vec<String>) -> Vec<String> {
    let mut s = vec![
        "SET SESSION time_zone = '+00:00'".to_string(),
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'".to_string(),
        "SET SESSION foreign_key_checks = 0".to_string(),
    ];
    s.extend(task_session);
    s
}

/// Opens a connection and runs `session` (`SET SESSION ...` statements) on it. A statement
/// the server refuses (an unknown variable such as TiDB's `tidb_*` on MySQL, a bad value)
/// fails with the statement named and is not resumable.
pub async fn connect(opts: Opts, session: &[String], what: &str) -> Result<Conn, DmError> {
    let mut conn = Conn::new(opts).await.map_err(|e| {
        error(
            &codes::DB_BAD_CONN,
            format!("cannot connect to the {what}"),
            e,
        )
    })?;
    apply_session(&mut conn, session, what).await?;
    Ok(conn)
}

/// Runs `session` on `conn`; see [`connect`].
pub async fn apply_session(conn: &mut Conn, session: &[String], what: &str) -> Result<(), DmError> {
    for s in session {
        conn.query_drop(s).await.map_err(|e| {
            error(
                &codes::DB_EXECUTE_FAILED,
                format!("the {what} refused the session setting `{s}`"),
                e,
            )
        })?;
    }
    Ok(())
}

/// One step of a transaction: what failed, and the server's error.
pub type Step<T> = Result<T, (&'static str, mysql_async::Error)>;

/// Names the step of a MySQL result for [`retry_transient`].
pub trait StepExt<T> {
    fn step(self, what: &'static str) -> Step<T>;
}

impl<T> StepExt<T> for Result<T, mysql_async::Error> {
    fn step(self, what: &'static str) -> Step<T> {
        self.map_err(|e| (what, e))
    }
}

/// Runs `attempt` (a whole transaction) again while it fails with a deadlock or a lock wait
/// timeout, up to [`TRANSIENT_ATTEMPTS`] times with a short growing pause: meta tables are
/// shared by every subtask of a task, so two sources writing at once can deadlock each other
/// on InnoDB's gap locks. Other errors become `code` errors prefixed with `context`.
pub async fn retry_transient<T>(
    code: &ErrorCode,
    context: &str,
    mut attempt: impl AsyncFnMut() -> Step<T>,
) -> Result<T, DmError> {
    let mut pause = Duration::from_millis(20);
    let mut n = 1;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err((what, e)) if classify(&e) == Fault::Transient && n < TRANSIENT_ATTEMPTS => {
                warn!(context, step = what, attempt = n, error = %e, "meta-table transaction rolled back; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
                n += 1;
            }
            Err((what, e)) => return Err(error(code, format!("{context}: {what}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: "m".into(),
            state: "HY000".into(),
        })
    }

    #[test]
    fn server_errors_are_classified_by_number() {
        assert_eq!(classify(&server(errno::ER_LOCK_DEADLOCK)), Fault::Transient);
        assert_eq!(
            classify(&server(errno::ER_LOCK_WAIT_TIMEOUT)),
            Fault::Transient
        );
        assert_eq!(
            classify(&server(errno::ER_CONNECTION_KILLED)),
            Fault::ConnectionLost
        );
        for c in [
            errno::ER_UNKNOWN_SYSTEM_VARIABLE,
            errno::ER_PARSE_ERROR,
            errno::ER_ACCESS_DENIED_ERROR,
            errno::ER_SPECIFIC_ACCESS_DENIED_ERROR,
        ] {
            assert_eq!(classify(&server(c)), Fault::Permanent, "{c}");
        }
        assert_eq!(classify(&server(errno::ER_DUP_ENTRY)), Fault::Other);
    }

    #[test]
    fn permanent_server_errors_are_not_resumable() {
        const { assert!(codes::DB_EXECUTE_FAILED.resumable) };
        let e = error(
            &codes::DB_EXECUTE_FAILED,
            "x",
            server(errno::ER_UNKNOWN_SYSTEM_VARIABLE),
        );
        assert!(!e.resumable);
        assert!(e.chain().contains("retrying cannot fix"), "{}", e.chain());
        let e = error(
            &codes::DB_EXECUTE_FAILED,
            "x",
            server(errno::ER_LOCK_DEADLOCK),
        );
        assert!(e.resumable);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_then_given_up() {
        let mut calls = 0;
        let v = retry_transient(&codes::DB_EXECUTE_FAILED, "t", async || {
            calls += 1;
            if calls < 3 {
                Err(("step", server(errno::ER_LOCK_DEADLOCK)))
            } else {
                Ok(calls)
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
        let mut calls = 0;
        let e = retry_transient::<()>(&codes::DB_EXECUTE_FAILED, "t", async || {
            calls += 1;
            Err(("step", server(errno::ER_LOCK_DEADLOCK)))
        })
        .await
        .unwrap_err();
        assert_eq!(calls, TRANSIENT_ATTEMPTS);
        assert!(e.message.contains("t: step"));
        let mut calls = 0;
        retry_transient::<()>(&codes::DB_EXECUTE_FAILED, "t", async || {
            calls += 1;
            Err(("step", server(errno::ER_DUP_ENTRY)))
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 1, "other errors are not retried");
    }
}
