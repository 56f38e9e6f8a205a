//! One socket's life: client commands (`JOIN_THREAD`, `LEAVE_THREAD`, `TYPING`), deliveries
//! from the hub (in seq order, de-duplicated against the replay), pings, idle timeout,
//! session re-validation, and the close codes (1008 slow consumer or session ended, 1009 frame
//! too big, 1007 text not UTF-8, 1002 broken frame, 1012 replica restarting). Frames are documented in `proto/frames/*.schema.json`.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt as _;
use hilo_proto::messaging::v1::ListThreadEventsRequest;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, field::Empty};

use crate::{
    app::AppState,
    authz,
    fanout::{Delivery, Event, SocketEntry},
};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Threads one socket may join at once.
const MAX_JOINED: usize = 200;
/// Events asked of ListThreadEvents per page.
const PAGE: i32 = 500;
/// Queued deliveries written together at most (then flushed).
const BATCH: usize = 64;
/// One live delivery in this many is timed in `realtime_delivery_seconds`.
const DELIVERY_SAMPLE: u64 = 8;
/// How long the close frame may take to go out.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Closes for a frame the client sent (too big, not UTF-8, not WebSocket), and how long the
/// socket is held after them.
const LINGERS: [u16; 3] = [1002, 1007, 1009];
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// Who opened the socket (established by the upgrade).
#[derive(Clone, Debug)]
pub struct Who {
    pub user_id: Arc<str>,
    /// From the access token's `sid`: revocation events name sessions by id.
    pub session_id: Arc<str>,
    /// The upgrade request's span, parent of every command's span.
    pub trace: hilo_kit::telemetry::Parent,
    pub session_token: String,
    /// Moved into the hub's entry for the socket at start ([`SocketEntry::token`]).
    pub access_token: String,
}

/// How the loop ended: a close frame to send, or none (the peer went away).
type Close = Option<(u16, &'static str)>;
type Flow = Result<(), Close>;

struct Joined {
    channel_id: String,
    /// Highest `seq` delivered; `None` until the first event when joined without `sinceSeq`.
    cursor: Option<i64>,
}

struct Session {
    id: u64,
    state: AppState,
    who: Who,
    /// The hub's view of this socket (its current access token).
    me: Arc<SocketEntry>,
    joined: HashMap<Arc<str>, Joined>,
    kill: CancellationToken,
    tokens: f64,
    refilled: Instant,
}

/// Serves one upgraded socket until it closes.
pub async fn run(mut socket: WebSocket, state: AppState, mut who: Who) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(state.config.send_queue.max(1));
    // Cancelled when the queue overflows, or (as a child) when the replica shuts down.
    let kill = state.shutdown.child_token();
    let token = std::mem::take(&mut who.access_token).into();
    let me = state.hub.register(id, &who, token, tx, kill.clone());
    state.presence.online(&who.user_id);
    metrics::gauge!("realtime_sockets").increment(1.0);
    let mut session = Session {
        id,
        state: state.clone(),
        who,
        me,
        joined: HashMap::new(),
        kill,
        tokens: 0.0,
        refilled: Instant::now(),
    };
    session.tokens = session.burst();
    let close = match session.serve(&mut socket, &mut rx).await {
        Ok(()) => None,
        Err(close) => close,
    };
    if let Some((code, reason)) = close {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        let sent = tokio::time::timeout(CLOSE_WAIT, socket.send(frame)).await;
        if matches!(sent, Ok(Ok(()))) && LINGERS.contains(&code) {
            // The client may still be sending what was refused: a connection closed with
            // unread data is reset, and a reset can destroy the close frame before the client
            // reads it. It cannot be drained safely (the rest of an oversized frame is
            // unbounded), so the socket is held for a moment instead.
            tokio::time::sleep(LINGER).await;
        }
        tracing::info!(code, reason, user_id = %session.who.user_id, "socket closed by server");
    }
    drop(rx);
    state.hub.unregister(id, session.joined.keys().cloned());
    state.presence.offline(&session.who.user_id);
    metrics::gauge!("realtime_sockets").decrement(1.0);
}

/// The close a read error calls for (RFC 6455 7.4.1): 1009 for a frame or message over the
/// limit, 1007 for a text frame that is not UTF-8, 1002 for a broken frame; none when the
/// connection itself failed.
fn read_error_close(error: axum::Error) -> Close {
    use tungstenite::Error;
    match error.into_inner().downcast::<Error>().map(|e| *e) {
        Ok(Error::Capacity(_)) => Some((1009, "message too big")),
        Ok(Error::Utf8(_)) => Some((1007, "invalid UTF-8")),
        Ok(Error::Protocol(_)) => Some((1002, "protocol error")),
        _ => None,
    }
}

