//! The JSON that clients receive for threads and messages, over REST and in real-time frames.
//! Messaging serializes a frame once and publishes the bytes; realtime forwards them as they
//! are; the gateway answers REST calls with the same shapes, so the two can never drift.
//! `proto/frames/thread-events.schema.json` documents these frames for client authors.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::{Timestamp, messaging::v1 as pb};

/// ISO-8601 UTC with milliseconds (`2026-02-20T10:00:00.000Z`), the API's one time format.
pub fn iso(t: Option<Timestamp>) -> String {
    let t = t.unwrap_or_default();
    DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The kinds of stored thread events, as clients see them in `type`.
pub mod kind {
    pub const NEW_MESSAGE: &str = "NEW_MESSAGE";
    pub const MESSAGE_UPDATED: &str = "MESSAGE_UPDATED";
    pub const DELETE_MESSAGE: &str = "DELETE_MESSAGE";
    pub const THREAD_UPDATED: &str = "THREAD_UPDATED";
    pub const THREAD_DELETED: &str = "THREAD_DELETED";
}

/// A pushed thread event: `{ type, threadId, seq, payload }`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Frame<T> {
    #[serde(rename = "type")]
    pub kind: String,
    pub thread_id: String,
    pub seq: i64,
    pub payload: T,
}

/// A message with its sender (docs/api.md §1.2: the union of the original's two shapes).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessageJson {
    pub id: String,
    pub content: String,
    pub attachments: Vec<AttachmentJson>,
    pub created_at: String,
    pub sender_id: String,
    pub thread_id: String,
    /// Seq of the message's NEW_MESSAGE event in its thread.
    pub seq: i64,
    /// When the content was last edited; null if never.
    pub edited_at: Option<String>,
    pub sender: SenderJson,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SenderJson {
    pub id: String,
    pub name: String,
    pub image: Option<String>,
    pub profile: SenderProfileJson,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SenderProfileJson {
    pub display_name: String,
    pub avatar_url: Option<String>,
}

/// A file attached to a message.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttachmentJson {
    pub id: String,
    pub url: String,
    pub filename: String,
    pub mime_type: String,
    pub size: f64,
    /// `image`, `document`, `video` or `audio`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A thread (docs/api.md §1.2: the original's fields plus `lastSeq`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ThreadJson {
    pub id: String,
    pub channel_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_by: String,
    pub is_archived: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Seq of the thread's latest event: where a client resumes from.
    pub last_seq: i64,
}

/// Payload of DELETE_MESSAGE (`messageId` as the README, `id` as the original code).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedMessageJson {
    pub message_id: String,
    pub id: String,
    pub thread_id: String,
}

/// Payload of THREAD_DELETED.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedThreadJson {
    pub thread_id: String,
    pub id: String,
}

impl From<pb::Message> for MessageJson {
    fn from(m: pb::Message) -> Self {
        let sender = m.sender.unwrap_or_default();
        Self {
            id: m.id,
            content: m.content,
            attachments: m.attachments.into_iter().map(Into::into).collect(),
            created_at: iso(m.create_time),
            sender_id: m.sender_id,
            thread_id: m.thread_id,
            seq: m.seq,
            edited_at: m.edit_time.map(|t| iso(Some(t))),
            sender: SenderJson {
                id: sender.id,
                name: sender.name,
                image: sender.image,
                profile: SenderProfileJson {
                    display_name: sender.display_name,
                    avatar_url: sender.avatar_url,
                },
            },
        }
    }
}

impl From<pb::Attachment> for AttachmentJson {
    fn from(a: pb::Attachment) -> Self {
        Self {
            id: a.id,
            url: a.url,
            filename: a.filename,
            mime_type: a.mime_type,
            size: a.size,
            kind: a.r#type,
        }
    }
}

impl From<pb::Thread> for ThreadJson {
    fn from(t: pb::Thread) -> Self {
        Self {
            id: t.id,
            channel_id: t.channel_id,
            name: t.name,
            description: t.description,
            created_by: t.created_by,
            is_archived: t.is_archived,
            created_at: iso(t.create_time),
            updated_at: iso(t.update_time),
            last_seq: t.last_seq,
        }
    }
}
