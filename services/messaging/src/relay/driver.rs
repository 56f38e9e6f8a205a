//! The publishing half of the relay: one task per replica holding a chain per thread with
//! events to publish. A chain publishes its head, waits for JetStream's ack, then the next one
//! (so the subject sees the thread's seqs in order even across retries and reconnections);
//! all chains publish at once. Events reach a chain from this replica's commits, from other
//! replicas (core NATS, when this one holds the thread's partition), and from the outbox
//! (loads of threads whose chain is new or saw a jump, and a scan every second). Published
//! marks (outbox deletions) are written in batches, one batch at a time, at most once per tick
//! (50 ms) unless many are waiting: at 1,000 events/s a delete per ack or two cost PostgreSQL
//! as much as the posts' own inserts (mostly planning, the unnest arrays defeat the plan cache),
//! and a mark written late only leaves a published row for the scan to skip.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use async_nats::{
    HeaderMap, Subscriber,
    jetstream::{self, context::PublishError, publish::PublishAck},
};
use bytes::Bytes;
use futures_util::{StreamExt as _, future::BoxFuture, stream::FuturesUnordered};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    Event,
    chain::{Chain, Item, last_in_stream, publish},
    lease::{self, Control, Leases},
};
use crate::db::relay::{self as db, Pending};

/// Outbox rows read per scan page.
const PAGE: i64 = 2_000;
/// Events held in memory before the scan stops reading more.
const MAX_QUEUED: usize = 50_000;
/// Threads loaded per targeted read.
const LOAD_THREADS: usize = 1_000;
/// A pending event older than this may have been published by a replica that died before
/// marking it: its thread's chain first asks the stream what it already has.
const STALE_SECS: f64 = 5.0;
/// Chains with nothing to do are forgotten after this long.
const IDLE: Duration = Duration::from_secs(30);
/// Marks written at once, without waiting for the next tick.
const MARK_BATCH: usize = 1_000;
/// Pause after a database error before reading or marking again.
const DB_BACKOFF: Duration = Duration::from_millis(500);

/// A publication's outcome: thread, partition, seq, commit time, ack.
type Acked = (Uuid, i16, i64, SystemTime, Result<PublishAck, PublishError>);

/// Background work finished.
enum Done {
    Loaded(sqlx::Result<Vec<Pending>>),
    Scanned(sqlx::Result<Vec<Pending>>),
    Marked(sqlx::Result<()>, Vec<(i16, Uuid, i64)>),
    /// The stream's last seq for a thread (`None`: unknown or nothing there).
    Checked(Uuid, Option<i64>),
}

pub struct Driver {
    pool: PgPool,
    js: jetstream::Context,
    nats: async_nats::Client,
    stream: jetstream::stream::Stream,
    me: Uuid,
    leases: Arc<Leases>,
    chains: HashMap<Uuid, Chain>,
    /// Chains that may be able to publish (checked when popped).
    ready: VecDeque<Uuid>,
    /// Threads to read from the outbox, with their partition.
    dirty: HashMap<Uuid, i16>,
    loading: bool,
    scan_wanted: bool,
    scanning: bool,
    scan_after: Option<(i16, Uuid, i64)>,
    /// Highest published seq per thread, not yet written.
    marks: HashMap<Uuid, (i16, i64)>,
    marking: bool,
    /// A tick passed since the last batch of marks was written.
    mark_due: bool,
    db_paused_until: Option<Instant>,
    retries: Vec<(Instant, Uuid)>,
    in_flight: [u32; lease::PARTITIONS as usize],
    queued: usize,
    releasing: Vec<(u64, oneshot::Sender<()>)>,
    done: mpsc::UnboundedSender<Done>,
}

