//! Presence: a user is online while at least one socket of theirs is open on any replica.
//! Each replica counts its own sockets per user and keeps, in Redis, one sorted set per user
//! (`hilo:presence:<userId>`) whose members are replica ids scored by an expiry time. A replica
//! refreshes its entries every third of the TTL and removes them when its last socket of that
//! user closes; a crashed replica's entries simply expire. Readers use [`hilo_kit::session`]'s
//! presence helpers (`is_online`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use hilo_kit::{auth::now_secs, session::presence_key, shutdown::CancellationToken};

/// This replica's share of presence.
pub struct Presence {
    redis: redis::aio::ConnectionManager,
    replica: String,
    ttl: Duration,
    counts: Mutex<HashMap<Arc<str>, usize>>,
}

impl Presence {
    /// Presence entries written by this replica live `ttl` without a refresh.
    pub fn new(redis: redis::aio::ConnectionManager, ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            redis,
            replica: uuid::Uuid::now_v7().to_string(),
            ttl: ttl.max(Duration::from_secs(3)),
            counts: Mutex::default(),
        })
    }

    /// A socket of `user_id` opened.
    pub fn online(self: &Arc<Self>, user_id: &Arc<str>) {
        let first = {
            let Ok(mut counts) = self.counts.lock() else {
                return;
            };
            let count = counts.entry(user_id.clone()).or_default();
            *count += 1;
            *count == 1
        };
        if first {
            let this = self.clone();
            let users = vec![user_id.clone()];
            tokio::spawn(async move { this.mark(&users).await });
        }
    }

    /// A socket of `user_id` closed.
    pub fn offline(self: &Arc<Self>, user_id: &Arc<str>) {
        let last = {
            let Ok(mut counts) = self.counts.lock() else {
                return;
            };
            match counts.get_mut(user_id) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    counts.remove(user_id);
                    true
                }
                None => false,
            }
        };
        if last {
            let mut redis = self.redis.clone();
            let (key, member) = (presence_key(user_id), self.replica.clone());
            tokio::spawn(async move {
                let removed: redis::RedisResult<()> = redis::cmd("ZREM")
                    .arg(key)
                    .arg(member)
                    .query_async(&mut redis)
                    .await;
                if let Err(error) = removed {
                    tracing::warn!(%error, "presence not cleared");
                }
            });
        }
    }

    async fn mark(&self, users: &[Arc<str>]) {
        let expiry = now_secs() + self.ttl.as_secs();
        let mut pipe = redis::pipe();
        for user in users {
            let key = presence_key(user);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(expiry)
                .arg(&self.replica)
                .ignore();
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(self.ttl.as_secs())
                .ignore();
        }
        let mut redis = self.redis.clone();
        if let Err(error) = pipe.query_async::<()>(&mut redis).await {
            tracing::warn!(%error, "presence not refreshed");
        }
    }

    /// Refreshes this replica's entries until shutdown, then removes them.
    pub async fn heartbeat(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.ttl / 3);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let users: Vec<Arc<str>> = match self.counts.lock() {
                Ok(counts) => counts.keys().cloned().collect(),
                Err(_) => continue,
            };
            for chunk in users.chunks(500) {
                self.mark(chunk).await;
            }
        }
    }
}
