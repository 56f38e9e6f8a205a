//! NATS fan-out. A replica holds one NATS connection and, per thread joined by at least one
//! of its sockets, one subscription to the thread's events (`chat.thread.<id>`) and one to its
//! typing frames (`chat.typing.<id>`), reference-counted by socket, pumped by one task per
//! thread ([`crate::pump`]) that releases events in seq order. Each event's bytes are shared by
//! every socket's queue; a socket whose queue is full is killed (the session closes it with
//! 1008) rather than slowing the others.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::Client;
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures_util::StreamExt as _;
use hilo_proto::messaging::v1::ListThreadEventsRequest;
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;

use crate::authz::{AuthzCache, Messaging};

/// Prefix of the ephemeral typing subjects (core NATS, never stored).
pub const TYPING_PREFIX: &str = "chat.typing.";
/// NATS header naming the socket a typing frame came from (`<replica>/<socket>`).
pub const ORIGIN_HEADER: &str = "Hilo-Origin";

/// A stored thread event as published by messaging: the exact client frame and its `seq`.
#[derive(Debug)]
pub struct Event {
    pub thread_id: Arc<str>,
    pub seq: i64,
    /// The client frame (checked UTF-8 once, for every socket).
    pub frame: Utf8Bytes,
    /// THREAD_DELETED: the last event of its thread; subscriptions end after it.
    pub ends_thread: bool,
    /// When this replica received it (delivery latency is measured from here).
    pub received: Instant,
}

/// A hole in a thread's events that could not be filled: sockets behind `seq` resynchronise.
#[derive(Debug)]
pub struct Resync {
    pub thread_id: Arc<str>,
    /// The last missing seq; live delivery continues after it.
    pub seq: i64,
}

/// What the hub hands to a socket's session loop. Kept to one pointer (plus the tag): every
/// socket's queue allocates room for 32 of them up front.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A stored event of a joined thread.
    Event(Arc<Event>),
    /// Consecutive events released at once (a hole was filled): one queue slot, so a delay
    /// upstream never makes a healthy socket look slow.
    Events(Arc<Vec<Arc<Event>>>),
    /// Events were lost for good before the next ones: tell the client to resynchronise.
    Resync(Arc<Resync>),
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
    /// The user's current access token: the socket's calls to messaging, and the thread's
    /// gap fetches, use it.
    token: Mutex<Arc<str>>,
    tx: mpsc::Sender<Delivery>,
    kill: CancellationToken,
}

impl SocketEntry {
    /// Queues without waiting; a full queue kills the socket (slow consumer).
    pub fn offer(&self, delivery: Delivery) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(delivery) {
            metrics::counter!("realtime_slow_consumers_total").increment(1);
            self.kill.cancel();
        }
    }

    pub fn token(&self) -> Arc<str> {
        lock(&self.token).clone()
    }

    /// Replaces the access token (refreshed by the session re-check).
    pub fn set_token(&self, token: Arc<str>) {
        *lock(&self.token) = token;
    }
}

/// The sockets of one thread, read by its pump for every event.
#[derive(Default)]
pub struct ThreadEntry {
    pub sockets: Mutex<HashMap<u64, Arc<SocketEntry>>>,
}

/// A thread's subscription: its sockets and the task that pumps NATS into them, started by
/// the first join (later joins wait for it).
#[derive(Default)]
struct Subscription {
    entry: Arc<ThreadEntry>,
    started: OnceCell<()>,
    pump: Mutex<Option<tokio::task::AbortHandle>>,
}

/// The replica's fan-out state: built once, shared by every session.
pub struct Hub {
    pub nats: Client,
    pub messaging: Messaging,
    pub replica: String,
    pub authz: AuthzCache,
    /// How long a thread's pump tries to fill a hole before telling its sockets to resync.
    pub gap_repair: Duration,
    /// `realtime_delivery_seconds`, looked up once (it is recorded for a sample of deliveries).
    pub delivery_seconds: metrics::Histogram,
    sockets: Mutex<HashMap<u64, Arc<SocketEntry>>>,
    threads: Mutex<HashMap<Arc<str>, Arc<Subscription>>>,
}