impl Session {
    fn burst(&self) -> f64 {
        f64::from(self.state.config.commands_per_sec.max(1)) * 2.0
    }

    async fn serve(&mut self, socket: &mut WebSocket, rx: &mut mpsc::Receiver<Delivery>) -> Flow {
        let timers = self.state.config.timers();
        let start = tokio::time::Instant::now();
        // One timer per socket: the session re-check rides on the ping ticks. Sockets opened
        // together ping at different moments (spread over the interval by socket id), so a
        // thousand of them never ping, nor re-check, in the same instant.
        let spread = timers.ping.mul_f64((self.id % 1000) as f64 / 1000.0);
        let mut ping = tokio::time::interval_at(start + timers.ping + spread, timers.ping);
        let mut checked = Instant::now();
        let mut heard = Instant::now();
        // Registered once: polling a fresh cancellation future on every delivery costs two
        // lock round trips per socket and event.
        let killed = self.kill.clone().cancelled_owned();
        tokio::pin!(killed);
        loop {
            // In this order, so the common case (a delivery) is found at the second poll. The
            // kill comes last: what is queued when it fires is older than what overflowed, so
            // it may still be written before the close.
            tokio::select! {
                biased;
                frame = socket.recv() => {
                    heard = Instant::now();
                    match frame {
                        None | Some(Ok(Message::Close(_))) => return Err(None),
                        Some(Err(error)) => return Err(read_error_close(error)),
                        Some(Ok(Message::Text(text))) => {
                            let span = tracing::info_span!(
                                "command",
                                user_id = %self.who.user_id,
                                r#type = Empty,
                                trace_id = Empty,
                            );
                            self.who.trace.adopt(&span);
                            // Boxed: commands are rare, and their futures (authorization,
                            // replay over gRPC) would otherwise make every idle socket's
                            // task as large as the largest of them.
                            Box::pin(self.command(socket, text).instrument(span)).await?;
                        }
                        Some(Ok(Message::Binary(_))) => {
                            self.error(socket, None, None, "Binary messages not supported").await?;
                        }
                        Some(Ok(_)) => {}
                    }
                }
                Some(delivery) = rx.recv() => {
                    // Whatever else is queued goes out with it, in one write.
                    self.deliver(socket, delivery).await?;
                    for _ in 0..BATCH {
                        let Ok(more) = rx.try_recv() else { break };
                        self.deliver(socket, more).await?;
                    }
                    self.flush(socket).await?;
                }
                _ = ping.tick() => {
                    if heard.elapsed() > timers.idle {
                        return Err(Some((1000, "idle timeout")));
                    }
                    self.send(socket, Message::Ping(Bytes::new())).await?;
                    if checked.elapsed() >= timers.session_check {
                        checked = Instant::now();
                        Box::pin(self.revalidate(socket)).await?;
                    }
                }
                () = &mut killed => return Err(self.stopped()),
            }
        }
    }

    /// Why the socket was stopped: the replica shuts down, or its queue overflowed.
    fn stopped(&self) -> Close {
        if self.state.shutdown.is_cancelled() {
            Some((1012, "reconnect"))
        } else {
            Some((1008, "send queue overflow"))
        }
    }

    /// Sends one frame (and any fed before it); a socket killed meanwhile (its queue
    /// overflowed while this send was stuck on a client that does not read) ends the loop.
    /// The write is polled first: the kill is only looked at when the write has to wait.
    async fn send(&self, socket: &mut WebSocket, message: Message) -> Flow {
        tokio::select! {
            biased;
            sent = socket.send(message) => sent.map_err(|_| None),
            _ = self.kill.cancelled() => Err(self.stopped()),
        }
    }

    /// Buffers one frame, written by the next [`Session::flush`] or send (or when the write
    /// buffer is full).
    async fn feed(&self, socket: &mut WebSocket, frame: Utf8Bytes) -> Flow {
        tokio::select! {
            biased;
            fed = socket.feed(Message::Text(frame)) => fed.map_err(|_| None),
            _ = self.kill.cancelled() => Err(self.stopped()),
        }
    }

    async fn flush(&self, socket: &mut WebSocket) -> Flow {
        tokio::select! {
            biased;
            flushed = socket.flush() => flushed.map_err(|_| None),
            _ = self.kill.cancelled() => Err(self.stopped()),
        }
    }

    async fn send_json(&self, socket: &mut WebSocket, frame: Value) -> Flow {
        self.send(socket, Message::Text(frame.to_string().into()))
            .await
    }

