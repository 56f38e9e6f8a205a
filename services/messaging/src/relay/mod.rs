//! The relay publishes each committed thread event on `chat.thread.<id>` (JetStream stream
//! `CHAT_THREADS`) in seq order per thread, whatever the number of messaging replicas, and
//! as soon as it is committed (docs/event-pipeline.md):
//!
//! - every event is also queued in `thread_outbox` in its transaction, and leaves it once
//!   JetStream acknowledged it, so nothing committed is ever lost;
//! - threads are spread over partitions leased to one replica at a time ([`lease`]), so a
//!   thread has one publisher;
//! - a thread's events are published one at a time (the next after the previous one's ack),
//!   many threads at once ([`driver`]); published marks are written in batches;
//! - the replica that committed an event hands it to the driver at once, or, when another
//!   replica holds the partition, to that replica over core NATS; a scan of the outbox every
//!   second is the safety net for hand-offs lost on the way.

mod chain;
mod driver;
mod lease;

use std::{sync::Arc, time::SystemTime};

use bytes::Bytes;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A committed thread event, as the relay publishes it.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event id: JetStream's de-duplication id (`Nats-Msg-Id`).
    pub id: Uuid,
    pub thread_id: Uuid,
    pub seq: i64,
    /// The thread's partition (from the outbox row).
    pub part: i16,
    /// The client frame, published as is.
    pub frame: Bytes,
    /// The trace of the request that wrote it.
    pub traceparent: Option<String>,
    /// When it was committed (publish lag is measured from here).
    pub committed: SystemTime,
}

/// The handle services use after a commit; cheap to clone.
#[derive(Clone)]
pub struct Relay {
    committed: mpsc::UnboundedSender<Event>,
}

/// The relay's background half, started by [`Runner::spawn`].
pub struct Runner {
    events: mpsc::UnboundedReceiver<Event>,
}

/// A relay handle and the runner that publishes what it is handed.
pub fn channel() -> (Relay, Runner) {
    let (committed, events) = mpsc::unbounded_channel();
    (Relay { committed }, Runner { events })
}

impl Relay {
    /// Hands over events just committed, for publication now (the outbox keeps them anyway).
    pub fn committed(&self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            let _ = self.committed.send(event);
        }
    }
}

impl Runner {
    /// Starts the lease keeper and the driver; they hand back their partitions and stop on
    /// `shutdown`.
    pub async fn spawn(
        self,
        pool: PgPool,
        nats: async_nats::Client,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let me = Uuid::now_v7();
        let leases = Arc::new(lease::Leases::default());
        let (control, controls) = mpsc::channel(16);
        let driver = driver::Driver::start(
            pool.clone(),
            nats,
            me,
            leases.clone(),
            self.events,
            controls,
        )
        .await?;
        tokio::spawn(driver);
        tokio::spawn(lease::keep(pool, me, leases, control, shutdown));
        Ok(())
    }
}