impl Driver {
    /// Connects what the driver needs; the returned future runs it until the keeper stops.
    pub async fn start(
        pool: PgPool,
        nats: async_nats::Client,
        me: Uuid,
        leases: Arc<Leases>,
        local: mpsc::UnboundedReceiver<Event>,
        controls: mpsc::Receiver<Control>,
    ) -> anyhow::Result<impl std::future::Future<Output = ()>> {
        let js = jetstream::new(nats.clone());
        let stream = js.get_stream(hilo_proto::subjects::THREADS_STREAM).await?;
        let forwarded = nats.subscribe(forward_subject(me)).await?;
        let (done, finished) = mpsc::unbounded_channel();
        let driver = Self {
            pool,
            js,
            nats,
            stream,
            me,
            leases,
            chains: HashMap::new(),
            ready: VecDeque::new(),
            dirty: HashMap::new(),
            loading: false,
            scan_wanted: true,
            scanning: false,
            scan_after: None,
            marks: HashMap::new(),
            marking: false,
            mark_due: true,
            db_paused_until: None,
            retries: Vec::new(),
            in_flight: [0; lease::PARTITIONS as usize],
            queued: 0,
            releasing: Vec::new(),
            done,
        };
        Ok(driver.run(local, controls, forwarded, finished))
    }

    async fn run(
        mut self,
        mut local: mpsc::UnboundedReceiver<Event>,
        mut controls: mpsc::Receiver<Control>,
        mut forwarded: Subscriber,
        mut finished: mpsc::UnboundedReceiver<Done>,
    ) {
        let mut acks: FuturesUnordered<BoxFuture<'static, Acked>> = FuturesUnordered::new();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut ticks: u64 = 0;
        loop {
            self.publish_ready(&mut acks).await;
            self.start_work();
            tokio::select! {
                control = controls.recv() => match control {
                    Some(control) => self.control(control),
                    None => break,
                },
                Some(event) = local.recv() => {
                    self.local(event).await;
                    while let Ok(event) = local.try_recv() {
                        self.local(event).await;
                    }
                }
                Some(message) = forwarded.next() => self.forwarded(&message),
                Some(acked) = acks.next(), if !acks.is_empty() => self.acked(acked),
                Some(done) = finished.recv() => self.finished(done),
                _ = tick.tick() => {
                    ticks += 1;
                    self.tick(ticks);
                }
            }
        }
    }

    /// Publishes the head of every chain that can go.
    async fn publish_ready(&mut self, acks: &mut FuturesUnordered<BoxFuture<'static, Acked>>) {
        while let Some(thread) = self.ready.pop_front() {
            let Some(chain) = self.chains.get_mut(&thread) else {
                continue;
            };
            if !chain.can_publish() || !self.leases.owns(chain.part) {
                continue;
            }
            let Some(item) = chain.queue.front() else {
                continue;
            };
            chain.in_flight = true;
            let (part, seq, committed) = (chain.part, item.seq, item.committed);
            self.in_flight[part as usize] += 1;
            match publish(&self.js, thread, item).await {
                Ok(ack) => acks.push(Box::pin(async move {
                    (thread, part, seq, committed, ack.await)
                })),
                Err(error) => self.acked((thread, part, seq, committed, Err(error))),
            }
        }
    }

    /// Starts the reads and writes that are due, one of each kind at a time.
    fn start_work(&mut self) {
        if self
            .db_paused_until
            .is_some_and(|until| Instant::now() < until)
        {
            return;
        }
        let parts = self.leases.parts();
        if !self.loading && !self.dirty.is_empty() {
            self.loading = true;
            let batch: Vec<(Uuid, i16)> = self
                .dirty
                .keys()
                .take(LOAD_THREADS)
                .copied()
                .map(|t| (t, self.dirty[&t]))
                .collect();
            for (thread, _) in &batch {
                self.dirty.remove(thread);
            }
            let threads: Vec<Uuid> = batch.iter().map(|b| b.0).collect();
            let mut thread_parts: Vec<i16> = batch.iter().map(|b| b.1).collect();
            thread_parts.sort_unstable();
            thread_parts.dedup();
            self.spawn(async move |pool| {
                Done::Loaded(db::pending_of(&pool, &thread_parts, &threads, PAGE * 10).await)
            });
        }
        if self.scan_wanted && !self.scanning && self.queued < MAX_QUEUED && !parts.is_empty() {
            self.scanning = true;
            let after = self.scan_after;
            self.spawn(async move |pool| {
                Done::Scanned(db::pending_page(&pool, &parts, after, PAGE).await)
            });
        }
        // A hand-back waits for its partitions' marks: they go at once then.
        let marks_due =
            self.mark_due || self.marks.len() >= MARK_BATCH || !self.releasing.is_empty();
        if !self.marking && !self.marks.is_empty() && marks_due {
            self.marking = true;
            self.mark_due = false;
            let batch: Vec<(i16, Uuid, i64)> = self
                .marks
                .drain()
                .map(|(thread, (part, seq))| (part, thread, seq))
                .collect();
            self.spawn(async move |pool| {
                let result = db::published(&pool, &batch).await;
                Done::Marked(result, batch)
            });
        }
        self.answer_releases();
    }

