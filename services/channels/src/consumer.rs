//! What channels hears from accounts: a deleted user leaves every channel. A durable
//! JetStream consumer (shared by all replicas), so a deletion while channels was down is
//! handled when it comes back; handling the same deletion twice is harmless.
//!
//! For each channel the user belonged to, one transaction removes the membership and repairs
//! what the departure broke: a channel left without an admin gets one (the earliest-joined
//! moderator, else the earliest-joined member), and a private channel left without members is
//! deleted, since nobody could ever reach it again. A public channel left without members
//! stays: anyone may still find and join it, and its threads keep their history. The user's
//! invites are deleted first, so nobody joins on behalf of a user who no longer exists.
//!
//! One transaction per channel, not one overall: a user may belong to thousands of channels,
//! and each channel's locks are then held only for that channel's few statements. A failure
//! halfway leaves the event unacknowledged; JetStream redelivers it and the channels already
//! done are no longer among the user's, so nothing is done or announced twice. This consumer
//! never calls accounts: the user is gone there, and nothing here needs more than the id.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt as _;
use hilo_kit::{
    config::ConsumerArgs,
    outbox::{self, Relay},
    shutdown::CancellationToken,
};
use hilo_proto::subjects;
use sqlx::PgPool;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{db, permissions::Role};

/// Name of channels' durable consumer of user deletions (shared by its replicas).
const DURABLE: &str = "channels-user-deleted";

/// Starts the consumer of user deletions; it runs until shutdown.
pub async fn spawn(
    js: &jetstream::Context,
    args: &ConsumerArgs,
    pool: PgPool,
    relay: Relay,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let messages = outbox::durable_consumer(js, args, DURABLE, subjects::USER_DELETED).await?;
    tokio::spawn(consume(messages, pool, relay, shutdown));
    Ok(())
}

async fn consume(
    mut messages: pull::Stream,
    pool: PgPool,
    relay: Relay,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = messages.next() => next,
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                tracing::warn!(%error, "user.deleted consumer: pull failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            None => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(user_id) = deleted_user(&message.payload) else {
            // Redelivering it would not make it readable.
            tracing::warn!("ignoring a malformed user.deleted event");
            ack(&message).await;
            continue;
        };
        let span = tracing::info_span!("user deleted", user_id = %user_id, otel.kind = "consumer");
        hilo_kit::telemetry::continue_nats(&span, message.headers.as_ref());
        handle(&pool, &relay, &message, &user_id)
            .instrument(span)
            .await;
    }
}

/// Applies one deletion and acknowledges it; on a database failure the event is not
/// acknowledged, so JetStream redelivers it after `ack_wait`.
async fn handle(pool: &PgPool, relay: &Relay, message: &jetstream::Message, user_id: &str) {
    match depart(pool, relay, user_id).await {
        Ok(done) => {
            tracing::info!(
                channels = done.channels,
                promoted = done.promoted,
                deleted = done.deleted,
                invites = done.invites,
                "deleted user removed from their channels"
            );
            ack(message).await;
        }
        Err(error) => tracing::error!(%error, "removing a deleted user failed; will retry"),
    }
}

async fn ack(message: &jetstream::Message) {
    if let Err(error) = message.ack().await {
        tracing::warn!(%error, "ack failed; the event will be redelivered (harmless)");
    }
}

/// The `userId` of a `user.deleted` payload; `None` when the event is malformed.
fn deleted_user(payload: &[u8]) -> Option<String> {
    let event: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let user_id = event.get("userId")?.as_str()?;
    (!user_id.is_empty()).then(|| user_id.to_owned())
}

/// What one deletion changed, for the log.
#[derive(Default)]
struct Departure {
    channels: usize,
    promoted: usize,
    deleted: usize,
    invites: u64,
}

/// Removes `user_id` from every channel and deletes their invites (see the module comment).
async fn depart(pool: &PgPool, relay: &Relay, user_id: &str) -> sqlx::Result<Departure> {
    let mut done = Departure {
        invites: db::delete_invites_by(pool, user_id).await?,
        ..Default::default()
    };
    for channel_id in db::channels_of(pool, user_id).await? {
        let Some(aftermath) = leave(pool, channel_id, user_id).await? else {
            continue;
        };
        relay.wake();
        done.channels += 1;
        match aftermath {
            Aftermath::Nothing => {}
            Aftermath::Promote(_) => done.promoted += 1,
            Aftermath::Delete => done.deleted += 1,
        }
    }
    Ok(done)
}

