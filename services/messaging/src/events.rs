//! The per-thread event log: every change is stored with the thread's next seq and its client
//! frame, in the caller's transaction, and queued in the relay's outbox; after commit the
//! caller hands the returned [`relay::Event`] to the relay, which publishes the frame on
//! `chat.thread.<id>`.

use hilo_proto::frames::Frame;
use serde::Serialize;
use uuid::Uuid;

use crate::{db, error::Result, relay};

/// The client frame `{type, threadId, seq, payload}`, serialized once.
pub fn frame<T: Serialize>(thread_id: Uuid, seq: i64, kind: &str, payload: T) -> Result<String> {
    let frame = Frame {
        kind: kind.to_owned(),
        thread_id: thread_id.to_string(),
        seq,
        payload,
    };
    Ok(serde_json::to_string(&frame).map_err(anyhow::Error::from)?)
}

/// Serializes the frame once and stores it as event `seq` (of `message`, when about one: a
/// later edit or deletion empties it, see [`db::redact_message_events`]).
pub async fn store<T: Serialize>(
    tx: &mut sqlx::PgConnection,
    thread_id: Uuid,
    seq: i64,
    kind: &str,
    payload: T,
    message: Option<Uuid>,
) -> Result<relay::Event> {
    let bytes = frame(thread_id, seq, kind, payload)?.into_bytes();
    let traceparent = hilo_kit::telemetry::traceparent();
    let id = Uuid::now_v7();
    let event = db::NewEvent {
        id,
        thread_id,
        seq,
        kind,
        frame: &bytes,
        traceparent: traceparent.as_deref(),
        message_id: message,
    };
    let part = db::insert_event(&mut *tx, &event).await?;
    Ok(relay::Event {
        id,
        thread_id,
        seq,
        part,
        frame: bytes.into(),
        traceparent,
        committed: std::time::SystemTime::now(),
    })
}

/// Stores an event that carries no message content: takes the next seq itself.
pub async fn record<T: Serialize>(
    tx: &mut sqlx::PgConnection,
    thread_id: Uuid,
    kind: &str,
    payload: T,
) -> Result<relay::Event> {
    let seq = db::next_seq(&mut *tx, thread_id, false).await?;
    store(tx, thread_id, seq, kind, payload, None).await
}