    fn spawn<F, Fut>(&self, work: F)
    where
        F: FnOnce(PgPool) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Done> + Send,
    {
        let (pool, done) = (self.pool.clone(), self.done.clone());
        tokio::spawn(async move {
            let _ = done.send(work(pool).await);
        });
    }

    /// An event committed on this replica: to its chain here, or to the replica that holds
    /// its partition. With no holder, whoever takes the partition finds it in the outbox.
    async fn local(&mut self, event: Event) {
        if self.leases.holds(event.part) {
            let (thread, part) = (event.thread_id, event.part);
            self.offer(thread, part, event.into());
            return;
        }
        let Some(owner) = self.leases.owner(event.part).filter(|o| *o != self.me) else {
            return;
        };
        let mut headers = HeaderMap::new();
        headers.insert(THREAD, event.thread_id.to_string().as_str());
        headers.insert(SEQ, event.seq.to_string().as_str());
        headers.insert(PART, event.part.to_string().as_str());
        headers.insert(EVENT, event.id.to_string().as_str());
        let committed = event
            .committed
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        headers.insert(COMMITTED, committed.as_micros().to_string().as_str());
        if let Some(traceparent) = &event.traceparent {
            headers.insert(TRACEPARENT, traceparent.as_str());
        }
        let subject = forward_subject(owner);
        if let Err(error) = self
            .nats
            .publish_with_headers(subject, headers, event.frame)
            .await
        {
            tracing::debug!(%error, "event not handed to its relay; the outbox scan finds it");
        }
    }

    /// An event handed over by the replica that committed it.
    fn forwarded(&mut self, message: &async_nats::Message) {
        let Some(headers) = &message.headers else {
            return;
        };
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        let parsed = (|| {
            let thread: Uuid = get(THREAD)?.parse().ok()?;
            let part: i16 = get(PART)?.parse().ok()?;
            let micros: u64 = get(COMMITTED)?.parse().ok()?;
            let item = Item {
                seq: get(SEQ)?.parse().ok()?,
                id: get(EVENT)?.parse().ok()?,
                frame: message.payload.clone(),
                traceparent: get(TRACEPARENT),
                committed: SystemTime::UNIX_EPOCH + Duration::from_micros(micros),
            };
            Some((thread, part, item))
        })();
        match parsed {
            Some((thread, part, item)) if self.leases.holds(part) => self.offer(thread, part, item),
            Some(_) => {}
            None => tracing::warn!("malformed relay hand-off ignored"),
        }
    }

    /// Appends an event to its chain when it is the next one; anything else is read from the
    /// outbox, which is the truth.
    fn offer(&mut self, thread: Uuid, part: i16, item: Item) {
        let chain = self
            .chains
            .entry(thread)
            .or_insert_with(|| Chain::new(part));
        chain.touched = Instant::now();
        if !chain.known {
            self.dirty.insert(thread, part);
            return;
        }
        let tail = chain.tail();
        if item.seq <= tail {
            return;
        }
        if item.seq > tail + 1 {
            self.dirty.insert(thread, part);
            return;
        }
        chain.queue.push_back(item);
        self.queued += 1;
        if !chain.in_flight {
            self.ready.push_back(thread);
        }
    }

    /// Pending rows read from the outbox, grouped by thread (they come in key order).
    fn feed(&mut self, rows: Vec<Pending>) {
        let mut rows = rows.into_iter().peekable();
        while let Some(first) = rows.next() {
            let mut group = vec![first];
            while let Some(row) = rows.next_if(|r| r.thread_id == group[0].thread_id) {
                group.push(row);
            }
            self.feed_thread(group);
        }
    }

