//! `/api/messages`: history (offset paging as the original, cursor paging by seq), one
//! message, posting (idempotent with `Idempotency-Key` or `nonce`), editing and deleting.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
};
use hilo_proto::{frames::MessageJson, messaging::v1 as pb};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{LIMIT_MAX, channels::Message, present, query_number};
use crate::{
    app::AppState,
    auth::Authed,
    error::{ApiError, ApiResult, ErrorBody},
    json::Json,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history))
        .routes(routes!(post_message))
        .routes(routes!(get_message, edit_message, delete_message))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1..100 (default 50; larger values are clamped).
    limit: Option<String>,
    /// Messages to skip from the newest (the original's paging; default 0).
    offset: Option<String>,
    /// Cursor: messages older than this seq.
    before: Option<String>,
    /// Cursor: messages newer than this seq.
    after: Option<String>,
}

/// A thread's messages, each page oldest first; `offset=0` (or no cursor) is the newest page.
#[utoipa::path(get, path = "/api/messages/thread/{threadId}", tag = "messages", params(HistoryQuery),
    responses((status = 200, body = Vec<MessageJson>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn history(
    State(state): State<AppState>,
    who: Authed,
    Path(thread_id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<axum::Json<Vec<MessageJson>>> {
    let limit = query_number("limit", q.limit.as_deref(), 50)?.min(LIMIT_MAX);
    let offset = query_number("offset", q.offset.as_deref(), 0)?.min(i32::MAX.into());
    let before = q
        .before
        .as_deref()
        .map(|b| query_number("before", Some(b), 0))
        .transpose()?;
    let after = q
        .after
        .as_deref()
        .map(|a| query_number("after", Some(a), 0))
        .transpose()?;
    if limit == 0 {
        return Ok(axum::Json(Vec::new()));
    }
    let request = pb::ListMessagesRequest {
        thread_id,
        limit: limit as i32,
        offset: offset as i32,
        before_seq: before,
        after_seq: after,
    };
    let messages = state
        .messaging
        .clone()
        .list_messages(who.call(request))
        .await?
        .into_inner()
        .messages;
    Ok(axum::Json(messages.into_iter().map(Into::into).collect()))
}

/// One message (readers of its thread).
#[utoipa::path(get, path = "/api/messages/{id}", tag = "messages",
    responses((status = 200, body = MessageJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_message(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<MessageJson>> {
    present(
        state
            .messaging
            .clone()
            .get_message(who.call(pb::GetMessageRequest { message_id: id }))
            .await?
            .into_inner()
            .message,
        "message",
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentBody {
    id: String,
    url: String,
    filename: String,
    mime_type: String,
    size: f64,
    /// `image`, `document`, `video` or `audio`.
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostMessageBody {
    thread_id: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    attachments: Vec<AttachmentBody>,
    /// A client-chosen retry key, like the `Idempotency-Key` header (the header wins).
    nonce: Option<String>,
}

/// Post a message (members; not in archived threads: 409). A retry with the same
/// `Idempotency-Key` header (or `nonce`) returns the first result and creates nothing.
#[utoipa::path(post, path = "/api/messages", tag = "messages", request_body = PostMessageBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key, same result")),
    responses((status = 201, body = MessageJson), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "THREAD_ARCHIVED", body = ErrorBody),
              (status = 422, description = "IDEMPOTENCY_KEY_REUSED", body = ErrorBody)))]
async fn post_message(
    State(state): State<AppState>,
    who: Authed,
    headers: HeaderMap,
    Json(body): Json<PostMessageBody>,
) -> ApiResult<(StatusCode, axum::Json<MessageJson>)> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(body.nonce);
    let request = pb::PostMessageRequest {
        thread_id: body.thread_id,
        content: body.content,
        attachments: body
            .attachments
            .into_iter()
            .map(|a| pb::Attachment {
                id: a.id,
                url: a.url,
                filename: a.filename,
                mime_type: a.mime_type,
                size: a.size,
                r#type: a.kind,
            })
            .collect(),
        idempotency_key: key,
    };
    let reply = state
        .messaging
        .clone()
        .post_message(who.call(request))
        .await
        .map_err(|status| {
            // The IETF idempotency draft answers a key reused for another request with 422.
            let reused = status.message().contains("Idempotency-Key");
            let error = ApiError::from(status);
            if reused {
                error.with_status(StatusCode::UNPROCESSABLE_ENTITY)
            } else {
                error
            }
        })?;
    let reply = reply.into_inner();
    let status = if reply.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, present(reply.message, "message")?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EditMessageBody {
    content: String,
}

/// Edit your own message's content; emits MESSAGE_UPDATED.
#[utoipa::path(patch, path = "/api/messages/{id}", tag = "messages", request_body = EditMessageBody,
    responses((status = 200, body = MessageJson), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn edit_message(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
    Json(body): Json<EditMessageBody>,
) -> ApiResult<axum::Json<MessageJson>> {
    let request = pb::EditMessageRequest {
        message_id: id,
        content: body.content,
    };
    present(
        state
            .messaging
            .clone()
            .edit_message(who.call(request))
            .await?
            .into_inner()
            .message,
        "message",
    )
}

/// Delete a message (its author or a moderator+); emits DELETE_MESSAGE.
#[utoipa::path(delete, path = "/api/messages/{id}", tag = "messages",
    responses((status = 200, body = Message), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_message(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Message>> {
    state
        .messaging
        .clone()
        .delete_message(who.call(pb::DeleteMessageRequest { message_id: id }))
        .await?;
    Ok(axum::Json(Message {
        message: "Message deleted successfully",
    }))
}