    async fn send_bytes(&self, socket: &mut WebSocket, frame: Bytes) -> Flow {
        match Utf8Bytes::try_from(frame) {
            Ok(text) => self.send(socket, Message::Text(text)).await,
            Err(_) => Ok(()),
        }
    }

    async fn error(
        &self,
        socket: &mut WebSocket,
        code: Option<&str>,
        thread_id: Option<&str>,
        message: &str,
    ) -> Flow {
        let mut frame = json!({"type": "ERROR", "message": message});
        if let Some(code) = code {
            frame["code"] = code.into();
        }
        if let Some(thread_id) = thread_id {
            frame["threadId"] = thread_id.into();
        }
        self.send_json(socket, frame).await
    }

    /// Takes one token from the command budget; false when the client is too fast.
    fn allow(&mut self) -> bool {
        let rate = f64::from(self.state.config.commands_per_sec.max(1));
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(self.burst());
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    async fn command(&mut self, socket: &mut WebSocket, text: Utf8Bytes) -> Flow {
        if text.len() > self.state.config.max_frame_bytes {
            return Err(Some((1009, "message too big")));
        }
        if !self.allow() {
            return self
                .error(socket, Some("RATE_LIMITED"), None, "Too many messages")
                .await;
        }
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            return self.error(socket, None, None, "Invalid JSON").await;
        };
        let kind = frame.get("type").and_then(Value::as_str);
        tracing::Span::current().record("type", kind);
        let thread_id = frame
            .get("threadId")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(canonical_thread_id);
        match (kind, thread_id.as_deref()) {
            (Some("JOIN_THREAD" | "LEAVE_THREAD" | "TYPING"), None) => {
                self.error(socket, None, None, "threadId is required").await
            }
            (Some("JOIN_THREAD"), Some(thread_id)) => {
                let since = frame.get("sinceSeq").and_then(Value::as_i64);
                self.join(socket, thread_id, since).await
            }
            (Some("LEAVE_THREAD"), Some(thread_id)) => {
                if self.joined.remove(thread_id).is_some() {
                    self.state.hub.leave(thread_id, self.id);
                }
                self.send_json(
                    socket,
                    json!({"type": "LEFT_THREAD", "threadId": thread_id}),
                )
                .await
            }
            (Some("TYPING"), Some(thread_id)) => {
                if !self.joined.contains_key(thread_id) {
                    return self
                        .error(
                            socket,
                            Some("NOT_JOINED"),
                            Some(thread_id),
                            "Join the thread first",
                        )
                        .await;
                }
                let typing =
                    json!({"type": "TYPING", "threadId": thread_id, "userId": &*self.who.user_id});
                self.state
                    .hub
                    .typing(thread_id, self.id, Bytes::from(typing.to_string()))
                    .await;
                Ok(())
            }
            _ => {
                let kind = match frame.get("type") {
                    None | Some(Value::Null) => "undefined".to_owned(),
                    Some(Value::String(kind)) => kind.clone(),
                    Some(other) => other.to_string(),
                };
                let message = format!("Unknown message type: {kind}");
                self.error(socket, None, None, &message).await
            }
        }
    }

