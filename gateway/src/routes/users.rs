//! `/api/users`: public profiles for any signed-in user; changes and deletion by the user only
//! (the rules live in accounts; this file maps HTTP to gRPC and back).

use axum::extract::{Path, Query, State};
use hilo_proto::accounts::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{LIMIT_MAX, nullable, query_number};
use crate::{
    app::AppState,
    auth::{self, Authed},
    error::{ApiError, ApiResult, ErrorBody, FieldError},
    json::Json,
    views::UserWithProfile,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(get_user, update_user, delete_user))
}

/// `limit`/`offset` as query text, so that bad values get a 400 naming the field.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// 1..100 (larger values are clamped); default 50.
    limit: Option<String>,
    /// Number of users to skip; default 0.
    offset: Option<String>,
}

impl Page {
    /// `(limit, offset)`: absent or empty means the default; non-numeric or negative is 400.
    pub fn parse(&self, default_limit: i64) -> ApiResult<(i64, i64)> {
        let limit = query_number("limit", self.limit.as_deref(), default_limit)?.min(LIMIT_MAX);
        let offset = query_number("offset", self.offset.as_deref(), 0)?;
        Ok((limit, offset))
    }
}

/// Users in creation order, paginated. Others' emails are never included.
#[utoipa::path(get, path = "/api/users", tag = "users", params(Page),
    responses((status = 200, body = Vec<UserWithProfile>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    who: Authed,
    Query(page): Query<Page>,
) -> ApiResult<axum::Json<Vec<UserWithProfile>>> {
    let (limit, offset) = page.parse(50)?;
    if limit == 0 {
        return Ok(axum::Json(Vec::new()));
    }
    let request = pb::ListUsersRequest {
        limit: limit as i32,
        offset: offset.min(i32::MAX.into()) as i32,
    };
    let users = state
        .accounts
        .clone()
        .list_users(who.call(request))
        .await?
        .into_inner()
        .users;
    let mut users: Vec<UserWithProfile> = users.into_iter().map(Into::into).collect();
    overlay_presence(&state, &mut users).await;
    Ok(axum::Json(users))
}

/// `profile.isOnline` comes from realtime's presence in Redis (a socket open on any replica),
/// not from accounts, which knows nothing of sockets.
async fn overlay_presence(state: &AppState, users: &mut [UserWithProfile]) {
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let online = hilo_kit::session::online(&state.redis, &ids).await;
    for (user, online) in users.iter_mut().zip(online) {
        if let Some(profile) = &mut user.profile {
            profile.is_online = online;
        }
    }
}

/// One user with their profile.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users",
    responses((status = 200, body = UserWithProfile), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<UserWithProfile>> {
    let user = state
        .accounts
        .clone()
        .get_user(who.call(pb::GetUserRequest { user_id: id }))
        .await?
        .into_inner()
        .user;
    let user: UserWithProfile = user
        .ok_or_else(|| ApiError::internal("get_user without a user"))?
        .into();
    let mut users = [user];
    overlay_presence(&state, &mut users).await;
    let [user] = users;
    Ok(axum::Json(user))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateUserBody {
    name: Option<String>,
    email: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    image: Option<Option<String>>,
    profile: Option<ProfileBody>,
    /// Not settable by clients: sending it is a 400.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    email_verified: Option<serde_json::Value>,
    /// Not settable by clients: sending it is a 400.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    role: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileBody {
    display_name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    banner_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    bio: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    age: Option<Option<i32>>,
    /// Derived from open sockets; not settable: sending it is a 400.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    is_online: Option<serde_json::Value>,
}

fn nullable_string(v: Option<Option<String>>) -> Option<pb::NullableString> {
    v.map(|value| pb::NullableString { value })
}

/// Change your own user and profile: only the fields sent change.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", request_body = UpdateUserBody,
    responses((status = 200, body = UserWithProfile), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "email already in use", body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
    Json(body): Json<UpdateUserBody>,
) -> ApiResult<axum::Json<UserWithProfile>> {
    let mut refused = Vec::new();
    for (field, sent) in [
        ("emailVerified", body.email_verified.is_some()),
        ("role", body.role.is_some()),
        (
            "profile.isOnline",
            body.profile.as_ref().is_some_and(|p| p.is_online.is_some()),
        ),
    ] {
        if sent {
            refused.push(FieldError {
                field: field.to_owned(),
                message: format!("{field} cannot be set by clients"),
            });
        }
    }
    if !refused.is_empty() {
        return Err(ApiError::validation(refused));
    }
    let request = pb::UpdateUserRequest {
        user_id: id,
        name: body.name,
        email: body.email,
        image: nullable_string(body.image),
        profile: body.profile.map(|p| pb::ProfilePatch {
            display_name: p.display_name,
            avatar_url: nullable_string(p.avatar_url),
            banner_url: nullable_string(p.banner_url),
            bio: nullable_string(p.bio),
            age: p.age.map(|value| pb::NullableInt32 { value }),
        }),
    };
    let user = state
        .accounts
        .clone()
        .update_user(who.call(request))
        .await?
        .into_inner()
        .user;
    Ok(axum::Json(
        user.ok_or_else(|| ApiError::internal("update_user without a user"))?
            .into(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    message: String,
}

/// Delete your own user; their sessions end with it.
#[utoipa::path(delete, path = "/api/users/{id}", tag = "users",
    responses((status = 200, body = Deleted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_user(
    State(state): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Deleted>> {
    state
        .accounts
        .clone()
        .delete_user(who.call(pb::DeleteUserRequest { user_id: id }))
        .await?;
    auth::forget(&state, &who.session_token).await;
    Ok(axum::Json(Deleted {
        message: "User deleted".to_owned(),
    }))
}
