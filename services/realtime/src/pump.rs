//! One task per thread joined on this replica: it reads the thread's NATS subjects, puts the
//! events in seq order ([`Sequencer`]) and hands them to every local socket of the thread. A
//! hole (an event NATS did not deliver) is repaired here once for all the thread's sockets:
//! after a short wait for a late arrival, the missing events are fetched from messaging,
//! retrying with backoff; if they are still missing after `GAP_REPAIR_SECS` (or messaging no
//! longer has them), the sockets get RESYNC_REQUIRED and delivery goes on after the hole.
//! The task never waits on a socket, and sockets never wait on messaging for live events.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::Subscriber;
use axum::extract::ws::Utf8Bytes;
use futures_util::{FutureExt as _, StreamExt as _};
use hilo_proto::messaging::v1::{ListThreadEventsRequest, ListThreadEventsResponse};
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::field::Empty;

use crate::{
    fanout::{Delivery, Event, Hub, ORIGIN_HEADER, Resync, ThreadEntry, lock},
    sequencer::Sequencer,
};

/// A thread's NATS subscriptions.
pub struct Feeds {
    pub events: Subscriber,
    pub typing: Subscriber,
}

/// How long a missing event may take to arrive by itself (out of order) before it is fetched.
const REORDER_WAIT: Duration = Duration::from_millis(20);
/// Events asked of messaging per gap fetch.
const PAGE: i64 = 500;
/// A gap fetch that takes longer counts as failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Events held behind one hole before it is given up at once.
const MAX_HELD: usize = 10_000;
/// NATS messages already received that are put in order and released together.
const BURST: usize = 1_000;

/// A gap fetch's answer: the hole it was for (`after`, `until`) and messaging's reply.
type Fetched = (i64, i64, Result<ListThreadEventsResponse, tonic::Status>);

/// The repair of the current hole.
#[derive(Default)]
struct Repair {
    /// When the hole was first seen.
    since: Option<Instant>,
    /// When to fetch next.
    due: Option<Instant>,
    attempts: u32,
}

struct Pump {
    hub: Arc<Hub>,
    thread_id: Arc<str>,
    entry: Arc<ThreadEntry>,
    order: Sequencer,
    repair: Repair,
    fetching: bool,
}

/// Pumps one thread until its subscription is dropped (the last local socket left).
pub async fn run(
    hub: Arc<Hub>,
    thread_id: Arc<str>,
    entry: Arc<ThreadEntry>,
    mut feeds: Feeds,
    last_seq: i64,
) {
    let mut pump = Pump {
        hub,
        thread_id,
        entry,
        order: Sequencer::default(),
        repair: Repair::default(),
        fetching: false,
    };
    let released = pump.order.start_after(last_seq);
    pump.release(released);
    let (fetched_tx, mut fetched) = mpsc::channel::<Fetched>(1);
    loop {
        let due = pump.repair.due.filter(|_| !pump.fetching);
        tokio::select! {
            message = feeds.events.next() => {
                let Some(message) = message else { return };
                // A burst (a backlog published after NATS or the relay came back) is released
                // as one delivery: one queue slot per socket, however long the burst.
                let (span, mut released) = pump.event(&message);
                for _ in 0..BURST {
                    let Some(Some(message)) = feeds.events.next().now_or_never() else { break };
                    released.extend(pump.event(&message).1);
                }
                span.in_scope(|| pump.release(released));
                if pump.order.held() > MAX_HELD {
                    pump.give_up();
                }
            }
            Some(message) = feeds.typing.next() => pump.typing(&message),
            Some((after, until, result)) = fetched.recv() => pump.fetched(after, until, result),
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {
                pump.fetch(&fetched_tx);
            }
        }
        pump.plan();
    }
}

