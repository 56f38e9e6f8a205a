//! SQL of the messaging schema, one plain function per statement, each taking an executor
//! (the relay's in [`relay`]).

pub mod relay;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, types::Json};
use uuid::Uuid;

use crate::attachments::Attachment;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ThreadRow {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub created_by: String,
    pub is_archived: bool,
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const THREAD_COLUMNS: &str =
    "id, channel_id, name, description, created_by, is_archived, last_seq, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub thread_id: Uuid,
    pub sender_id: String,
    pub content: String,
    pub attachments: Json<Vec<Attachment>>,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub request_hash: Option<String>,
}

const MESSAGE_COLUMNS: &str =
    "id, thread_id, sender_id, content, attachments, seq, created_at, edited_at, request_hash";

pub async fn insert_thread(
    db: impl PgExecutor<'_>,
    channel_id: Uuid,
    name: &str,
    description: Option<&str>,
    created_by: &str,
) -> sqlx::Result<ThreadRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO threads (id, channel_id, name, description, created_by) VALUES ($1, $2, $3, $4, $5) \
         RETURNING {THREAD_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(channel_id)
    .bind(name)
    .bind(description)
    .bind(created_by)
    .fetch_one(db)
    .await
}

pub async fn get_thread(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<ThreadRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {THREAD_COLUMNS} FROM threads WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Threads of a channel: all, newest first; or active ones, most recently active first.
pub async fn list_threads(
    pool: &PgPool,
    channel_id: Uuid,
    active_only: bool,
) -> sqlx::Result<Vec<ThreadRow>> {
    let query = if active_only {
        "WHERE channel_id = $1 AND NOT is_archived ORDER BY updated_at DESC, id DESC"
    } else {
        "WHERE channel_id = $1 ORDER BY created_at DESC, id DESC"
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {THREAD_COLUMNS} FROM threads {query}"
    )))
    .bind(channel_id)
    .fetch_all(pool)
    .await
}

/// Takes the thread's next seq (locking the thread row until the transaction ends, which
/// orders concurrent changes of one thread) and, for new messages, bumps `updated_at`.
pub async fn next_seq(db: impl PgExecutor<'_>, thread_id: Uuid, touch: bool) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "UPDATE threads SET last_seq = last_seq + 1, updated_at = CASE WHEN $2 THEN now() ELSE updated_at END \
         WHERE id = $1 RETURNING last_seq",
    )
    .bind(thread_id)
    .bind(touch)
    .fetch_one(db)
    .await
}

/// The fields a thread update may change; `Some(None)` clears the description.
#[derive(Default)]
pub struct ThreadPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_archived: Option<bool>,
}

pub async fn update_thread(
    db: impl PgExecutor<'_>,
    id: Uuid,
    patch: &ThreadPatch,
) -> sqlx::Result<ThreadRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE threads SET name = COALESCE($2, name), \
           description = CASE WHEN $3 THEN $4 ELSE description END, \
           is_archived = COALESCE($5, is_archived), updated_at = now() \
         WHERE id = $1 RETURNING {THREAD_COLUMNS}"
    )))
    .bind(id)
    .bind(&patch.name)
    .bind(patch.description.is_some())
    .bind(patch.description.clone().flatten())
    .bind(patch.is_archived)
    .fetch_one(db)
    .await
}

/// Deletes a thread and its messages, and its events (published or not) but the last
/// (THREAD_DELETED, which must still be published and replayed).
pub async fn delete_thread(
    db: &mut sqlx::PgConnection,
    id: Uuid,
    keep_seq: i64,
) -> sqlx::Result<()> {
    for table in ["thread_events", "thread_outbox"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE thread_id = $1 AND seq <> $2"
        )))
        .bind(id)
        .bind(keep_seq)
        .execute(&mut *db)
        .await?;
    }
    sqlx::query("DELETE FROM threads WHERE id = $1")
        .bind(id)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Deletes every thread of a channel with its messages and events, published or not; returns
/// how many threads.
pub async fn delete_channel_threads(
    db: &mut sqlx::PgConnection,
    channel_id: Uuid,
) -> sqlx::Result<u64> {
    for table in ["thread_events", "thread_outbox"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE thread_id IN (SELECT id FROM threads WHERE channel_id = $1)"
        )))
        .bind(channel_id)
        .execute(&mut *db)
        .await?;
    }
    let done = sqlx::query("DELETE FROM threads WHERE channel_id = $1")
        .bind(channel_id)
        .execute(&mut *db)
        .await?;
    Ok(done.rows_affected())
}

