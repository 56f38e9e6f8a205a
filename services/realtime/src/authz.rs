//! `JOIN_THREAD` authorization: messaging's `AuthorizeThread`, called with the user's access
//! token, answers whether the user may read a thread. Answers are reused for a few seconds per
//! user and thread (reconnect storms re-join the same threads), and dropped at once when a
//! membership event says the user (or everyone) lost the channel.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use hilo_kit::grpc::RetryingChannel;
use hilo_proto::messaging::v1::{
    AuthorizeThreadRequest, AuthorizeThreadResponse,
    messaging_service_client::MessagingServiceClient,
};

/// Messaging's client, built once.
pub type Messaging = MessagingServiceClient<RetryingChannel>;

/// What a join needs from an authorization.
#[derive(Clone, Debug)]
pub struct Answer {
    pub allowed: bool,
    pub visible: bool,
    pub channel_id: String,
}

/// Short-lived answers per (user, thread).
pub struct AuthzCache {
    ttl: Duration,
    answers: Mutex<HashMap<(String, String), (Instant, Answer)>>,
    /// Misses are resolved one at a time, so a reconnect storm asks messaging once per
    /// (user, thread) instead of once per socket.
    single_flight: tokio::sync::Mutex<()>,
}

impl AuthzCache {
    /// A cache keeping answers for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            answers: Mutex::default(),
            single_flight: tokio::sync::Mutex::default(),
        }
    }

    fn get(&self, user_id: &str, thread_id: &str) -> Option<Answer> {
        let answers = self.answers.lock().ok()?;
        let (at, answer) = answers.get(&(user_id.to_owned(), thread_id.to_owned()))?;
        (at.elapsed() < self.ttl).then(|| answer.clone())
    }

    fn put(&self, user_id: &str, thread_id: &str, answer: Answer) {
        // Refusals are not kept: one about a thread the user cannot see names no channel, so no
        // membership event could drop it, and one the user ends by joining must not outlast it.
        if !answer.allowed {
            return;
        }
        if let Ok(mut answers) = self.answers.lock() {
            if answers.len() > 100_000 {
                let ttl = self.ttl;
                answers.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            answers.insert(
                (user_id.to_owned(), thread_id.to_owned()),
                (Instant::now(), answer),
            );
        }
    }

    /// Drops every answer about a thread (it was deleted).
    pub fn forget_thread(&self, thread_id: &str) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.retain(|(_, thread), _| thread != thread_id);
        }
    }

    /// Drops the answers about a channel, for one user or for everyone.
    pub fn forget_channel(&self, channel_id: &str, user_id: Option<&str>) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.retain(|(user, _), (_, answer)| {
                answer.channel_id != channel_id || user_id.is_some_and(|u| u != user)
            });
        }
    }
}

/// May `user_id` (holding `access_token`) read `thread_id`? From the cache or from messaging.
pub async fn authorize(
    cache: &AuthzCache,
    messaging: &Messaging,
    user_id: &str,
    access_token: &str,
    thread_id: &str,
) -> Result<Answer, tonic::Status> {
    if let Some(answer) = cache.get(user_id, thread_id) {
        return Ok(answer);
    }
    let _flight = cache.single_flight.lock().await;
    if let Some(answer) = cache.get(user_id, thread_id) {
        return Ok(answer);
    }
    let request = hilo_kit::grpc::request(
        AuthorizeThreadRequest {
            thread_id: thread_id.to_owned(),
        },
        Some(access_token),
        None,
    );
    let AuthorizeThreadResponse {
        allowed,
        visible,
        channel_id,
        ..
    } = match messaging.clone().authorize_thread(request).await {
        Ok(reply) => reply.into_inner(),
        // An unknown or malformed thread id is "not visible", like any invisible thread.
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::NotFound | tonic::Code::InvalidArgument
            ) =>
        {
            AuthorizeThreadResponse::default()
        }
        Err(status) if status.code() == tonic::Code::PermissionDenied => AuthorizeThreadResponse {
            visible: true,
            ..Default::default()
        },
        Err(status) => return Err(status),
    };
    let answer = Answer {
        allowed,
        visible,
        channel_id,
    };
    cache.put(user_id, thread_id, answer.clone());
    Ok(answer)
}
