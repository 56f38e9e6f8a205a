//! What realtime hears on `chat.events.>`: a removed member or a deleted channel loses its
//! cached authorizations and its sockets' subscriptions; an ended session (sign-out) or a
//! deleted user loses its sockets, closed with 1008 "session ended". Core NATS, so every
//! replica hears every event; one missed while disconnected is still caught by the periodic
//! session re-check and the short authorization cache.

use futures_util::StreamExt as _;
use hilo_proto::subjects::{
    CHANNEL_DELETED, EVENTS_ALL, MEMBER_REMOVED, SESSION_REVOKED, USER_DELETED,
};
use serde::Deserialize;

use crate::app::AppState;

/// The fields realtime reads from any event (each event type has some of them).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    channel_id: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
}

/// Subscribes (live at the server when this returns) and follows the events for the life of
/// the process.
pub async fn follow(nats: async_nats::Client, state: AppState) -> anyhow::Result<()> {
    let mut events = nats.subscribe(EVENTS_ALL).await?;
    nats.flush().await?;
    tokio::spawn(async move {
        while let Some(message) = events.next().await {
            let span = tracing::info_span!(
                "event",
                subject = %message.subject,
                otel.kind = "consumer",
            );
            hilo_kit::telemetry::continue_nats(&span, message.headers.as_ref());
            let _entered = span.enter();
            match serde_json::from_slice::<Fields>(&message.payload) {
                Ok(fields) => apply(&state, &message.subject, fields),
                Err(_) => tracing::warn!("unreadable event"),
            }
        }
    });
    Ok(())
}

fn apply(state: &AppState, subject: &str, event: Fields) {
    let user = event.user_id.as_deref();
    match (subject, event.channel_id, event.session_id) {
        (MEMBER_REMOVED | CHANNEL_DELETED, Some(channel), _) => {
            state.hub.authz.forget_channel(&channel, user);
            state.hub.channel_lost(&channel, user);
            tracing::info!(channel_id = %channel, user_id = ?user, "channel access lost");
        }
        (SESSION_REVOKED, _, Some(session)) => {
            if let Some(user) = user {
                state.sessions.forget_user(user);
            }
            let closed = state.hub.end(|s| *s.session_id == *session);
            tracing::info!(user_id = ?user, closed, "session ended");
        }
        (USER_DELETED, _, _) => {
            let Some(user) = user else { return };
            state.sessions.forget_user(user);
            let closed = state.hub.end(|s| *s.user_id == *user);
            tracing::info!(user_id = user, closed, "user deleted");
        }
        _ => {}
    }
}