    async fn join(&mut self, socket: &mut WebSocket, thread_id: &str, since: Option<i64>) -> Flow {
        let joined = json!({"type": "JOINED_THREAD", "threadId": thread_id});
        if self.joined.contains_key(thread_id) {
            return self.send_json(socket, joined).await;
        }
        if self.joined.len() >= MAX_JOINED {
            return self
                .error(
                    socket,
                    Some("TOO_MANY_THREADS"),
                    Some(thread_id),
                    "Too many threads joined",
                )
                .await;
        }
        let state = self.state.clone();
        let answer = authz::authorize(
            &state.hub.authz,
            &state.messaging,
            &self.who.user_id,
            &self.me.token(),
            thread_id,
        )
        .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(status) => {
                tracing::warn!(code = ?status.code(), %thread_id, "authorization unavailable");
                return self
                    .error(
                        socket,
                        Some("UNAVAILABLE"),
                        Some(thread_id),
                        "Try again later",
                    )
                    .await;
            }
        };
        if !answer.visible {
            return self
                .error(
                    socket,
                    Some("NOT_FOUND"),
                    Some(thread_id),
                    "Thread not found",
                )
                .await;
        }
        if !answer.allowed {
            return self
                .error(socket, Some("FORBIDDEN"), Some(thread_id), "Forbidden")
                .await;
        }
        let thread: Arc<str> = thread_id.into();
        if let Err(error) = state.hub.join(&thread, self.id).await {
            tracing::warn!(%error, "thread subscription failed");
            return self
                .error(
                    socket,
                    Some("UNAVAILABLE"),
                    Some(thread_id),
                    "Try again later",
                )
                .await;
        }
        self.joined.insert(
            thread.clone(),
            Joined {
                channel_id: answer.channel_id,
                cursor: None,
            },
        );
        if let Some(since) = since {
            let Some(cursor) = self.replay(socket, &thread, since.max(0)).await? else {
                // Part of the history may have been sent; the client joins again from the
                // last seq it got.
                metrics::counter!("realtime_resume_total", "outcome" => "failed").increment(1);
                self.joined.remove(&thread);
                self.state.hub.leave(&thread, self.id);
                return self
                    .error(
                        socket,
                        Some("UNAVAILABLE"),
                        Some(thread_id),
                        "Try again later",
                    )
                    .await;
            };
            if let Some(joined) = self.joined.get_mut(&thread) {
                joined.cursor = Some(cursor);
            }
        }
        self.send_json(socket, joined).await
    }

    /// Sends every stored event after `since` (or RESYNC_REQUIRED when that is too far back);
    /// returns the cursor live delivery continues from, or `None` when messaging could not
    /// be asked (the join fails rather than leave a hole).
    async fn replay(
        &mut self,
        socket: &mut WebSocket,
        thread: &str,
        since: i64,
    ) -> Result<Option<i64>, Close> {
        let mut after = since;
        let mut first_page = true;
        loop {
            let page = self.list_events(thread, after, PAGE).await;
            let Some(page) = page else {
                return Ok(None);
            };
            if first_page {
                first_page = false;
                // A client ahead of the thread (seqs it cannot have seen, up to i64::MAX)
                // has nothing to replay and goes on from the thread's last seq.
                after = after.min(page.last_seq);
                let since = after;
                let behind = page.last_seq - since;
                let pruned = page.first_seq > since + 1 && page.last_seq > since;
                if behind > self.state.config.resume_max_events || pruned {
                    self.send_json(
                        socket,
                        json!({"type": "RESYNC_REQUIRED", "threadId": thread, "lastSeq": page.last_seq}),
                    )
                    .await?;
                    metrics::counter!("realtime_resume_total", "outcome" => "resync").increment(1);
                    return Ok(Some(page.last_seq));
                }
            }
            let count = page.events.len();
            for event in page.events {
                if event.seq > after {
                    self.send_bytes(socket, Bytes::from(event.frame)).await?;
                    after = event.seq;
                }
            }
            if count == 0 || after >= page.last_seq {
                metrics::counter!("realtime_resume_total", "outcome" => "replayed").increment(1);
                return Ok(Some(after));
            }
        }
    }

    async fn list_events(
        &self,
        thread: &str,
        after: i64,
        limit: i32,
    ) -> Option<hilo_proto::messaging::v1::ListThreadEventsResponse> {
        let request = hilo_kit::grpc::request(
            ListThreadEventsRequest {
                thread_id: thread.to_owned(),
                after_seq: after,
                limit,
            },
            Some(&self.me.token()),
            None,
        );
        match self
            .state
            .messaging
            .clone()
            .list_thread_events(request)
            .await
        {
            Ok(reply) => Some(reply.into_inner()),
            Err(status) => {
                tracing::warn!(code = ?status.code(), %thread, "ListThreadEvents failed");
                None
            }
        }
    }

    async fn deliver(&mut self, socket: &mut WebSocket, delivery: Delivery) -> Flow {
        match delivery {
            Delivery::Event(event) => self.deliver_event(socket, &event).await,
            Delivery::Events(events) => {
                for event in events.iter() {
                    self.deliver_event(socket, event).await?;
                }
                Ok(())
            }
            Delivery::Resync(resync) => self.resync(socket, &resync.thread_id, resync.seq).await,
            Delivery::Typing(frame) => self.send_bytes(socket, (*frame).clone()).await,
            Delivery::ChannelLost(channel) => {
                let lost: Vec<Arc<str>> = self
                    .joined
                    .iter()
                    .filter(|(_, j)| *j.channel_id == *channel)
                    .map(|(t, _)| t.clone())
                    .collect();
                for thread in lost {
                    self.end_subscription(socket, &thread, "FORBIDDEN").await?;
                }
                Ok(())
            }
            Delivery::SessionEnded => Err(Some((1008, "session ended"))),
        }
    }

    /// Forwards a live event once: the thread's pump releases events in seq order with no
    /// gap, and older ones are duplicates (already replayed).
    async fn deliver_event(&mut self, socket: &mut WebSocket, event: &Event) -> Flow {
        let thread = &event.thread_id;
        let Some(joined) = self.joined.get_mut(thread) else {
            return Ok(());
        };
        match joined.cursor {
            Some(cursor) if event.seq <= cursor => return Ok(()),
            Some(cursor) if event.seq > cursor + 1 => {
                // Cannot happen by construction; if it does, say so rather than skip quietly.
                tracing::error!(%thread, cursor, seq = event.seq, "jump in live delivery");
                self.resync(socket, thread, event.seq - 1).await?;
                if let Some(joined) = self.joined.get_mut(thread) {
                    joined.cursor = Some(event.seq);
                }
            }
            // The cursor moves before the write: a failed write ends the socket anyway.
            _ => joined.cursor = Some(event.seq),
        }
        self.feed(socket, event.frame.clone()).await?;
        // One delivery in DELIVERY_SAMPLE is timed (spread over sockets and seqs): recording
        // every one costs a clock read and a sample per socket per event.
        if self
            .id
            .wrapping_add(event.seq as u64)
            .is_multiple_of(DELIVERY_SAMPLE)
        {
            self.state
                .hub
                .delivery_seconds
                .record(event.received.elapsed().as_secs_f64());
        }
        if event.ends_thread {
            return self.end_subscription(socket, thread, "NOT_FOUND").await;
        }
        Ok(())
    }

    /// Tells the client the thread's events up to `seq` cannot all be delivered (it reloads
    /// them over REST), unless it already has them; live delivery continues after `seq`.
    async fn resync(&mut self, socket: &mut WebSocket, thread: &Arc<str>, seq: i64) -> Flow {
        let Some(joined) = self.joined.get_mut(thread) else {
            return Ok(());
        };
        if joined.cursor.is_some_and(|cursor| cursor >= seq) {
            return Ok(());
        }
        joined.cursor = Some(seq);
        self.send_json(
            socket,
            json!({"type": "RESYNC_REQUIRED", "threadId": &**thread, "lastSeq": seq}),
        )
        .await
    }

    /// Ends a subscription the client did not leave (access lost, thread deleted) and tells
    /// it with an unasked LEFT_THREAD carrying the reason.
    async fn end_subscription(
        &mut self,
        socket: &mut WebSocket,
        thread: &Arc<str>,
        code: &str,
    ) -> Flow {
        self.joined.remove(thread);
        self.state.hub.leave(thread, self.id);
        self.send_json(
            socket,
            json!({"type": "LEFT_THREAD", "threadId": &**thread, "code": code}),
        )
        .await
    }

    /// Checks the session is still valid (sign-out, revocation), refreshes the access token
    /// used for messaging calls, and asks again about every joined thread: the membership
    /// events that end subscriptions at once ride on core NATS, and a replica that missed
    /// one (disconnected at the time) must not go on delivering. An outage keeps the socket
    /// and its subscriptions.
    async fn revalidate(&mut self, socket: &mut WebSocket) -> Flow {
        match crate::sessions::lookup(&self.state, &self.who.session_token, None).await {
            Ok(Some((_, token))) => self.me.set_token(token.into()),
            Ok(None) => return Err(Some((1008, "session ended"))),
            Err(status) => {
                tracing::warn!(code = ?status.code(), "session check unavailable");
                return Ok(());
            }
        }
        let threads: Vec<Arc<str>> = self.joined.keys().cloned().collect();
        let state = self.state.clone();
        for thread in threads {
            let answer = authz::authorize(
                &state.hub.authz,
                &state.messaging,
                &self.who.user_id,
                &self.me.token(),
                &thread,
            )
            .await;
            // FORBIDDEN, as when the removal event arrives (a private channel's thread is
            // also invisible now, which says the same).
            match answer {
                Ok(answer) if !answer.allowed => {
                    self.end_subscription(socket, &thread, "FORBIDDEN").await?;
                }
                Ok(_) => {}
                Err(status) => {
                    tracing::warn!(code = ?status.code(), %thread, "thread re-check unavailable");
                }
            }
        }
        Ok(())
    }
}

/// A thread id as the rest of Hilo spells it: a UUID written any way the parser accepts
/// (upper case, braces, `urn:uuid:`, no hyphens) is the one lower-case hyphenated form, so
/// it names the same thread, subject and cache entries; anything else is kept as sent (and
/// is not found).
fn canonical_thread_id(raw: &str) -> String {
    uuid::Uuid::try_parse(raw).map_or_else(|_| raw.to_owned(), |id| id.hyphenated().to_string())
}
