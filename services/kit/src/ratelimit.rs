//! Fixed-window request budgets shared by every replica, counted in Redis: one pipelined
//! INCR + EXPIRE per key. The gateway counts sign-ins and app routes, realtime WebSocket
//! connects (docs/security.md). When Redis cannot answer, [`count`] says nothing and callers let
//! the request through (logged): an outage of the cache must not lock everyone out.

use crate::auth::now_secs;

/// The current fixed window of `secs` seconds.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    secs: u64,
    now: u64,
}

impl Window {
    pub fn now(secs: u32) -> Self {
        Self {
            secs: u64::from(secs.max(1)),
            now: now_secs(),
        }
    }

    /// The Redis key of `subject`'s count in this window of `scope`.
    pub fn key(&self, scope: &str, subject: &str) -> String {
        format!("hilo:rl:{scope}:{subject}:{}", self.now / self.secs)
    }

    /// Seconds until the window ends (a `Retry-After`).
    pub fn reset(&self) -> u64 {
        self.secs - self.now % self.secs
    }
}

/// Counts one request on each key and returns the counts so far, or `None` when Redis cannot
/// say.
pub async fn count(
    redis: &redis::aio::ConnectionManager,
    keys: &[String],
    window: Window,
) -> Option<Vec<u64>> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for key in keys {
        pipe.incr(key, 1).expire(key, window.secs as i64).ignore();
    }
    let mut redis = redis.clone();
    match pipe.query_async::<Vec<u64>>(&mut redis).await {
        Ok(counts) => Some(counts),
        Err(error) => {
            tracing::warn!(%error, "rate limiter unavailable; allowing the request");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn windows_name_their_keys_and_end() {
        let window = Window {
            secs: 10,
            now: 1_005,
        };
        assert_eq!(window.key("writes", "user:u"), "hilo:rl:writes:user:u:100");
        assert_eq!(window.reset(), 5);
    }
}
