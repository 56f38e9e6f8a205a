//! `/api/channels`: listing, reading, creating, updating and deleting channels, and invites.
//! The rules (visibility, admins only, ...) live in the channels service.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
};
use hilo_proto::channels::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{LIMIT_MAX, nullable, present, query_number};
use crate::{
    app::AppState,
    auth::Authed,
    error::{ApiError, ApiResult, ErrorBody},
    json::{Json, OptionalJson},
    views::{ChannelView, iso},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(get_channel, update_channel, delete_channel))
        .routes(routes!(create_invite))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page (default 1).
    page: Option<String>,
    /// Page size, 1..100 (default 10; larger values are clamped).
    limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    total: i64,
    page: i64,
    limit: i64,
    total_pages: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelPage {
    data: Vec<ChannelView>,
    meta: PageMeta,
}

/// Public channels and the private ones you belong to, oldest first.
#[utoipa::path(get, path = "/api/channels", tag = "channels", params(PageQuery),
    responses((status = 200, body = ChannelPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_channels(
    State(state): State<AppState>,
    who: Authed,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<ChannelPage>> {
    let page = query_number("page", q.page.as_deref(), 1)?;
    let limit = query_number("limit", q.limit.as_deref(), 10)?.min(LIMIT_MAX);
    if page == 0 || limit == 0 {
        let field = if page == 0 { "page" } else { "limit" };
        return Err(ApiError::field(
            field,
            format!("{field} must be at least 1"),
        ));
    }
    let request = pb::ListChannelsRequest {
        page: page.min(i32::MAX.into()) as i32,
        limit: limit as i32,
    };
    let reply = state
        .channels
        .clone()
        .list_channels(who.call(request))
        .await?
        .into_inner();
    let meta = PageMeta {
        total: reply.total,
        page,
        limit,
        total_pages: (reply.total + limit - 1) / limit,
    };
    Ok(axum::Json(ChannelPage {
        data: reply.channels.into_iter().map(Into::into).collect(),
        meta,
    }))
}

/// One channel; a private channel you do not belong to is 404.
#[utoipa::path(get, path = "/api/channels/{id}", tag = "channels",
    responses((status = 200, body = ChannelView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_channel(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ChannelView>> {
    let reply = state
        .channels
        .clone()
        .get_channel(who.call(pb::GetChannelRequest { channel_id: id }))
        .await?;
    present(reply.into_inner().channel, "channel")
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateChannelBody {
    name: String,
    description: Option<String>,
    #[serde(default)]
    is_private: bool,
    image_url: Option<String>,
    banner_url: Option<String>,
    category: Option<String>,
}

/// Create a channel; you become its first admin.
#[utoipa::path(post, path = "/api/channels", tag = "channels", request_body = CreateChannelBody,
    responses((status = 200, body = ChannelView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn create_channel(
    State(state): State<AppState>,
    who: Authed,
    Json(body): Json<CreateChannelBody>,
) -> ApiResult<axum::Json<ChannelView>> {
    let request = pb::CreateChannelRequest {
        name: body.name,
        description: body.description,
        is_private: body.is_private,
        image_url: body.image_url,
        banner_url: body.banner_url,
        category: body.category,
    };
    present(
        state
            .channels
            .clone()
            .create_channel(who.call(request))
            .await?
            .into_inner()
            .channel,
        "channel",
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateChannelBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    is_private: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    image_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    banner_url: Option<Option<String>>,
    category: Option<String>,
}

fn nullable_string(v: Option<Option<String>>) -> Option<pb::NullableString> {
    v.map(|value| pb::NullableString { value })
}

/// Change a channel (admins only); only the fields sent change (`null` clears).
#[utoipa::path(patch, path = "/api/channels/{id}", tag = "channels", request_body = UpdateChannelBody,
    responses((status = 200, body = ChannelView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_channel(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
    Json(body): Json<UpdateChannelBody>,
) -> ApiResult<axum::Json<ChannelView>> {
    let request = pb::UpdateChannelRequest {
        channel_id: id,
        name: body.name,
        description: nullable_string(body.description),
        is_private: body.is_private,
        image_url: nullable_string(body.image_url),
        banner_url: nullable_string(body.banner_url),
        category: body.category,
    };
    present(
        state
            .channels
            .clone()
            .update_channel(who.call(request))
            .await?
            .into_inner()
            .channel,
        "channel",
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub message: &'static str,
}

/// Delete a channel (admins only), with its members, threads and messages.
#[utoipa::path(delete, path = "/api/channels/{id}", tag = "channels",
    responses((status = 200, body = Message), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_channel(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Message>> {
    state
        .channels
        .clone()
        .delete_channel(who.call(pb::DeleteChannelRequest { channel_id: id }))
        .await?;
    Ok(axum::Json(Message {
        message: "Channel deleted",
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteBody {
    /// Lifetime of the code (default 7 days, at most 30 days).
    expires_in_seconds: Option<i64>,
    /// How many times it may be used (default unlimited).
    max_uses: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteView {
    code: String,
    expires_at: String,
    max_uses: Option<i32>,
}

/// Create an invite code (admins only); users join a private channel with it.
#[utoipa::path(post, path = "/api/channels/{id}/invites", tag = "channels", request_body = InviteBody,
    responses((status = 201, body = InviteView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_invite(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
    // The body is optional: no body means the defaults.
    OptionalJson(body): OptionalJson<InviteBody>,
) -> ApiResult<(StatusCode, axum::Json<InviteView>)> {
    let request = pb::CreateInviteRequest {
        channel_id: id,
        expires_in_seconds: body.expires_in_seconds,
        max_uses: body.max_uses,
    };
    let reply = state
        .channels
        .clone()
        .create_invite(who.call(request))
        .await?
        .into_inner();
    let view = InviteView {
        code: reply.code,
        expires_at: iso(reply.expire_time),
        max_uses: reply.max_uses,
    };
    Ok((StatusCode::CREATED, axum::Json(view)))
}