/// Removes `user_id` from one channel, in one transaction, and repairs the channel; `None`
/// when they were no longer a member (or the channel is gone): nothing to do or announce.
///
/// Locks the channel row, then its admins, as role changes and removals do (same order, so
/// no deadlock): none of them can interleave, and the successor is chosen from the members
/// as they are once every earlier change has committed.
async fn leave(pool: &PgPool, channel_id: Uuid, user_id: &str) -> sqlx::Result<Option<Aftermath>> {
    let mut tx = pool.begin().await?;
    let Some(is_private) = db::lock_channel(&mut *tx, channel_id).await? else {
        return Ok(None);
    };
    db::lock_admins(&mut tx, channel_id).await?;
    if !db::delete_member(&mut *tx, channel_id, user_id).await? {
        return Ok(None);
    }
    let event =
        serde_json::json!({ "type": "member.removed", "channelId": channel_id, "userId": user_id });
    outbox::enqueue(&mut tx, subjects::MEMBER_REMOVED, event).await?;

    let earliest = db::earliest_by_role(&mut *tx, channel_id).await?;
    let remaining: Vec<(Role, &str)> = earliest
        .iter()
        .filter_map(|m| Some((Role::parse(&m.role)?, m.user_id.as_str())))
        .collect();
    let aftermath = aftermath(is_private, &remaining);
    match &aftermath {
        Aftermath::Nothing => {}
        Aftermath::Promote(successor) => {
            db::update_role(&mut *tx, channel_id, successor, Role::Admin.as_str()).await?;
            let event = serde_json::json!({
                "type": "member.role_changed", "channelId": channel_id, "userId": successor,
                "role": Role::Admin.as_str(),
            });
            outbox::enqueue(&mut tx, subjects::MEMBER_ROLE_CHANGED, event).await?;
            tracing::info!(%channel_id, %successor, "admin's successor promoted");
        }
        Aftermath::Delete => {
            if db::delete_channel(&mut *tx, channel_id).await? {
                let event =
                    serde_json::json!({ "type": "channel.deleted", "channelId": channel_id });
                outbox::enqueue(&mut tx, subjects::CHANNEL_DELETED, event).await?;
            }
            tracing::info!(%channel_id, "private channel left empty deleted");
        }
    }
    tx.commit().await?;
    Ok(Some(aftermath))
}

/// What a channel needs once a member has left for good.
#[derive(Debug, PartialEq, Eq)]
enum Aftermath {
    /// It still has an admin, or it is public and may stay empty.
    Nothing,
    /// It has members but no admin: this member becomes one.
    Promote(String),
    /// It is private and empty: nobody could ever reach it again.
    Delete,
}

/// The rule, from the earliest-joined remaining member of each role present (`remaining`,
/// at most one per role).
fn aftermath(is_private: bool, remaining: &[(Role, &str)]) -> Aftermath {
    let earliest = |role| {
        remaining
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, id)| (*id).to_owned())
    };
    if remaining.is_empty() {
        return if is_private {
            Aftermath::Delete
        } else {
            Aftermath::Nothing
        };
    }
    if earliest(Role::Admin).is_some() {
        return Aftermath::Nothing;
    }
    earliest(Role::Moderator)
        .or_else(|| earliest(Role::Member))
        .map_or(Aftermath::Nothing, Aftermath::Promote)
}

#[cfg(test)]
mod tests {
    use super::{Aftermath::*, *};

    #[test]
    fn a_remaining_admin_needs_nothing() {
        let remaining = [
            (Role::Admin, "a"),
            (Role::Moderator, "m"),
            (Role::Member, "u"),
        ];
        assert_eq!(aftermath(false, &remaining), Nothing);
        assert_eq!(aftermath(true, &remaining[..1]), Nothing);
    }

    #[test]
    fn the_earliest_moderator_wins_over_members_then_the_earliest_member() {
        // `remaining` holds the earliest of each role, in any order.
        let remaining = [(Role::Member, "early-member"), (Role::Moderator, "mod")];
        assert_eq!(aftermath(true, &remaining), Promote("mod".to_owned()));
        assert_eq!(
            aftermath(false, &remaining[..1]),
            Promote("early-member".to_owned())
        );
    }

    #[test]
    fn an_empty_private_channel_goes_and_an_empty_public_one_stays() {
        assert_eq!(aftermath(true, &[]), Delete);
        assert_eq!(aftermath(false, &[]), Nothing);
    }

    #[test]
    fn only_a_non_empty_user_id_makes_an_event() {
        let good = br#"{"type":"user.deleted","id":"e1","userId":"u1"}"#;
        assert_eq!(deleted_user(good), Some("u1".to_owned()));
        for bad in [
            &b"not json"[..],
            br#"{"type":"user.deleted","id":"e1"}"#,
            br#"{"userId":""}"#,
            br#"{"userId":42}"#,
            br#"[]"#,
        ] {
            assert_eq!(deleted_user(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
