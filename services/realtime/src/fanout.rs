//! NATS fan-out. A replica holds one NATS connection and, per thread joined by at least one
//! of its sockets, one subscription to the thread's events (`chat.thread.<id>`) and one to its
//! typing frames (`chat.typing.<id>`), reference-counted by socket. Each published event is
//! parsed once (for `seq`) and its bytes are shared by every socket's queue; a socket whose
//! queue is full is killed (the session closes it with 1008) rather than slowing the others.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;

use crate::authz::AuthzCache;

/// Prefix of the ephemeral typing subjects (core NATS, never stored).
pub const TYPING_PREFIX: &str = "chat.typing.";
/// NATS header naming the socket a typing frame came from (`<replica>/<socket>`).
const ORIGIN_HEADER: &str = "Hilo-Origin";

/// A stored thread event as published by messaging: the exact client frame and its `seq`.
#[derive(Debug)]
pub struct Event {
    pub thread_id: Arc<str>,
    pub seq: i64,
    pub frame: Bytes,
    /// THREAD_DELETED: the last event of its thread; subscriptions end after it.
    pub ends_thread: bool,
}

/// What the hub hands to a socket's session loop. Kept to one pointer (plus the tag): every
/// socket's queue allocates room for 32 of them up front.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A stored event of a joined thread.
    Event(Arc<Event>),
    /// A typing frame of a joined thread, from another socket.
    Typing(Arc<Bytes>),
    /// The user lost access to this channel (removed, or the channel deleted).
    ChannelLost(Arc<str>),
    /// The socket's session ended (sign-out, or the user was deleted).
    SessionEnded,
}

/// One socket as the hub sees it.
pub struct SocketEntry {
    pub user_id: Arc<str>,
    /// The session it was opened with (empty when unknown).
    pub session_id: Arc<str>,
    tx: mpsc::Sender<Delivery>,
    kill: CancellationToken,
}

impl SocketEntry {
    /// Queues without waiting; a full queue kills the socket (slow consumer).
    fn offer(&self, delivery: Delivery) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(delivery) {
            metrics::counter!("realtime_slow_consumers_total").increment(1);
            self.kill.cancel();
        }
    }
}

/// The sockets of one thread, read by its pump for every event.
#[derive(Default)]
struct ThreadEntry {
    sockets: Mutex<HashMap<u64, Arc<SocketEntry>>>,
}

/// A thread's subscription: its sockets and the task that pumps NATS into them.
struct Subscription {
    entry: Arc<ThreadEntry>,
    pump: tokio::task::AbortHandle,
}

/// The replica's fan-out state: built once, shared by every session.
pub struct Hub {
    nats: Client,
    replica: String,
    pub authz: AuthzCache,
    sockets: Mutex<HashMap<u64, Arc<SocketEntry>>>,
    threads: tokio::sync::Mutex<HashMap<Arc<str>, Subscription>>,
}

impl Hub {
    /// A hub on `nats`; `replica` tells this replica's typing frames apart from others'.
    pub fn new(nats: Client, authz: AuthzCache) -> Arc<Self> {
        Arc::new(Self {
            nats,
            replica: uuid::Uuid::now_v7().to_string(),
            authz,
            sockets: Mutex::default(),
            threads: tokio::sync::Mutex::default(),
        })
    }

    /// Registers a socket so user- and channel-wide events can reach it.
    pub fn register(
        &self,
        id: u64,
        who: &crate::session::Who,
        tx: mpsc::Sender<Delivery>,
        kill: CancellationToken,
    ) {
        let entry = Arc::new(SocketEntry {
            user_id: who.user_id.clone(),
            session_id: who.session_id.clone(),
            tx,
            kill,
        });
        lock(&self.sockets).insert(id, entry);
    }

    /// Forgets a socket and drops its thread subscriptions.
    pub async fn unregister(&self, id: u64, threads: impl Iterator<Item = Arc<str>>) {
        for thread in threads {
            self.leave(&thread, id).await;
        }
        lock(&self.sockets).remove(&id);
    }

    /// Adds a socket to a thread, subscribing the replica when it is the thread's first. When
    /// this returns, the subscription is live at the server (flushed), so a replay fetched
    /// afterwards overlaps live delivery instead of leaving a hole.
    pub async fn join(self: &Arc<Self>, thread_id: &Arc<str>, id: u64) -> anyhow::Result<()> {
        let Some(socket) = lock(&self.sockets).get(&id).cloned() else {
            return Ok(());
        };
        let mut threads = self.threads.lock().await;
        if let Some(sub) = threads.get(thread_id) {
            lock(&sub.entry.sockets).insert(id, socket);
            return Ok(());
        }
        let events = self
            .nats
            .subscribe(hilo_proto::subjects::thread(thread_id))
            .await?;
        let typing = self
            .nats
            .subscribe(format!("{TYPING_PREFIX}{thread_id}"))
            .await?;
        self.sync().await?;
        let entry = Arc::new(ThreadEntry::default());
        lock(&entry.sockets).insert(id, socket);
        let pump = tokio::spawn(pump(
            self.clone(),
            thread_id.clone(),
            entry.clone(),
            events,
            typing,
        ))
        .abort_handle();
        threads.insert(thread_id.clone(), Subscription { entry, pump });
        metrics::gauge!("realtime_thread_subscriptions").increment(1.0);
        Ok(())
    }