    fn feed_thread(&mut self, rows: Vec<Pending>) {
        let (thread, part) = (rows[0].thread_id, rows[0].part);
        if !self.leases.holds(part) {
            return;
        }
        let chain = self
            .chains
            .entry(thread)
            .or_insert_with(|| Chain::new(part));
        chain.touched = Instant::now();
        if !chain.known {
            // The outbox holds a thread's unpublished events, a contiguous run: the first of
            // them follows the last published one.
            chain.known = true;
            chain.published = rows[0].seq - 1;
            if rows[0].age > STALE_SECS {
                chain.checking = true;
                let stream = self.stream.clone();
                let done = self.done.clone();
                tokio::spawn(async move {
                    let last = last_in_stream(&stream, thread).await;
                    let _ = done.send(Done::Checked(thread, last));
                });
            }
        }
        for row in rows {
            let tail = chain.tail();
            if row.seq <= tail {
                continue;
            }
            if row.seq > tail + 1 {
                if !chain.idle() {
                    break;
                }
                // Published and marked meanwhile by the partition's previous holder.
                chain.published = row.seq - 1;
            }
            let (Some(id), Some(payload)) = (row.event_id, row.payload) else {
                // The event is gone with its thread: nothing to publish.
                if !chain.idle() {
                    break;
                }
                chain.published = row.seq;
                self.marks.insert(thread, (part, row.seq));
                continue;
            };
            let age = Duration::from_secs_f64(row.age.max(0.0));
            chain.queue.push_back(Item {
                seq: row.seq,
                id,
                frame: Bytes::from(payload),
                traceparent: row.traceparent,
                committed: SystemTime::now() - age,
            });
            self.queued += 1;
        }
        if !chain.in_flight && !chain.queue.is_empty() {
            self.ready.push_back(thread);
        }
    }

    fn acked(&mut self, (thread, part, seq, committed, result): Acked) {
        self.in_flight[part as usize] = self.in_flight[part as usize].saturating_sub(1);
        let chain = self.chains.get_mut(&thread);
        match result {
            Ok(_) => {
                metrics::counter!("relay_published_total").increment(1);
                let lag = SystemTime::now()
                    .duration_since(committed)
                    .unwrap_or_default();
                metrics::histogram!("relay_publish_lag_seconds").record(lag.as_secs_f64());
                let mark = self.marks.entry(thread).or_insert((part, seq));
                mark.1 = mark.1.max(seq);
                let Some(chain) = chain else {
                    return;
                };
                chain.in_flight = false;
                chain.attempts = 0;
                chain.touched = Instant::now();
                if chain.queue.front().is_some_and(|i| i.seq == seq) {
                    chain.queue.pop_front();
                    self.queued -= 1;
                    chain.published = seq;
                }
                if !chain.queue.is_empty() {
                    self.ready.push_back(thread);
                }
            }
            Err(error) => {
                metrics::counter!("relay_publish_errors_total").increment(1);
                let Some(chain) = chain else {
                    return;
                };
                chain.in_flight = false;
                chain.attempts += 1;
                if chain.attempts == 1 || chain.attempts.is_multiple_of(20) {
                    tracing::warn!(%error, %thread, seq, attempts = chain.attempts, "publication failed; retrying");
                }
                let backoff = Duration::from_millis(25 << chain.attempts.min(6));
                self.retries.push((Instant::now() + backoff, thread));
            }
        }
    }

    fn finished(&mut self, done: Done) {
        match done {
            Done::Loaded(rows) => {
                self.loading = false;
                match rows {
                    Ok(rows) => self.feed(rows),
                    Err(error) => self.db_failed("reading the outbox", error),
                }
            }
            Done::Scanned(rows) => {
                self.scanning = false;
                match rows {
                    Ok(rows) => {
                        let full = rows.len() as i64 == PAGE;
                        self.scan_after = rows
                            .last()
                            .filter(|_| full)
                            .map(|r| (r.part, r.thread_id, r.seq));
                        self.scan_wanted = full;
                        self.feed(rows);
                    }
                    Err(error) => self.db_failed("scanning the outbox", error),
                }
            }
            Done::Marked(result, batch) => {
                self.marking = false;
                if let Err(error) = result {
                    for (part, thread, seq) in batch {
                        let mark = self.marks.entry(thread).or_insert((part, seq));
                        mark.1 = mark.1.max(seq);
                    }
                    self.db_failed("marking events published", error);
                }
            }
            Done::Checked(thread, last) => {
                let Some(chain) = self.chains.get_mut(&thread) else {
                    return;
                };
                chain.checking = false;
                if let Some(last) = last.filter(|last| *last > chain.published) {
                    while chain.queue.front().is_some_and(|i| i.seq <= last) {
                        chain.queue.pop_front();
                        self.queued -= 1;
                    }
                    chain.published = chain.published.max(last);
                    self.marks.insert(thread, (chain.part, last));
                }
                self.ready.push_back(thread);
            }
        }
    }

