//! `/api/members`: joining and leaving channels, member lists and roles. Both the README's
//! `DELETE /api/members/:channelId` (leave) and the code's `/:channelId/:userId` exist.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
};
use hilo_proto::channels::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{LIMIT_MAX, channels::Message, present, query_number};
use crate::{
    app::AppState,
    auth::Authed,
    error::{ApiError, ApiResult, ErrorBody},
    json::Json,
    views::{ChannelView, MemberView, role_name},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(joined))
        .routes(routes!(add_member))
        .routes(routes!(list_members, leave))
        .routes(routes!(get_role))
        .routes(routes!(is_joined))
        .routes(routes!(change_role))
        .routes(routes!(remove_member))
}

/// Channels you belong to, in the order you joined them.
#[utoipa::path(get, path = "/api/members/joined", tag = "members",
    responses((status = 200, body = Vec<ChannelView>), (status = 401, body = ErrorBody)))]
async fn joined(
    State(state): State<AppState>,
    who: Authed,
) -> ApiResult<axum::Json<Vec<ChannelView>>> {
    let reply = state
        .channels
        .clone()
        .list_joined_channels(who.call(pb::ListJoinedChannelsRequest {}))
        .await?;
    Ok(axum::Json(
        reply
            .into_inner()
            .channels
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// 1..100 (default 100).
    limit: Option<String>,
    /// Members to skip (default 0).
    offset: Option<String>,
}

/// Members of a channel with their name and avatar, in the order they joined (members only).
#[utoipa::path(get, path = "/api/members/{channelId}", tag = "members", params(MembersQuery),
    responses((status = 200, body = Vec<MemberView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    who: Authed,
    Path(channel_id): Path<String>,
    Query(q): Query<MembersQuery>,
) -> ApiResult<axum::Json<Vec<MemberView>>> {
    let limit = query_number("limit", q.limit.as_deref(), LIMIT_MAX)?.min(LIMIT_MAX);
    let offset = query_number("offset", q.offset.as_deref(), 0)?.min(i32::MAX.into());
    if limit == 0 {
        return Ok(axum::Json(Vec::new()));
    }
    let request = pb::ListMembersRequest {
        channel_id,
        limit: limit as i32,
        offset: offset as i32,
    };
    let members = state
        .channels
        .clone()
        .list_members(who.call(request))
        .await?
        .into_inner()
        .members;
    Ok(axum::Json(members.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    /// Absent when the user is not a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
}

/// A user's role in a channel (members only); `{}` when that user is not a member, 404 when
/// there is no such user.
#[utoipa::path(get, path = "/api/members/{channelId}/role/{userId}", tag = "members",
    responses((status = 200, body = RoleView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_role(
    State(state): State<AppState>,
    who: Authed,
    Path((channel_id, user_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<RoleView>> {
    let member = state
        .channels
        .clone()
        .get_member(who.call(pb::GetMemberRequest {
            channel_id,
            user_id: user_id.clone(),
        }))
        .await?
        .into_inner()
        .member;
    if member.is_none() {
        // Asked only on this path: a member is a user.
        state
            .accounts
            .clone()
            .get_user(who.call(hilo_proto::accounts::v1::GetUserRequest { user_id }))
            .await?;
    }
    Ok(axum::Json(RoleView {
        role: member.map(|m| role_name(m.role)),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IsJoined {
    is_joined: bool,
}

/// Whether you are a member of a channel.
#[utoipa::path(get, path = "/api/members/is-joined/{channelId}", tag = "members",
    responses((status = 200, body = IsJoined), (status = 401, body = ErrorBody)))]
async fn is_joined(
    State(state): State<AppState>,
    who: Authed,
    Path(channel_id): Path<String>,
) -> ApiResult<axum::Json<IsJoined>> {
    let request = pb::GetMemberRequest {
        channel_id,
        user_id: who.user_id.clone(),
    };
    let is_joined = match state.channels.clone().get_member(who.call(request)).await {
        Ok(reply) => reply.into_inner().member.is_some(),
        Err(status) if status.code() == tonic::Code::NotFound => false,
        Err(status) => return Err(status.into()),
    };
    Ok(axum::Json(IsJoined { is_joined }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddMemberBody {
    channel_id: String,
    /// Someone else to add (admins only); absent means you join.
    user_id: Option<String>,
    /// Needed to join a private channel.
    invite_code: Option<String>,
}

/// Join a channel (as `member`; private channels need `inviteCode`), or, as an admin, add
/// another user. A `role` in the body is ignored: roles are granted by admins.
#[utoipa::path(post, path = "/api/members", tag = "members", request_body = AddMemberBody,
    responses((status = 201, body = MemberView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "already a member", body = ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    who: Authed,
    Json(body): Json<AddMemberBody>,
) -> ApiResult<(StatusCode, axum::Json<MemberView>)> {
    let mut channels = state.channels.clone();
    let member = match body.user_id.filter(|u| *u != who.user_id) {
        Some(user_id) => {
            let request = pb::AddMemberRequest {
                channel_id: body.channel_id,
                user_id,
            };
            channels
                .add_member(who.call(request))
                .await?
                .into_inner()
                .member
        }
        None => {
            let request = pb::JoinChannelRequest {
                channel_id: body.channel_id,
                invite_code: body.invite_code,
            };
            channels
                .join_channel(who.call(request))
                .await?
                .into_inner()
                .member
        }
    };
    Ok((StatusCode::CREATED, present(member, "member")?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleBody {
    /// `admin`, `moderator` or `member`.
    role: String,
}

/// Change a member's role (admins only); the last admin cannot demote themselves (409).
#[utoipa::path(patch, path = "/api/members/{channelId}/{userId}/role", tag = "members", request_body = RoleBody,
    responses((status = 200, body = MemberView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn change_role(
    State(state): State<AppState>,
    who: Authed,
    Path((channel_id, user_id)): Path<(String, String)>,
    Json(body): Json<RoleBody>,
) -> ApiResult<axum::Json<MemberView>> {
    let role = match body.role.as_str() {
        "admin" => pb::Role::Admin,
        "moderator" => pb::Role::Moderator,
        "member" => pb::Role::Member,
        _ => {
            return Err(ApiError::field(
                "role",
                "role must be admin, moderator or member",
            ));
        }
    };
    let request = pb::UpdateMemberRoleRequest {
        channel_id,
        user_id,
        role: role as i32,
    };
    let member = state
        .channels
        .clone()
        .update_member_role(who.call(request))
        .await?
        .into_inner()
        .member;
    present(member, "member")
}

/// Remove a member: yourself (leave) or, as an admin, anyone; the last admin cannot leave (409).
#[utoipa::path(delete, path = "/api/members/{channelId}/{userId}", tag = "members",
    responses((status = 200, body = Message), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    who: Authed,
    Path((channel_id, user_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Message>> {
    state
        .channels
        .clone()
        .remove_member(who.call(pb::RemoveMemberRequest {
            channel_id,
            user_id,
        }))
        .await?;
    Ok(axum::Json(Message {
        message: "Member removed successfully",
    }))
}

/// Leave a channel (the README's route).
#[utoipa::path(delete, path = "/api/members/{channelId}", tag = "members",
    responses((status = 200, body = Message), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn leave(
    State(state): State<AppState>,
    who: Authed,
    Path(channel_id): Path<String>,
) -> ApiResult<axum::Json<Message>> {
    let request = pb::RemoveMemberRequest {
        channel_id,
        user_id: who.user_id.clone(),
    };
    state
        .channels
        .clone()
        .remove_member(who.call(request))
        .await?;
    Ok(axum::Json(Message {
        message: "Member removed successfully",
    }))
}
