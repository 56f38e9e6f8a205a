//! Session lookups shared by a replica's sockets. Every socket re-validates its session
//! periodically (sign-out closes it); thousands of sockets of one session must not each ask
//! Redis, nor all ask accounts when the shared cache entry expires. Answers are kept briefly
//! per session and misses are resolved one at a time (single flight).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::app::AppState;

/// `(user id, access token)` per session-token digest, or `None` for an ended session.
type Entry = (Instant, Option<(String, String)>);

/// This replica's recent session answers.
pub struct SessionCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    single_flight: tokio::sync::Mutex<()>,
}

impl SessionCache {
    /// Answers are reused for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
            single_flight: tokio::sync::Mutex::default(),
        }
    }

    fn get(&self, key: &str) -> Option<Option<(String, String)>> {
        let entries = self.entries.lock().ok()?;
        let (at, answer) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| answer.clone())
    }

    /// Drops the answers about `user_id`'s sessions (one ended, or the user was deleted), so
    /// a new socket with it asks again.
    pub fn forget_user(&self, user_id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries
                .retain(|_, (_, answer)| answer.as_ref().is_none_or(|(user, _)| user != user_id));
        }
    }

    fn put(&self, key: String, answer: Option<(String, String)>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 50_000 {
                let ttl = self.ttl;
                entries.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            entries.insert(key, (Instant::now(), answer));
        }
    }
}

/// `(user id, access token)` of a session token; `None` when the session ended. Goes to the
/// shared Redis cache, then accounts, only on a local miss.
pub async fn lookup(
    state: &AppState,
    token: &str,
    request_id: Option<&str>,
) -> Result<Option<(String, String)>, tonic::Status> {
    let key = hilo_kit::session::hex_digest(token);
    let cache = &state.sessions;
    if let Some(answer) = cache.get(&key) {
        return Ok(answer);
    }
    let _flight = cache.single_flight.lock().await;
    if let Some(answer) = cache.get(&key) {
        return Ok(answer);
    }
    let answer =
        hilo_kit::session::access_token(&state.accounts, &state.redis, token, request_id).await?;
    cache.put(key, answer.clone());
    Ok(answer)
}
