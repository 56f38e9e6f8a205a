//! Group commit per thread. Posts to a thread are queued; one task per busy thread stores the
//! whole queue in one statement ([`db::post_messages`]: seqs, messages, events and outbox
//! rows together, one round trip), while the posts that arrive meanwhile wait for the next
//! one. The first post of a quiet thread goes at once; under load, batches grow by
//! themselves, so a hot thread is not limited to one commit per post. Each post still gets
//! its own answer: a reused idempotency key fails only its own post (the batch is retried
//! post by post), and seqs keep the arrival order with no gap.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    attachments::Attachment,
    db::{self, BatchPost, SEQ_PLACEHOLDER},
    relay::{self, Relay},
};

/// Posts stored by one statement at most.
const MAX_BATCH: usize = 128;

/// A validated post, with its frame (seq placeholders still in).
pub struct Post {
    pub id: Uuid,
    pub sender_id: String,
    pub content: String,
    pub attachments: Vec<Attachment>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub frame: String,
    pub traceparent: Option<String>,
}

/// Why a post was not stored.
#[derive(Clone, Debug)]
pub enum Refused {
    Archived,
    NoThread,
    /// The sender already used this idempotency key.
    KeyTaken,
    /// The database could not be reached or was too busy (503).
    Unavailable,
    Failed(String),
}

struct Queued {
    post: Post,
    done: oneshot::Sender<Result<i64, Refused>>,
}

/// The per-thread queues; built once.
pub struct Posts {
    pool: PgPool,
    relay: Relay,
    /// A thread is present while its task runs (with what waits for the next batch).
    queues: Mutex<HashMap<Uuid, VecDeque<Queued>>>,
}

impl Posts {
    pub fn new(pool: PgPool, relay: Relay) -> Arc<Self> {
        Arc::new(Self {
            pool,
            relay,
            queues: Mutex::default(),
        })
    }

    /// Stores a post in its thread; its seq.
    pub async fn submit(self: &Arc<Self>, thread: Uuid, post: Post) -> Result<i64, Refused> {
        let (done, answer) = oneshot::channel();
        let start = {
            let mut queues = lock(&self.queues);
            let idle = !queues.contains_key(&thread);
            queues
                .entry(thread)
                .or_default()
                .push_back(Queued { post, done });
            idle
        };
        if start {
            // A task of its own: a client that goes away must not strand the queue.
            tokio::spawn(self.clone().drain(thread));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Refused::Failed("post dropped".to_owned())))
    }

    /// Stores the thread's queue batch by batch until it is empty.
    async fn drain(self: Arc<Self>, thread: Uuid) {
        loop {
            let batch = {
                let mut queues = lock(&self.queues);
                let Some(queue) = queues.get_mut(&thread) else {
                    return;
                };
                if queue.is_empty() {
                    queues.remove(&thread);
                    return;
                }
                take_batch(queue)
            };
            self.store(thread, batch).await;
        }
    }

    async fn store(&self, thread: Uuid, batch: Vec<Queued>) {
        match self.execute(thread, &batch).await {
            Ok(events) => {
                self.relay.committed(events.iter().cloned());
                for (queued, event) in batch.into_iter().zip(&events) {
                    let _ = queued.done.send(Ok(event.seq));
                }
            }
            Err(Refused::KeyTaken) if batch.len() > 1 => {
                // One of them reused a key: each on its own, so only that one is refused.
                for queued in batch {
                    Box::pin(self.store(thread, vec![queued])).await;
                }
            }
            Err(refused) => {
                for queued in batch {
                    let _ = queued.done.send(Err(refused.clone()));
                }
            }
        }
    }

    /// One statement for the batch; the events it stored, in seq order.
    async fn execute(&self, thread: Uuid, batch: &[Queued]) -> Result<Vec<relay::Event>, Refused> {
        let event_ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
        let posts: Vec<BatchPost<'_>> = batch
            .iter()
            .zip(&event_ids)
            .map(|(q, event_id)| BatchPost {
                id: q.post.id,
                sender_id: &q.post.sender_id,
                content: &q.post.content,
                attachments: &q.post.attachments,
                created_at: q.post.created_at,
                idempotency_key: q.post.idempotency_key.as_deref(),
                request_hash: q.post.request_hash.as_deref(),
                event_id: *event_id,
                frame: &q.post.frame,
                traceparent: q.post.traceparent.as_deref(),
            })
            .collect();
        let mut stored = match db::post_messages(&self.pool, thread, &posts).await {
            Ok(stored) => stored,
            Err(e) if hilo_kit::db::is_unique_violation(&e, "messages_idempotency_idx") => {
                return Err(Refused::KeyTaken);
            }
            Err(e) => return Err(refused(e)),
        };
        if stored.is_empty() {
            return match db::get_thread(&self.pool, thread).await {
                Ok(Some(_)) => Err(Refused::Archived),
                Ok(None) => Err(Refused::NoThread),
                Err(e) => Err(refused(e)),
            };
        }
        stored.sort_unstable();
        let committed = SystemTime::now();
        Ok(batch
            .iter()
            .zip(event_ids)
            .zip(stored)
            .map(|((q, id), (seq, part))| relay::Event {
                id,
                thread_id: thread,
                seq,
                part,
                frame: q
                    .post
                    .frame
                    .replace(SEQ_PLACEHOLDER, &format!("\"seq\":{seq}"))
                    .into(),
                traceparent: q.post.traceparent.clone(),
                committed,
            })
            .collect())
    }
}

/// Takes the next batch: up to [`MAX_BATCH`] posts, leaving for the next one any post whose
/// sender and idempotency key already appear in it (a retry racing its first attempt).
fn take_batch(queue: &mut VecDeque<Queued>) -> Vec<Queued> {
    let mut batch: Vec<Queued> = Vec::new();
    let mut later = VecDeque::new();
    while let Some(queued) = queue.pop_front() {
        if batch.len() == MAX_BATCH {
            queue.push_front(queued);
            break;
        }
        let repeats = queued.post.idempotency_key.is_some()
            && batch.iter().any(|b| {
                b.post.sender_id == queued.post.sender_id
                    && b.post.idempotency_key == queued.post.idempotency_key
            });
        if repeats {
            later.push_back(queued);
        } else {
            batch.push(queued);
        }
    }
    while let Some(queued) = later.pop_back() {
        queue.push_front(queued);
    }
    batch
}

fn refused(error: sqlx::Error) -> Refused {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::warn!(%error, "database unavailable for posts");
            Refused::Unavailable
        }
        other => {
            tracing::error!(error = %other, "posts not stored");
            Refused::Failed(other.to_string())
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
