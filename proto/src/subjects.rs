//! NATS subjects and JetStream names: part of the contract between publishers and consumers.
//!
//! Cross-service events go to the durable stream [`EVENTS_STREAM`] on subjects under
//! `chat.events.>`; their payload is a JSON object with `type`, `id` (the event id, also the
//! JetStream de-duplication id) and the event's fields in camelCase.

/// The JetStream stream holding every `chat.events.>` event.
pub const EVENTS_STREAM: &str = "CHAT_EVENTS";
/// Wildcard of every cross-service event.
pub const EVENTS_ALL: &str = "chat.events.>";
/// A channel was deleted: `{ type, id, channelId }`.
pub const CHANNEL_DELETED: &str = "chat.events.channel.deleted";
/// A member left or was removed: `{ type, id, channelId, userId }`.
pub const MEMBER_REMOVED: &str = "chat.events.member.removed";
/// A member's role changed: `{ type, id, channelId, userId, role }`.
pub const MEMBER_ROLE_CHANGED: &str = "chat.events.member.role_changed";

/// A session ended (sign-out or revocation): `{ type, id, sessionId, userId }`.
pub const SESSION_REVOKED: &str = "chat.events.session.revoked";
/// A user changed how they are shown (name, image, profile): `{ type, id, userId }`.
pub const USER_UPDATED: &str = "chat.events.user.updated";
/// A user deleted their account (their sessions are gone with it): `{ type, id, userId }`.
pub const USER_DELETED: &str = "chat.events.user.deleted";

/// Prefix of per-thread subjects; a thread's events go to `chat.thread.<threadId>`.
pub const THREAD_PREFIX: &str = "chat.thread.";

/// The subject of a thread's events (the exact client frames, JSON).
pub fn thread(thread_id: &str) -> String {
    format!("{THREAD_PREFIX}{thread_id}")
}

/// The JetStream stream that keeps thread events published while a consumer was away.
pub const THREADS_STREAM: &str = "CHAT_THREADS";
/// Wildcard of every thread subject.
pub const THREADS_ALL: &str = "chat.thread.>";
