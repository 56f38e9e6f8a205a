//! What messaging hears from channels: a deleted channel's threads, messages and events are
//! removed (durable JetStream consumer, so a deletion while messaging was down is handled when
//! it comes back; deleting twice is harmless), membership changes drop cached permissions, and
//! renamed or deleted users their cached names (core NATS: every replica hears them).

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt as _;
use hilo_kit::config::ConsumerArgs;
use hilo_proto::subjects;
use serde::Deserialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{access::Access, db};

/// Name of messaging's durable consumer of channel deletions (shared by its replicas).
const DURABLE: &str = "messaging-channel-deleted";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelEvent {
    channel_id: Uuid,
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserEvent {
    user_id: String,
}

/// Starts both listeners; they run until shutdown.
pub async fn spawn(
    nats: async_nats::Client,
    args: &ConsumerArgs,
    pool: PgPool,
    access: Arc<Access>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let js = jetstream::new(nats.clone());
    let consumer =
        hilo_kit::outbox::durable_consumer(&js, args, DURABLE, subjects::CHANNEL_DELETED).await?;
    tokio::spawn(delete_channels(
        consumer,
        pool,
        access.clone(),
        shutdown.clone(),
    ));

    let mut changes = nats.subscribe("chat.events.>").await?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                next = changes.next() => {
                    let Some(message) = next else { break };
                    if matches!(&*message.subject, subjects::USER_UPDATED | subjects::USER_DELETED) {
                        if let Ok(event) = serde_json::from_slice::<UserEvent>(&message.payload) {
                            access.forget_sender(&event.user_id);
                        }
                    } else if let Ok(event) = serde_json::from_slice::<ChannelEvent>(&message.payload) {
                        access.forget(&event.channel_id.to_string(), event.user_id.as_deref());
                    }
                }
            }
        }
    });
    Ok(())
}

async fn delete_channels(
    mut messages: pull::Stream,
    pool: PgPool,
    access: Arc<Access>,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = messages.next() => next,
        };
        let Some(Ok(message)) = next else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let Ok(event) = serde_json::from_slice::<ChannelEvent>(&message.payload) else {
            tracing::warn!("ignoring a malformed channel.deleted event");
            let _ = message.ack().await;
            continue;
        };
        let span = tracing::info_span!(
            "channel deleted",
            channel_id = %event.channel_id,
            otel.kind = "consumer",
        );
        hilo_kit::telemetry::continue_nats(&span, message.headers.as_ref());
        access.forget(&event.channel_id.to_string(), None);
        delete_channel(&pool, &message, event.channel_id)
            .instrument(span)
            .await;
    }
}

/// Removes one deleted channel's threads and acknowledges the event; on failure the event is
/// not acknowledged, so JetStream redelivers it after `ack_wait`.
async fn delete_channel(pool: &PgPool, message: &jetstream::Message, channel_id: Uuid) {
    let deleted = async {
        let mut tx = pool.begin().await?;
        let threads = db::delete_channel_threads(&mut tx, channel_id).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(threads)
    }
    .await;
    match deleted {
        Ok(threads) => {
            tracing::info!(%channel_id, threads, "deleted channel's threads removed");
            if let Err(error) = message.ack().await {
                tracing::warn!(%error, "ack failed; the event will be redelivered (harmless)");
            }
        }
        Err(error) => tracing::error!(%error, "removing a deleted channel's threads failed"),
    }
}
