//! Group commit. Posts are queued; a few tasks ([`FLUSHERS`]) each store what is queued, of
//! any threads, in one statement ([`db::post_messages`]: seqs, messages, events and outbox rows
//! together, one round trip and one commit), while the posts that arrive meanwhile wait for
//! the next one. A post to a quiet replica goes at once; under load, batches grow by
//! themselves, so neither the database's per-statement cost nor a hot thread's commit time
//! bounds the rate. Each post still gets its own answer: a reused idempotency key fails only
//! its own post (the batch is retried post by post), and a thread's seqs follow the order its
//! posts were queued in, with no gap.

use std::{
    collections::VecDeque,
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
const MAX_BATCH: usize = 256;
/// Statements in flight at once (each holds a database connection while it runs).
const FLUSHERS: usize = 4;
/// Attempts at a batch that lost a deadlock (with a channel deletion, say).
const ATTEMPTS: usize = 3;

/// A validated post, with its frame (seq placeholders still in).
pub struct Post {
    pub thread_id: Uuid,
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

#[derive(Default)]
struct Queue {
    posts: VecDeque<Queued>,
    flushers: usize,
}

/// The queue of posts; built once.
pub struct Posts {
    pool: PgPool,
    relay: Relay,
    queue: Mutex<Queue>,
}

impl Posts {
    pub fn new(pool: PgPool, relay: Relay) -> Arc<Self> {
        Arc::new(Self {
            pool,
            relay,
            queue: Mutex::default(),
        })
    }

    /// Stores a post; its seq.
    pub async fn submit(self: &Arc<Self>, post: Post) -> Result<i64, Refused> {
        let (done, answer) = oneshot::channel();
        let start = {
            let mut queue = lock(&self.queue);
            queue.posts.push_back(Queued { post, done });
            let start = queue.flushers < FLUSHERS;
            queue.flushers += usize::from(start);
            start
        };
        if start {
            // A task of its own: a client that goes away must not strand the queue.
            tokio::spawn(self.clone().flush());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Refused::Failed("post dropped".to_owned())))
    }

    /// Stores batches until the queue is empty.
    async fn flush(self: Arc<Self>) {
        loop {
            let batch = {
                let mut queue = lock(&self.queue);
                if queue.posts.is_empty() {
                    queue.flushers -= 1;
                    return;
                }
                take_batch(&mut queue.posts)
            };
            self.store(batch).await;
        }
    }

    async fn store(&self, batch: Vec<Queued>) {
        let outcome = self.execute(&batch).await;
        match outcome {
            Ok(outcomes) => {
                let events = outcomes.iter().filter_map(|o| o.as_ref().ok()).cloned();
                self.relay.committed(events);
                for (queued, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = queued.done.send(outcome.map(|event| event.seq));
                }
            }
            Err(Refused::KeyTaken) if batch.len() > 1 => {
                // One of them reused a key: each on its own, so only that one is refused.
                for queued in batch {
                    Box::pin(self.store(vec![queued])).await;
                }
            }
            Err(refused) => {
                for queued in batch {
                    let _ = queued.done.send(Err(refused.clone()));
                }
            }
        }
    }

    /// One statement for the batch; per post, the event it stored or why it was not stored.
    async fn execute(
        &self,
        batch: &[Queued],
    ) -> Result<Vec<Result<relay::Event, Refused>>, Refused> {
        let event_ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
        let posts: Vec<BatchPost<'_>> = batch
            .iter()
            .zip(&event_ids)
            .map(|(q, event_id)| BatchPost {
                thread_id: q.post.thread_id,
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
        let mut attempt = 1;
        let stored = loop {
            match db::post_messages(&self.pool, &posts).await {
                Ok(stored) => break stored,
                Err(e) if hilo_kit::db::is_unique_violation(&e, "messages_idempotency_idx") => {
                    return Err(Refused::KeyTaken);
                }
                Err(e) if is_deadlock(&e) && attempt < ATTEMPTS => attempt += 1,
                Err(e) => return Err(refused(e)),
            }
        };
        let committed = SystemTime::now();
        let mut outcomes: Vec<Result<relay::Event, Refused>> =
            vec![Err(Refused::NoThread); batch.len()];
        for row in stored {
            let (i, seq) = (row.n as usize, row.seq);
            let (Some(queued), Some(outcome)) = (batch.get(i), outcomes.get_mut(i)) else {
                continue;
            };
            *outcome = Ok(relay::Event {
                id: event_ids[i],
                thread_id: queued.post.thread_id,
                seq,
                part: row.part,
                frame: queued
                    .post
                    .frame
                    .replace(SEQ_PLACEHOLDER, &format!("\"seq\":{seq}"))
                    .into(),
                traceparent: queued.post.traceparent.clone(),
                committed,
            });
        }
        // Posts left out: their thread is archived or gone.
        for i in 0..batch.len() {
            if outcomes[i].is_ok() {
                continue;
            }
            let thread = batch[i].post.thread_id;
            outcomes[i] = match db::get_thread(&self.pool, thread).await {
                Ok(Some(_)) => Err(Refused::Archived),
                Ok(None) => Err(Refused::NoThread),
                Err(e) => Err(refused(e)),
            };
        }
        Ok(outcomes)
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

fn is_deadlock(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40P01")
}

fn refused(error: sqlx::Error) -> Refused {
    if hilo_kit::db::is_transient(&error) {
        tracing::warn!(%error, "database unavailable for posts");
        Refused::Unavailable
    } else {
        tracing::error!(%error, "posts not stored");
        Refused::Failed(error.to_string())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
