//! StreamControllerActor: the binlog stream of one subtask.
//!
//! It reads events from the upstream as a replica and hands them to the SyncerActor in
//! batches ([`EventBatch`]); the syncer's reply paces the reading, so a slow target slows the
//! stream instead of filling memory. It remembers the last transaction boundary it handed over
//! and the end position of the last event; on a transient error (connection reset, upstream
//! restart) it reconnects from the boundary and drops the events it had already handed over,
//! so the syncer sees each event exactly once. A refused start point (purged binlog, error
//! 1236) is not retried: it is reported as [`StreamFailed`].

use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use mysql_async::Opts;
use mysql_async::binlog::events::Event;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::binlog::event::{BinlogEvent, types};
use crate::binlog::location::Position;
use crate::binlog::stream::{Flavor, StartPoint, StreamRequest, is_start_point_gone, open_stream};
use crate::error::{DmError, codes};
use crate::messages::syncer::{EventBatch, StreamFailed};

use super::SyncerActor;

/// Events per batch handed to the syncer.
pub const BATCH_EVENTS: usize = 256;
/// Consecutive failed reconnects before the stream gives up.
pub const MAX_RECONNECTS: u32 = 30;

/// What stream to read.
#[derive(Clone)]
pub struct StreamSpec {
    pub task: String,
    /// The upstream connection (no `Debug`: it holds the password).
    pub opts: Opts,
    /// The replica server id (unique among the upstream's replicas).
    pub server_id: u32,
    pub flavor: Flavor,
    pub start: StartPoint,
    /// How often an idle upstream sends a heartbeat (the syncer flushes its checkpoint on
    /// one, so this is the idle flush interval too).
    pub heartbeat: Duration,
}

/// The actor.
pub struct StreamControllerActor {
    spec: StreamSpec,
    syncer: Addr<SyncerActor>,
}

impl StreamControllerActor {
    /// A stream as `spec` says, feeding `syncer`.
    pub fn new(spec: StreamSpec, syncer: Addr<SyncerActor>) -> Self {
        Self { spec, syncer }
    }
}

/// True for events that close a transaction (or are one: DDL), after which a stream may
/// restart.
fn is_boundary(ev: &Event) -> bool {
    match ev.header().event_type_raw() {
        types::XID => true,
        types::QUERY => {
            // BEGIN opens a transaction; everything else (COMMIT, DDL) ends one.
            let d = ev.data();
            // Query event post-header: thread id 4, exec time 4, schema len 1, error 2,
            // status vars len 2; then status vars, schema, NUL, query.
            if d.len() < 13 {
                return true;
            }
            let schema_len = d[8] as usize;
            let vars_len = u16::from_le_bytes([d[11], d[12]]) as usize;
            let q = d.get(13 + vars_len + schema_len + 1..).unwrap_or(&[]);
            !q.eq_ignore_ascii_case(b"BEGIN")
        }
        _ => false,
    }
}

/// Reading state shared by reconnects.
struct Cursor {
    /// Where to reconnect: the end of the last boundary event handed over.
    boundary: Option<Position>,
    /// End position of the last event handed over (same file as `file`).
    last_end: Option<Position>,
    /// The file the stream is in.
    file: String,
}

