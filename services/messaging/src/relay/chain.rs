//! A thread's chain of events waiting for publication, and the two JetStream calls a chain
//! makes: publish its head, and ask what the stream already has (after a replica died between
//! publishing and marking).

use std::{
    collections::VecDeque,
    time::{Instant, SystemTime},
};

use async_nats::{
    HeaderMap,
    jetstream::{self, context::PublishError},
};
use bytes::Bytes;
use tracing::Instrument as _;
use uuid::Uuid;

use super::Event;

/// One pending event in memory.
pub(super) struct Item {
    pub(super) seq: i64,
    pub(super) id: Uuid,
    pub(super) frame: Bytes,
    pub(super) traceparent: Option<String>,
    pub(super) committed: SystemTime,
}

impl From<Event> for Item {
    fn from(e: Event) -> Self {
        Self {
            seq: e.seq,
            id: e.id,
            frame: e.frame,
            traceparent: e.traceparent,
            committed: e.committed,
        }
    }
}

/// A thread's publication state.
pub(super) struct Chain {
    pub(super) part: i16,
    /// Whether `published` is known (read from the outbox): until then nothing is sent.
    pub(super) known: bool,
    /// The highest seq known to be in JetStream.
    pub(super) published: i64,
    /// The events after `published`, contiguous; the head is in flight when `in_flight`.
    pub(super) queue: VecDeque<Item>,
    pub(super) in_flight: bool,
    /// Waiting for the stream's answer about already published events.
    pub(super) checking: bool,
    /// Consecutive failed publications of the head.
    pub(super) attempts: u32,
    pub(super) touched: Instant,
}

impl Chain {
    pub(super) fn new(part: i16) -> Self {
        Self {
            part,
            known: false,
            published: 0,
            queue: VecDeque::new(),
            in_flight: false,
            checking: false,
            attempts: 0,
            touched: Instant::now(),
        }
    }

    /// The highest seq this chain has (published or queued).
    pub(super) fn tail(&self) -> i64 {
        self.published + self.queue.len() as i64
    }

    pub(super) fn idle(&self) -> bool {
        !self.in_flight && self.queue.is_empty()
    }

    pub(super) fn can_publish(&self) -> bool {
        self.known && !self.checking && !self.in_flight && !self.queue.is_empty()
    }
}

/// Sends one event to JetStream under a producer span in the trace of the request that wrote
/// it; JetStream de-duplicates by the event id.
pub(super) async fn publish(
    js: &jetstream::Context,
    thread: Uuid,
    item: &Item,
) -> Result<jetstream::context::PublishAckFuture, PublishError> {
    let subject = hilo_proto::subjects::thread(&thread.to_string());
    let span = tracing::info_span!(
        "publish",
        %subject,
        seq = item.seq,
        otel.kind = "producer",
        trace_id = tracing::field::Empty,
    );
    if let Some(traceparent) = &item.traceparent {
        hilo_kit::telemetry::continue_from(&span, traceparent);
    }
    span.record(
        "trace_id",
        tracing::field::display(hilo_kit::telemetry::trace_id(&span)),
    );
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", item.id.to_string().as_str());
    span.in_scope(|| hilo_kit::telemetry::inject_nats(&mut headers));
    js.publish_with_headers(subject, headers, item.frame.clone())
        .instrument(span)
        .await
}

/// The seq of the last event of `thread` in the stream, if it can be told.
pub(super) async fn last_in_stream(
    stream: &jetstream::stream::Stream,
    thread: Uuid,
) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Head {
        seq: i64,
    }
    let subject = hilo_proto::subjects::thread(&thread.to_string());
    let message = stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .ok()?;
    serde_json::from_slice::<Head>(&message.payload)
        .ok()
        .map(|h| h.seq)
}