    fn db_failed(&mut self, doing: &str, error: sqlx::Error) {
        tracing::warn!(%error, "relay: {doing} failed; retrying");
        self.db_paused_until = Some(Instant::now() + DB_BACKOFF);
    }

    fn control(&mut self, control: Control) {
        match control {
            Control::Acquired => {
                self.scan_after = None;
                self.scan_wanted = true;
            }
            Control::Release(parts, done) => self.releasing.push((parts, done)),
            Control::Lost(parts) => self.forget(parts),
        }
    }

    /// Answers hand-backs whose partitions have nothing in flight and no mark unwritten.
    fn answer_releases(&mut self) {
        if self.releasing.is_empty() || self.marking {
            return;
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.releasing)
            .into_iter()
            .partition(|(parts, _)| {
                lease::parts(*parts)
                    .iter()
                    .all(|p| self.in_flight[*p as usize] == 0)
                    && !self
                        .marks
                        .values()
                        .any(|(p, _)| lease::bit(*p) & parts != 0)
            });
        self.releasing = waiting;
        for (parts, answer) in done {
            self.forget(parts);
            let _ = answer.send(());
        }
    }

    /// Drops the chains of partitions no longer held.
    fn forget(&mut self, parts: u64) {
        let queued = &mut self.queued;
        self.chains.retain(|_, chain| {
            let keep = lease::bit(chain.part) & parts == 0;
            if !keep {
                *queued -= chain.queue.len();
            }
            keep
        });
        self.dirty.retain(|_, part| lease::bit(*part) & parts == 0);
    }

    /// Every 50 ms: due retries and marks. Every second: a scan, a nudge to every chain with work
    /// (publication paused while leases were uncertain resumes), and idle chains forgotten.
    /// Every 5 s: the backlog gauges.
    fn tick(&mut self, ticks: u64) {
        self.mark_due = true;
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.retries.drain(..).partition(|(at, _)| *at <= now);
        self.retries = later;
        self.ready.extend(due.into_iter().map(|(_, thread)| thread));
        if ticks.is_multiple_of(20) {
            self.scan_wanted = true;
            let marks = &self.marks;
            self.chains.retain(|thread, chain| {
                !(chain.known
                    && chain.idle()
                    && !chain.checking
                    && now.duration_since(chain.touched) > IDLE
                    && !marks.contains_key(thread))
            });
            let with_work = self
                .chains
                .iter()
                .filter(|(_, c)| c.can_publish())
                .map(|(t, _)| *t);
            self.ready.extend(with_work);
        }
        if ticks.is_multiple_of(100) {
            let parts = self.leases.parts();
            let pool = self.pool.clone();
            tokio::spawn(async move {
                if let Ok((count, age)) = db::backlog(&pool, &parts).await {
                    metrics::gauge!("relay_backlog_events").set(count as f64);
                    metrics::gauge!("relay_backlog_age_seconds").set(age);
                }
            });
        }
    }
}

/// Hand-off headers (core NATS, between relays).
const THREAD: &str = "Hilo-Thread";
const SEQ: &str = "Hilo-Seq";
const PART: &str = "Hilo-Part";
const EVENT: &str = "Hilo-Event";
const COMMITTED: &str = "Hilo-Committed-Micros";
const TRACEPARENT: &str = "Hilo-Traceparent";

/// Where a relay receives events committed by other replicas.
fn forward_subject(replica: Uuid) -> String {
    format!("hilo.relay.{replica}")
}
