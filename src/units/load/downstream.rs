//! The load unit's target connections: the session every load connection starts with
//! reconnected through outages ([`Downstream`] for idempotent work, [`Retry`] pacing the data
//! files' own reconnects within [`RETRY_WINDOW`]).

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use tracing::warn;

use crate::backoff::Backoff;
use crate::db::{self, RETRY_WINDOW, is_connection_error};
use crate::error::{DmError, codes};

fn backoff() -> Backoff {
    Backoff::new(
        Duration::from_millis(200),
        Duration::from_secs(10),
        2.0,
        0.2,
        Duration::from_secs(60),
    )
}

/// Opens a connection and runs the session statements.
pub(super) async fn connect(opts: &Opts, session: &[String]) -> Result<Conn, mysql_async::Error> {
    let mut conn = Conn::new(opts.clone()).await?;
    for s in session {
        conn.query_drop(s).await?;
    }
    Ok(conn)
}

/// Paces retries after connection failures, within [`RETRY_WINDOW`] of the first.
pub(super) struct Retry {
    since: Option<Instant>,
    backoff: Backoff,
}

impl Retry {
    pub(super) fn new() -> Self {
        Self {
            since: None,
            backoff: backoff(),
        }
    }

    /// Waits before the next attempt after a connection failure (or a deadlock), or gives up
    /// when the window is over.
    pub(super) async fn wait(&mut self, e: &mysql_async::Error, what: &str) -> Result<(), DmError> {
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() > RETRY_WINDOW {
            return Err(DmError::new(
                &codes::LOAD_EXECUTE_FAILED,
                format!("{what}: still failing after {RETRY_WINDOW:?} of retries"),
            )
            .with_cause_text(e.to_string()));
        }
        let delay = self.backoff.next_delay();
        warn!(error = %e, delay_ms = delay.as_millis() as u64, "{what}: target connection failed; retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }

    pub(super) fn succeeded(&mut self) {
        self.since = None;
        self.backoff = backoff();
    }
}

/// One target connection that reconnects on connection errors; for idempotent work.
pub struct Downstream {
    opts: Opts,
    session: Vec<String>,
    conn: Option<Conn>,
}

impl Downstream {
    /// Not connected until first used.
    pub fn new(opts: Opts, session: Vec<String>) -> Self {
        Self {
            opts,
            session,
            conn: None,
        }
    }

    /// Runs `f` on the connection; connection errors reconnect and run it again, other errors
    /// become `LOAD_EXECUTE_FAILED` naming `what`.
    pub async fn call<T>(
        &mut self,
        what: &str,
        mut f: impl AsyncFnMut(&mut Conn) -> Result<T, mysql_async::Error>,
    ) -> Result<T, DmError> {
        let mut retry = Retry::new();
        loop {
            let res = match self.conn.as_mut() {
                Some(c) => f(c).await,
                None => match connect(&self.opts, &self.session).await {
                    Ok(c) => f(self.conn.insert(c)).await,
                    Err(e) => Err(e),
                },
            };
            match res {
                Ok(v) => return Ok(v),
                Err(e) if is_connection_error(&e) => {
                    if let Some(c) = self.conn.take() {
                        let _ = c.disconnect().await;
                    }
                    retry.wait(&e, what).await?;
                }
                Err(e) => {
                    return Err(db::error(
                        &codes::LOAD_EXECUTE_FAILED,
                        format!("{what} failed on the target"),
                        e,
                    ));
                }
            }
        }
    }

    /// Runs one idempotent statement.
    pub async fn exec(&mut self, sql: &str, what: &str) -> Result<(), DmError> {
        self.call(what, async |c: &mut Conn| c.query_drop(sql).await)
            .await
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        if let Some(c) = self.conn.take() {
            let _ = c.disconnect().await;
        }
    }
}
