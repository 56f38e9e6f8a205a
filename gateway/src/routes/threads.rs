//! `/api/threads`: threads of a channel, with the original's routes and shapes; the rules
//! (members read and create; creator or moderator updates; creator or admin deletes; creator,
//! moderator or admin archives) live in messaging and channels.

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use hilo_proto::{frames::ThreadJson, messaging::v1 as pb};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{channels::Message, nullable, present};
use crate::{
    app::AppState,
    auth::Authed,
    error::{ApiResult, ErrorBody},
    json::Json,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_threads))
        .routes(routes!(list_active_threads))
        .routes(routes!(create_thread))
        .routes(routes!(get_thread, update_thread, delete_thread))
        .routes(routes!(archive))
        .routes(routes!(unarchive))
}

async fn list(
    state: &AppState,
    who: &Authed,
    channel_id: String,
    active_only: bool,
) -> ApiResult<axum::Json<Vec<ThreadJson>>> {
    let request = pb::ListThreadsRequest {
        channel_id,
        active_only,
    };
    let threads = state
        .messaging
        .clone()
        .list_threads(who.call(request))
        .await?
        .into_inner()
        .threads;
    Ok(axum::Json(threads.into_iter().map(Into::into).collect()))
}

/// Threads of a channel, newest first (members only).
#[utoipa::path(get, path = "/api/threads/channel/{channelId}", tag = "threads",
    responses((status = 200, body = Vec<ThreadJson>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_threads(
    State(state): State<AppState>,
    who: Authed,
    Path(channel_id): Path<String>,
) -> ApiResult<axum::Json<Vec<ThreadJson>>> {
    list(&state, &who, channel_id, false).await
}

/// Threads not archived, most recently active first (members only).
#[utoipa::path(get, path = "/api/threads/channel/{channelId}/active", tag = "threads",
    responses((status = 200, body = Vec<ThreadJson>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_active_threads(
    State(state): State<AppState>,
    who: Authed,
    Path(channel_id): Path<String>,
) -> ApiResult<axum::Json<Vec<ThreadJson>>> {
    list(&state, &who, channel_id, true).await
}

/// One thread (members of its channel).
#[utoipa::path(get, path = "/api/threads/{id}", tag = "threads",
    responses((status = 200, body = ThreadJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_thread(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ThreadJson>> {
    present(
        state
            .messaging
            .clone()
            .get_thread(who.call(pb::GetThreadRequest { thread_id: id }))
            .await?
            .into_inner()
            .thread,
        "thread",
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateThreadBody {
    channel_id: String,
    name: String,
    description: Option<String>,
}

/// Start a thread in a channel (members).
#[utoipa::path(post, path = "/api/threads", tag = "threads", request_body = CreateThreadBody,
    responses((status = 201, body = ThreadJson), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_thread(
    State(state): State<AppState>,
    who: Authed,
    Json(body): Json<CreateThreadBody>,
) -> ApiResult<(StatusCode, axum::Json<ThreadJson>)> {
    let request = pb::CreateThreadRequest {
        channel_id: body.channel_id,
        name: body.name,
        description: body.description,
    };
    let created = state
        .messaging
        .clone()
        .create_thread(who.call(request))
        .await?
        .into_inner()
        .thread;
    Ok((StatusCode::CREATED, present(created, "thread")?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateThreadBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    is_archived: Option<bool>,
}

/// Change a thread (its creator or a moderator+); emits THREAD_UPDATED.
#[utoipa::path(patch, path = "/api/threads/{id}", tag = "threads", request_body = UpdateThreadBody,
    responses((status = 200, body = ThreadJson), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_thread(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
    Json(body): Json<UpdateThreadBody>,
) -> ApiResult<axum::Json<ThreadJson>> {
    let request = pb::UpdateThreadRequest {
        thread_id: id,
        name: body.name,
        description: body.description.map(|value| pb::NullableString { value }),
        is_archived: body.is_archived,
    };
    present(
        state
            .messaging
            .clone()
            .update_thread(who.call(request))
            .await?
            .into_inner()
            .thread,
        "thread",
    )
}

/// Delete a thread and its messages (its creator or an admin); emits THREAD_DELETED.
#[utoipa::path(delete, path = "/api/threads/{id}", tag = "threads",
    responses((status = 200, body = Message), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_thread(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Message>> {
    state
        .messaging
        .clone()
        .delete_thread(who.call(pb::DeleteThreadRequest { thread_id: id }))
        .await?;
    Ok(axum::Json(Message {
        message: "Thread deleted successfully",
    }))
}

async fn set_archived(
    state: &AppState,
    who: &Authed,
    thread_id: String,
    archived: bool,
) -> ApiResult<axum::Json<ThreadJson>> {
    let request = pb::SetThreadArchivedRequest {
        thread_id,
        archived,
    };
    present(
        state
            .messaging
            .clone()
            .set_thread_archived(who.call(request))
            .await?
            .into_inner()
            .thread,
        "thread",
    )
}

/// Archive a thread: it then refuses new messages (creator, moderator or admin).
#[utoipa::path(post, path = "/api/threads/{id}/archive", tag = "threads",
    responses((status = 200, body = ThreadJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn archive(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ThreadJson>> {
    set_archived(&state, &who, id, true).await
}

/// Unarchive a thread (creator, moderator or admin).
#[utoipa::path(post, path = "/api/threads/{id}/unarchive", tag = "threads",
    responses((status = 200, body = ThreadJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unarchive(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ThreadJson>> {
    set_archived(&state, &who, id, false).await
}