/// One post of a batch (see [`post_messages`]): the message and its NEW_MESSAGE frame, whose
/// `"seq":-1` placeholders are replaced by the seq it gets.
pub struct BatchPost<'a> {
    pub thread_id: Uuid,
    pub id: Uuid,
    pub sender_id: &'a str,
    pub content: &'a str,
    pub attachments: &'a [Attachment],
    pub created_at: DateTime<Utc>,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
    pub event_id: Uuid,
    pub frame: &'a str,
    pub traceparent: Option<&'a str>,
}

/// The placeholder of a batch post's seq in its frame (twice: the frame's and the message's).
pub const SEQ_PLACEHOLDER: &str = "\"seq\":-1";

/// A stored post of a batch: its index in the batch, its seq, its thread's relay partition.
#[derive(Debug, sqlx::FromRow)]
pub struct Stored {
    pub n: i64,
    pub seq: i64,
    pub part: i16,
}

/// Stores posts (of any threads) in one statement: each thread's next seqs in the posts'
/// order, the messages, their events and their outbox rows. Thread rows are locked in id
/// order, so concurrent batches cannot deadlock each other. Posts of an archived or missing
/// thread are not stored (and not returned). A reused idempotency key fails the whole
/// statement, and nothing is stored.
pub async fn post_messages(
    db: impl PgExecutor<'_>,
    posts: &[BatchPost<'_>],
) -> sqlx::Result<Vec<Stored>> {
    let threads: Vec<Uuid> = posts.iter().map(|p| p.thread_id).collect();
    let ids: Vec<Uuid> = posts.iter().map(|p| p.id).collect();
    let senders: Vec<&str> = posts.iter().map(|p| p.sender_id).collect();
    let contents: Vec<&str> = posts.iter().map(|p| p.content).collect();
    let attachments: Vec<String> = posts
        .iter()
        .map(|p| serde_json::to_string(p.attachments).unwrap_or_else(|_| "[]".to_owned()))
        .collect();
    let created: Vec<DateTime<Utc>> = posts.iter().map(|p| p.created_at).collect();
    let keys: Vec<Option<&str>> = posts.iter().map(|p| p.idempotency_key).collect();
    let hashes: Vec<Option<&str>> = posts.iter().map(|p| p.request_hash).collect();
    let event_ids: Vec<Uuid> = posts.iter().map(|p| p.event_id).collect();
    let frames: Vec<&str> = posts.iter().map(|p| p.frame).collect();
    let traces: Vec<Option<&str>> = posts.iter().map(|p| p.traceparent).collect();
    sqlx::query_as(
        "WITH input AS ( \
           SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
             $6::timestamptz[], $7::text[], $8::text[], $9::uuid[], $10::text[], $11::text[]) \
             WITH ORDINALITY AS u(thread_id, id, sender_id, content, attachments, created_at, \
               idempotency_key, request_hash, event_id, frame, traceparent, n)), \
         counts AS (SELECT thread_id, count(*) AS c FROM input GROUP BY thread_id), \
         locked AS MATERIALIZED ( \
           SELECT t.id FROM threads t WHERE t.id IN (SELECT thread_id FROM counts) \
             AND NOT t.is_archived ORDER BY t.id FOR UPDATE), \
         bumped AS ( \
           UPDATE threads t SET last_seq = t.last_seq + c.c, updated_at = now() \
           FROM counts c WHERE t.id = c.thread_id AND t.id IN (SELECT id FROM locked) \
           RETURNING t.id, t.last_seq - c.c AS base), \
         p AS ( \
           SELECT i.*, b.base + row_number() OVER (PARTITION BY i.thread_id ORDER BY i.n) AS seq \
           FROM input i JOIN bumped b ON b.id = i.thread_id), \
         m AS ( \
           INSERT INTO messages (id, thread_id, sender_id, content, attachments, seq, \
             created_at, idempotency_key, request_hash) \
           SELECT id, thread_id, sender_id, content, attachments::jsonb, seq, created_at, \
             idempotency_key, request_hash FROM p), \
         e AS ( \
           INSERT INTO thread_events (id, thread_id, seq, type, payload, traceparent, message_id) \
           SELECT event_id, thread_id, seq, 'NEW_MESSAGE', \
             convert_to(replace(frame, '\"seq\":-1', '\"seq\":' || seq), 'UTF8'), traceparent, id \
           FROM p), \
         o AS ( \
           INSERT INTO thread_outbox (thread_id, seq) SELECT thread_id, seq FROM p \
           RETURNING thread_id, seq, part) \
         SELECT p.n - 1 AS n, p.seq, o.part FROM p JOIN o USING (thread_id, seq) ORDER BY p.n",
    )
    .bind(threads)
    .bind(ids)
    .bind(senders)
    .bind(contents)
    .bind(attachments)
    .bind(created)
    .bind(keys)
    .bind(hashes)
    .bind(event_ids)
    .bind(frames)
    .bind(traces)
    .fetch_all(db)
    .await
}