impl Pump {
    /// Puts a NATS message in order; the events it releases, and its delivery span (which
    /// continues the publisher's trace).
    fn event(&mut self, message: &async_nats::Message) -> (tracing::Span, Vec<Arc<Event>>) {
        #[derive(Deserialize)]
        struct Head<'a> {
            seq: i64,
            #[serde(rename = "type", borrow)]
            kind: Option<std::borrow::Cow<'a, str>>,
        }
        let (Ok(head), Ok(frame)) = (
            serde_json::from_slice::<Head>(&message.payload),
            Utf8Bytes::try_from(message.payload.clone()),
        ) else {
            tracing::warn!(thread_id = %self.thread_id, "unreadable thread event, dropped");
            return (tracing::Span::none(), Vec::new());
        };
        let span = tracing::info_span!(
            "deliver",
            thread_id = %self.thread_id,
            seq = head.seq,
            otel.kind = "consumer",
            trace_id = Empty,
        );
        hilo_kit::telemetry::continue_nats(&span, message.headers.as_ref());
        span.record(
            "trace_id",
            tracing::field::display(hilo_kit::telemetry::trace_id(&span)),
        );
        let event = Arc::new(Event {
            thread_id: self.thread_id.clone(),
            seq: head.seq,
            ends_thread: head.kind.as_deref() == Some(hilo_proto::frames::kind::THREAD_DELETED),
            frame,
            received: Instant::now(),
        });
        let released = span.in_scope(|| self.order.push(event));
        (span, released)
    }

    /// Schedules the repair of a hole, or forgets the repair once there is none.
    fn plan(&mut self) {
        if self.order.hole().is_none() {
            self.repair = Repair::default();
        } else if self.repair.since.is_none() {
            let now = Instant::now();
            self.repair = Repair {
                since: Some(now),
                due: Some(now + REORDER_WAIT),
                attempts: 0,
            };
        }
    }

    /// Asks messaging for the missing events, with the token of one of the thread's sockets
    /// (another one at each attempt, in case one lost access).
    fn fetch(&mut self, done: &mpsc::Sender<Fetched>) {
        self.repair.due = None;
        let Some((after, until)) = self.order.hole() else {
            return;
        };
        let token = {
            let sockets = lock(&self.entry.sockets);
            let n = sockets.len().max(1);
            sockets
                .values()
                .nth(self.repair.attempts as usize % n)
                .map(|s| s.token())
        };
        let Some(token) = token else {
            return;
        };
        self.fetching = true;
        metrics::counter!("realtime_gap_fetches_total").increment(1);
        let request = hilo_kit::grpc::request(
            ListThreadEventsRequest {
                thread_id: self.thread_id.to_string(),
                after_seq: after,
                limit: (until - after - 1).min(PAGE) as i32,
            },
            Some(&token),
            None,
        );
        let (mut messaging, done) = (self.hub.messaging.clone(), done.clone());
        tokio::spawn(async move {
            let reply = tokio::time::timeout(FETCH_TIMEOUT, messaging.list_thread_events(request))
                .await
                .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("gap fetch timed out")));
            let _ = done
                .send((after, until, reply.map(|r| r.into_inner())))
                .await;
        });
    }

    fn fetched(
        &mut self,
        after: i64,
        until: i64,
        reply: Result<ListThreadEventsResponse, tonic::Status>,
    ) {
        self.fetching = false;
        match reply {
            Ok(page) => {
                let now = Instant::now();
                for stored in page.events {
                    let Ok(frame) = Utf8Bytes::try_from(bytes::Bytes::from(stored.frame)) else {
                        continue;
                    };
                    let event = Arc::new(Event {
                        thread_id: self.thread_id.clone(),
                        seq: stored.seq,
                        ends_thread: stored.r#type == hilo_proto::frames::kind::THREAD_DELETED,
                        frame,
                        received: now,
                    });
                    let released = self.order.push(event);
                    self.release(released);
                }
                if self.order.hole().is_some_and(|(a, _)| a == after) {
                    // Messaging answered without the first missing event: it is gone.
                    tracing::warn!(thread_id = %self.thread_id, after, until, "missing events no longer stored");
                    self.give_up();
                } else if self.order.hole().is_some() {
                    // Filled up to the page's end: go on at once.
                    let now = Instant::now();
                    self.repair = Repair {
                        since: Some(now),
                        due: Some(now),
                        attempts: 0,
                    };
                }
            }
            Err(status) => {
                self.repair.attempts += 1;
                let since = self.repair.since.unwrap_or_else(Instant::now);
                if since.elapsed() >= self.hub.gap_repair {
                    tracing::warn!(thread_id = %self.thread_id, code = ?status.code(), "missing events could not be fetched");
                    self.give_up();
                } else {
                    let backoff = Duration::from_millis(50 << self.repair.attempts.min(5));
                    self.repair.due = Some(Instant::now() + backoff);
                }
            }
        }
    }

    /// Skips the current hole: its sockets resynchronise, then get what waited behind it.
    fn give_up(&mut self) {
        let Some((seq, released)) = self.order.skip() else {
            return;
        };
        metrics::counter!("realtime_unfillable_holes_total").increment(1);
        let resync = Delivery::Resync(Arc::new(Resync {
            thread_id: self.thread_id.clone(),
            seq,
        }));
        for socket in lock(&self.entry.sockets).values() {
            socket.offer(resync.clone());
        }
        self.release(released);
        self.repair = Repair::default();
    }

    /// Hands events released in order to every socket of the thread (one queue slot each).
    fn release(&self, mut events: Vec<Arc<Event>>) {
        if events.is_empty() {
            return;
        }
        if events.iter().any(|e| e.ends_thread) {
            self.hub.authz.forget_thread(&self.thread_id);
        }
        let count = events.len();
        let delivery = if count == 1 {
            Delivery::Event(events.remove(0))
        } else {
            Delivery::Events(Arc::new(events))
        };
        let sockets = lock(&self.entry.sockets);
        for socket in sockets.values() {
            socket.offer(delivery.clone());
        }
        metrics::counter!("realtime_deliveries_total").increment((sockets.len() * count) as u64);
        tracing::debug!(
            sockets = sockets.len(),
            events = count,
            "thread events fanned out"
        );
    }

    fn typing(&self, message: &async_nats::Message) {
        let origin = message
            .headers
            .as_ref()
            .and_then(|h| h.get(ORIGIN_HEADER))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let local_origin = origin
            .strip_prefix(self.hub.replica.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|id| id.parse::<u64>().ok());
        let frame = Arc::new(message.payload.clone());
        for (id, socket) in lock(&self.entry.sockets).iter() {
            if Some(*id) != local_origin {
                socket.offer(Delivery::Typing(frame.clone()));
            }
        }
    }
}
