//! What messaging asks other services: permissions (channels' CheckPermission, with the hot
//! "may read / may post" answers cached briefly and dropped when membership changes) and
//! senders' names (accounts' BatchGetUsers, cached until a `user.updated` or `user.deleted`
//! event, a minute at most). Both are called with the caller's own token.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use hilo_kit::grpc::RetryingChannel;
use hilo_kit::{auth::Caller, grpc};
use hilo_proto::{
    accounts::v1::{BatchGetUsersRequest, accounts_service_client::AccountsServiceClient},
    channels::v1::{
        Action, CheckPermissionRequest, channels_service_client::ChannelsServiceClient,
    },
    messaging::v1 as pb,
};

use crate::error::{Error, Result};

/// Entries kept at most; the cache is emptied when it grows past this.
const CACHE_MAX: usize = 50_000;

/// The answer of channels about one action.
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    pub allowed: bool,
    pub visible: bool,
}

type Key = (String, String, i32);

/// How long a sender's name and picture are reused without a `user.updated` event.
const SENDER_TTL: Duration = Duration::from_secs(60);

/// Clients of channels and accounts, and the permission and sender caches. Built once.
pub struct Access {
    pub channels: ChannelsServiceClient<RetryingChannel>,
    pub accounts: AccountsServiceClient<RetryingChannel>,
    cache: Mutex<HashMap<Key, (Instant, Answer)>>,
    ttl: Duration,
    /// How users are shown: asked of accounts once, then reused until they change (every
    /// post carries its sender, so accounts is not asked per post).
    senders: moka::sync::Cache<String, pb::Sender>,
}

impl Access {
    pub fn new(channels: RetryingChannel, accounts: RetryingChannel, ttl: Duration) -> Self {
        Self {
            channels: ChannelsServiceClient::new(channels),
            accounts: AccountsServiceClient::new(accounts),
            cache: Mutex::default(),
            ttl,
            senders: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(SENDER_TTL)
                .build(),
        }
    }

    /// Forgets how a user is shown (they renamed themselves, or were deleted).
    pub fn forget_sender(&self, user_id: &str) {
        self.senders.invalidate(user_id);
    }

    /// May the caller do `action` in `channel_id` (on something `owner` made)?
    pub async fn check(
        &self,
        caller: &Caller,
        channel_id: &str,
        action: Action,
        owner: Option<&str>,
    ) -> Result<Answer> {
        let cacheable = matches!(action, Action::Read | Action::Post);
        let key = (caller.user_id.clone(), channel_id.to_owned(), action as i32);
        if cacheable && let Some(answer) = self.cached(&key) {
            return Ok(answer);
        }
        let request = CheckPermissionRequest {
            channel_id: channel_id.to_owned(),
            user_id: caller.user_id.clone(),
            action: action as i32,
            owner_id: owner.map(str::to_owned),
        };
        let reply = self
            .channels
            .clone()
            .check_permission(grpc::request(request, Some(&caller.token), None))
            .await
            .map_err(Error::Upstream)?
            .into_inner();
        let answer = Answer {
            allowed: reply.allowed,
            visible: reply.visible,
        };
        if cacheable && let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), answer));
        }
        Ok(answer)
    }

    fn cached(&self, key: &Key) -> Option<Answer> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, answer)| *answer)
    }

    /// Drops cached answers about a channel (for one user, or everyone).
    pub fn forget(&self, channel_id: &str, user_id: Option<&str>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|(user, channel, _), _| {
                channel != channel_id || user_id.is_some_and(|u| u != user)
            });
        }
    }

    /// How each of `ids` is shown; a user who no longer exists appears as a placeholder.
    /// Users not seen recently are asked of accounts, in one call.
    pub async fn senders(
        &self,
        caller: &Caller,
        mut ids: Vec<String>,
    ) -> Result<HashMap<String, pb::Sender>> {
        ids.sort();
        ids.dedup();
        let mut senders = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.senders.get(&id) {
                Some(sender) => {
                    senders.insert(id, sender);
                }
                None => missing.push(id),
            }
        }
        if missing.is_empty() {
            return Ok(senders);
        }
        let request = grpc::request(
            BatchGetUsersRequest {
                user_ids: missing.clone(),
            },
            Some(&caller.token),
            None,
        );
        let users = self
            .accounts
            .clone()
            .batch_get_users(request)
            .await
            .map_err(Error::Upstream)?
            .into_inner()
            .users;
        let mut found: HashMap<String, pb::Sender> = users
            .into_iter()
            .map(|u| {
                let profile = u.profile.unwrap_or_default();
                let display_name = if profile.display_name.is_empty() {
                    u.name.clone()
                } else {
                    profile.display_name
                };
                let sender = pb::Sender {
                    id: u.id.clone(),
                    name: u.name,
                    image: u.image,
                    display_name,
                    avatar_url: profile.avatar_url,
                };
                (u.id, sender)
            })
            .collect();
        for id in missing {
            let sender = found.remove(&id).unwrap_or_else(|| pb::Sender {
                id: id.clone(),
                name: DELETED_USER.to_owned(),
                image: None,
                display_name: DELETED_USER.to_owned(),
                avatar_url: None,
            });
            self.senders.insert(id.clone(), sender.clone());
            senders.insert(id, sender);
        }
        Ok(senders)
    }
}

/// How the author of a message from a deleted account is shown.
pub const DELETED_USER: &str = "Deleted user";

/// Turns an answer into the error a client sees: invisible is 404, refused is 403.
pub fn require(answer: Answer, thread_id: &str, refusal: &str) -> Result<()> {
    if !answer.visible {
        return Err(Error::ThreadNotFound(thread_id.to_owned()));
    }
    if !answer.allowed {
        return Err(Error::Forbidden(refusal.to_owned()));
    }
    Ok(())
}