async fn run(spec: StreamSpec, syncer: Addr<SyncerActor>) -> DmError {
    let StreamSpec {
        task,
        opts,
        server_id,
        flavor,
        start,
        heartbeat,
    } = spec;
    let mut cursor = Cursor {
        boundary: None,
        last_end: None,
        file: String::new(),
    };
    if let StartPoint::Position(p) = &start {
        cursor.boundary = Some(p.clone());
        cursor.file = p.name.clone();
    }
    let mut backoff = Backoff::infrastructure();
    let mut failures = 0u32;
    loop {
        let point = match &cursor.boundary {
            Some(p) => StartPoint::Position(p.clone()),
            None => start.clone(),
        };
        let req = StreamRequest {
            server_id,
            flavor,
            start: point,
            heartbeat,
        };
        let err = match open_stream(opts.clone(), &req).await {
            Ok(mut stream) => {
                backoff.mark_started();
                let mut batch = Vec::with_capacity(BATCH_EVENTS);
                let result: Result<(), (mysql_async::Error, bool)> = loop {
                    // Take what is ready, up to a batch, without waiting once we have some.
                    let next = if batch.is_empty() {
                        stream.next().await
                    } else {
                        match futures_util::FutureExt::now_or_never(stream.next()) {
                            Some(item) => item,
                            None => {
                                if let Err(e) = hand_over(&syncer, &mut batch).await {
                                    return e;
                                }
                                continue;
                            }
                        }
                    };
                    let Some(item) = next else {
                        break Err((
                            mysql_async::Error::Io(
                                std::io::Error::other("binlog stream ended").into(),
                            ),
                            false,
                        ));
                    };
                    let ev = match item {
                        Ok(ev) => ev,
                        Err(e) => {
                            let gone = is_start_point_gone(&e);
                            break Err((e, gone));
                        }
                    };
                    failures = 0;
                    let t = ev.header().event_type_raw();
                    let end = ev.header().log_pos();
                    if t == types::HEARTBEAT {
                        // Carries the position of the last event sent, not a new one: never a
                        // duplicate, never a position. The syncer flushes its checkpoint on it
                        // when the upstream is idle.
                    } else if t == types::ROTATE {
                        // The classifier strips the checksum the opening fake rotate still has.
                        if let Ok(BinlogEvent::Rotate { next, .. }) = BinlogEvent::classify(&ev) {
                            cursor.file = next;
                        }
                    } else if end > 0 {
                        // Drop what an earlier connection already handed over.
                        if let Some(last) = &cursor.last_end
                            && last.name == cursor.file
                            && end <= last.pos
                        {
                            continue;
                        }
                        // Updated in place (no allocation per event).
                        set_position(&mut cursor.last_end, &cursor.file, end);
                        if is_boundary(&ev) {
                            set_position(&mut cursor.boundary, &cursor.file, end);
                        }
                    }
                    batch.push(ev);
                    if batch.len() >= BATCH_EVENTS
                        && let Err(e) = hand_over(&syncer, &mut batch).await
                    {
                        return e;
                    }
                };
                if !batch.is_empty()
                    && let Err(e) = hand_over(&syncer, &mut batch).await
                {
                    return e;
                }
                match result {
                    Err((e, true)) => {
                        return DmError::new(
                            &codes::SYNC_BINLOG_PURGED,
                            format!(
                                "the upstream no longer has the binlog to resume from ({:?})",
                                cursor.boundary
                            ),
                        )
                        .with_cause(e);
                    }
                    Err((e, false)) => {
                        DmError::new(&codes::DB_BAD_CONN, "binlog stream interrupted").with_cause(e)
                    }
                    Ok(()) => unreachable!("the read loop only ends with an error"),
                }
            }
            Err(e) => e,
        };
        failures += 1;
        if failures > MAX_RECONNECTS {
            return err.with_cause_text(format!("gave up after {MAX_RECONNECTS} reconnects"));
        }
        let wait = backoff.next_delay();
        warn!(task = %task, location = ?cursor.boundary, error = %err.chain(), wait_ms = wait.as_millis() as u64, "binlog stream failed; reconnecting");
        tokio::time::sleep(wait).await;
    }
}

/// Sets `slot` to `file:pos`, reusing its allocation.
fn set_position(slot: &mut Option<Position>, file: &str, pos: u32) {
    match slot {
        Some(p) => {
            if p.name != file {
                p.name.clear();
                p.name.push_str(file);
            }
            p.pos = pos;
        }
        None => *slot = Some(Position::new(file, pos)),
    }
}

async fn hand_over(syncer: &Addr<SyncerActor>, batch: &mut Vec<Event>) -> Result<(), DmError> {
    let events = std::mem::replace(batch, Vec::with_capacity(BATCH_EVENTS));
    match syncer.send(EventBatch { events }).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DmError::bare(&codes::ACTOR_MAILBOX_CLOSED)),
    }
}

impl Actor for StreamControllerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(actor = "StreamController", parent = "Syncer", task = %self.spec.task, start = ?self.spec.start, heartbeat_ms = self.spec.heartbeat.as_millis() as u64, "actor started");
        let fut = run(self.spec.clone(), self.syncer.clone());
        let syncer = self.syncer.clone();
        fut.into_actor(self)
            .map(move |error, _, ctx| {
                syncer.do_send(StreamFailed { error });
                ctx.stop();
            })
            .spawn(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        info!(actor = "StreamController", parent = "Syncer", task = %self.spec.task, reason = "stopped", "actor stopped");
    }
}

impl Handler<crate::messages::syncer::Halt> for StreamControllerActor {
    type Result = ();

    fn handle(&mut self, _: crate::messages::syncer::Halt, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