impl Hub {
    /// A hub on `nats`; `replica` tells this replica's typing frames apart from others'.
    pub fn new(
        nats: Client,
        messaging: Messaging,
        authz: AuthzCache,
        gap_repair: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            nats,
            messaging,
            replica: uuid::Uuid::now_v7().to_string(),
            authz,
            gap_repair,
            delivery_seconds: metrics::histogram!("realtime_delivery_seconds"),
            sockets: Mutex::default(),
            threads: Mutex::default(),
        })
    }

    /// Registers a socket so user- and channel-wide events can reach it.
    pub fn register(
        &self,
        id: u64,
        who: &crate::session::Who,
        token: Arc<str>,
        tx: mpsc::Sender<Delivery>,
        kill: CancellationToken,
    ) -> Arc<SocketEntry> {
        let entry = Arc::new(SocketEntry {
            user_id: who.user_id.clone(),
            session_id: who.session_id.clone(),
            token: Mutex::new(token),
            tx,
            kill,
        });
        lock(&self.sockets).insert(id, entry.clone());
        entry
    }

    /// Forgets a socket and drops its thread subscriptions.
    pub fn unregister(&self, id: u64, threads: impl Iterator<Item = Arc<str>>) {
        for thread in threads {
            self.leave(&thread, id);
        }
        lock(&self.sockets).remove(&id);
    }

    /// Adds a socket to a thread, subscribing the replica when it is the thread's first. When
    /// this returns, the subscription is live at the server (flushed) and the thread's pump
    /// releases every event after the thread's last seq at that moment, so a replay fetched
    /// afterwards overlaps live delivery instead of leaving a hole.
    pub async fn join(self: &Arc<Self>, thread_id: &Arc<str>, id: u64) -> anyhow::Result<()> {
        let Some(socket) = lock(&self.sockets).get(&id).cloned() else {
            return Ok(());
        };
        // Under the map's lock, as `leave` removes emptied subscriptions under it.
        let sub = {
            let mut threads = lock(&self.threads);
            let sub = threads.entry(thread_id.clone()).or_default().clone();
            lock(&sub.entry.sockets).insert(id, socket.clone());
            sub
        };
        let token = socket.token();
        let started = sub
            .started
            .get_or_try_init(|| self.subscribe(thread_id, &sub, &token))
            .await;
        if let Err(error) = started {
            self.leave(thread_id, id);
            return Err(error);
        }
        Ok(())
    }

    /// Subscribes to a thread's subjects, learns where its live events start, and starts its
    /// pump.
    async fn subscribe(
        self: &Arc<Self>,
        thread_id: &Arc<str>,
        sub: &Subscription,
        token: &str,
    ) -> anyhow::Result<()> {
        let events = self
            .nats
            .subscribe(hilo_proto::subjects::thread(thread_id))
            .await?;
        let typing = self
            .nats
            .subscribe(format!("{TYPING_PREFIX}{thread_id}"))
            .await?;
        self.sync().await?;
        let last_seq = self.last_seq(thread_id, token).await?;
        let pump = tokio::spawn(crate::pump::run(
            self.clone(),
            thread_id.clone(),
            sub.entry.clone(),
            crate::pump::Feeds { events, typing },
            last_seq,
        ))
        .abort_handle();
        *lock(&sub.pump) = Some(pump);
        metrics::gauge!("realtime_thread_subscriptions").increment(1.0);
        Ok(())
    }

    /// The thread's last stored seq, asked of messaging.
    async fn last_seq(&self, thread_id: &str, token: &str) -> anyhow::Result<i64> {
        let request = hilo_kit::grpc::request(
            ListThreadEventsRequest {
                thread_id: thread_id.to_owned(),
                after_seq: i64::MAX,
                limit: 1,
            },
            Some(token),
            None,
        );
        let reply = self.messaging.clone().list_thread_events(request).await?;
        Ok(reply.into_inner().last_seq)
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
    pub fn leave(&self, thread_id: &str, id: u64) {
        let mut threads = lock(&self.threads);
        let Some(sub) = threads.get(thread_id) else {
            return;
        };
        let empty = {
            let mut sockets = lock(&sub.entry.sockets);
            sockets.remove(&id);
            sockets.is_empty()
        };
        if empty
            && let Some(sub) = threads.remove(thread_id)
            && let Some(pump) = lock(&sub.pump).take()
        {
            pump.abort();
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

/// Locks a std mutex; a poisoned one (a panic elsewhere) still holds usable data.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