/// The message a sender already made with this idempotency key, if any.
pub async fn find_by_key(
    db: impl PgExecutor<'_>,
    sender_id: &str,
    key: &str,
) -> sqlx::Result<Option<MessageRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender_id = $1 AND idempotency_key = $2"
    )))
    .bind(sender_id)
    .bind(key)
    .fetch_optional(db)
    .await
}

pub async fn get_message(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<MessageRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// One page of a thread's history, oldest first: before/after a seq, or the original's
/// offset from the newest message.
pub async fn list_messages(
    pool: &PgPool,
    thread_id: Uuid,
    limit: i64,
    offset: i64,
    before_seq: Option<i64>,
    after_seq: Option<i64>,
) -> sqlx::Result<Vec<MessageRow>> {
    let page = match after_seq {
        Some(_) => "AND seq > $4 ORDER BY seq ASC LIMIT $2",
        None => "AND seq < $3 ORDER BY seq DESC LIMIT $2 OFFSET $5",
    };
    let mut rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = $1 {page}"
    )))
    .bind(thread_id)
    .bind(limit)
    .bind(before_seq.unwrap_or(i64::MAX))
    .bind(after_seq.unwrap_or(0))
    .bind(if before_seq.is_some() { 0 } else { offset })
    .fetch_all(pool)
    .await?;
    if after_seq.is_none() {
        rows.reverse();
    }
    Ok(rows)
}

pub async fn edit_message(
    db: impl PgExecutor<'_>,
    id: Uuid,
    content: &str,
) -> sqlx::Result<MessageRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET content = $2, edited_at = now() WHERE id = $1 RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(id)
    .bind(content)
    .fetch_one(db)
    .await
}

pub async fn delete_message(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM messages WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Stores an event with its frame and queues it in the relay's outbox; returns the thread's
/// relay partition (which replica publishes it).
pub async fn insert_event(db: impl PgExecutor<'_>, event: &NewEvent<'_>) -> sqlx::Result<i16> {
    sqlx::query_scalar(
        "WITH event AS (INSERT INTO thread_events \
             (id, thread_id, seq, type, payload, traceparent, message_id) \
           VALUES ($1, $2, $3, $4, $5, $6, $7)) \
         INSERT INTO thread_outbox (thread_id, seq) VALUES ($2, $3) RETURNING part",
    )
    .bind(event.id)
    .bind(event.thread_id)
    .bind(event.seq)
    .bind(event.kind)
    .bind(event.frame)
    .bind(event.traceparent)
    .bind(event.message_id)
    .fetch_one(db)
    .await
}

/// A thread event to store: its frame, and the message it is about, if any.
pub struct NewEvent<'a> {
    pub id: Uuid,
    pub thread_id: Uuid,
    pub seq: i64,
    pub kind: &'a str,
    pub frame: &'a [u8],
    pub traceparent: Option<&'a str>,
    pub message_id: Option<Uuid>,
}

/// Empties the stored events of a message before `before_seq` (its content and attachments;
/// they say `"redacted": true`), so replay never hands out text a later edit replaced or a
/// deletion removed. Their seqs stay: the log has no gaps.
pub async fn redact_message_events(
    db: impl PgExecutor<'_>,
    message_id: Uuid,
    before_seq: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE thread_events SET payload = convert_to(jsonb_set(jsonb_set(jsonb_set( \
           convert_from(payload, 'UTF8')::jsonb, '{payload,content}', '\"\"'), \
           '{payload,attachments}', '[]'), '{payload,redacted}', 'true')::text, 'UTF8') \
         WHERE message_id = $1 AND seq < $2",
    )
    .bind(message_id)
    .bind(before_seq)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct EventRow {
    pub seq: i64,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub payload: Vec<u8>,
}

/// A thread's events after `after_seq`, in order.
pub async fn list_events(
    pool: &PgPool,
    thread_id: Uuid,
    after_seq: i64,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as("SELECT seq, type, payload FROM thread_events WHERE thread_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
        .bind(thread_id)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// The oldest seq still stored for a thread (0 when none).
pub async fn first_seq(pool: &PgPool, thread_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(min(seq), 0) FROM thread_events WHERE thread_id = $1")
        .bind(thread_id)
        .fetch_one(pool)
        .await
}