    /// A round trip through the NATS server on this connection: the server handles a
    /// connection's commands in order, so when the echo comes back every earlier SUB is live
    /// (a plain flush only empties the local buffer).
    async fn sync(&self) -> anyhow::Result<()> {
        self.nats.request(self.echo_subject(), Bytes::new()).await?;
        Ok(())
    }

    fn echo_subject(&self) -> String {
        format!("hilo.realtime.echo.{}", self.replica)
    }

    /// Answers this replica's own [`Hub::sync`] requests.
    pub async fn serve_echo(&self) -> anyhow::Result<()> {
        let mut echo = self.nats.subscribe(self.echo_subject()).await?;
        let nats = self.nats.clone();
        tokio::spawn(async move {
            while let Some(message) = echo.next().await {
                if let Some(reply) = message.reply {
                    let _ = nats.publish(reply, Bytes::new()).await;
                }
            }
        });
        Ok(())
    }

    /// Removes a socket from a thread; the last one out unsubscribes the replica.
    pub async fn leave(&self, thread_id: &str, id: u64) {
        let mut threads = self.threads.lock().await;
        let Some(sub) = threads.get(thread_id) else {
            return;
        };
        let empty = {
            let mut sockets = lock(&sub.entry.sockets);
            sockets.remove(&id);
            sockets.is_empty()
        };
        if empty && let Some(sub) = threads.remove(thread_id) {
            sub.pump.abort();
            metrics::gauge!("realtime_thread_subscriptions").decrement(1.0);
        }
    }

    /// Publishes a typing frame to the thread's other subscribers, on every replica.
    pub async fn typing(&self, thread_id: &str, id: u64, frame: Bytes) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(ORIGIN_HEADER, format!("{}/{id}", self.replica).as_str());
        let subject = format!("{TYPING_PREFIX}{thread_id}");
        if let Err(error) = self
            .nats
            .publish_with_headers(subject, headers, frame)
            .await
        {
            tracing::warn!(%error, "typing frame not published");
        }
    }

    /// Tells the sockets of `user_id` (every socket when `None`) that `channel_id` is gone.
    pub fn channel_lost(&self, channel_id: &str, user_id: Option<&str>) {
        let channel: Arc<str> = channel_id.into();
        for socket in lock(&self.sockets).values() {
            if user_id.is_none_or(|u| *socket.user_id == *u) {
                socket.offer(Delivery::ChannelLost(channel.clone()));
            }
        }
    }

    /// Ends every socket that `matches` (its session ended, its user was deleted); returns
    /// how many.
    pub fn end(&self, matches: impl Fn(&SocketEntry) -> bool) -> usize {
        let sockets = lock(&self.sockets);
        let ended: Vec<_> = sockets.values().filter(|s| matches(s)).collect();
        for socket in &ended {
            socket.offer(Delivery::SessionEnded);
        }
        ended.len()
    }
}

/// Forwards one thread's NATS messages to its sockets until the subscription is dropped.
async fn pump(
    hub: Arc<Hub>,
    thread_id: Arc<str>,
    entry: Arc<ThreadEntry>,
    mut events: Subscriber,
    mut typing: Subscriber,
) {
    loop {
        tokio::select! {
            Some(message) = events.next() => deliver_event(&hub, &thread_id, &entry, message),
            Some(message) = typing.next() => deliver_typing(&hub, &entry, message),
            else => return,
        }
    }
}

fn deliver_event(
    hub: &Hub,
    thread_id: &Arc<str>,
    entry: &ThreadEntry,
    message: async_nats::Message,
) {
    #[derive(Deserialize)]
    struct Head<'a> {
        seq: i64,
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    let Ok(head) = serde_json::from_slice::<Head>(&message.payload) else {
        tracing::warn!(%thread_id, "thread event without a seq, dropped");
        return;
    };
    let span = tracing::info_span!(
        "deliver",
        %thread_id,
        seq = head.seq,
        otel.kind = "consumer",
        trace_id = Empty,
    );
    hilo_kit::telemetry::continue_nats(&span, message.headers.as_ref());
    span.record(
        "trace_id",
        tracing::field::display(hilo_kit::telemetry::trace_id(&span)),
    );
    let _entered = span.enter();
    let event = Arc::new(Event {
        thread_id: thread_id.clone(),
        seq: head.seq,
        ends_thread: head.kind.as_deref() == Some(hilo_proto::frames::kind::THREAD_DELETED),
        frame: message.payload,
    });
    if event.ends_thread {
        hub.authz.forget_thread(thread_id);
    }
    let sockets = lock(&entry.sockets);
    for socket in sockets.values() {
        socket.offer(Delivery::Event(event.clone()));
    }
    metrics::counter!("realtime_deliveries_total").increment(sockets.len() as u64);
    tracing::info!(sockets = sockets.len(), "thread event fanned out");
}

fn deliver_typing(hub: &Hub, entry: &ThreadEntry, message: async_nats::Message) {
    let origin = message
        .headers
        .as_ref()
        .and_then(|h| h.get(ORIGIN_HEADER))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    let local_origin = origin
        .strip_prefix(hub.replica.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|id| id.parse::<u64>().ok());
    let frame = Arc::new(message.payload);
    for (id, socket) in lock(&entry.sockets).iter() {
        if Some(*id) != local_origin {
            socket.offer(Delivery::Typing(frame.clone()));
        }
    }
}

/// Locks a std mutex; a poisoned one (a panic elsewhere) still holds usable data.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
