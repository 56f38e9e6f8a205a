//! Better Auth's email routes, with its bodies, status codes and error codes, so Better Auth
//! clients work unchanged (docs/api.md §1.3).

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use hilo_kit::grpc;
use hilo_proto::accounts::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    auth::{self, check_callback, request_id},
    error::{ApiError, ApiResult, ErrorBody},
    json::Json,
    ratelimit,
    views::{AuthUser, SessionView},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_up))
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
        .routes(routes!(get_session))
        .routes(routes!(session))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignUpBody {
    pub name: String,
    pub email: String,
    pub password: String,
    pub image: Option<String>,
    #[serde(rename = "callbackURL")]
    pub callback_url: Option<String>,
    pub remember_me: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignUpReply {
    pub token: String,
    pub user: AuthUser,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInBody {
    pub email: String,
    pub password: String,
    #[serde(rename = "callbackURL")]
    pub callback_url: Option<String>,
    pub remember_me: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignInReply {
    pub redirect: bool,
    pub token: String,
    pub url: Option<String>,
    pub user: AuthUser,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionReply {
    pub session: SessionView,
    pub user: AuthUser,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignOutReply {
    pub success: bool,
}

/// Checks shared by sign-up and sign-in: CSRF origin, callback URL, rate limit.
async fn guard(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    scope: &str,
    callback: Option<&str>,
) -> ApiResult<pb::ClientInfo> {
    check_callback("callbackURL", callback, &state.trusted_origins)?;
    let ip = ratelimit::client_ip(headers, peer, state.proxy_hops);
    ratelimit::check(state, scope, ip).await?;
    Ok(pb::ClientInfo {
        ip_address: Some(ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    })
}

/// Register with email and password; signs in at once (session cookie).
#[utoipa::path(post, path = "/api/auth/sign-up/email", tag = "auth", request_body = SignUpBody,
    responses((status = 200, body = SignUpReply), (status = 400, body = ErrorBody),
              (status = 422, description = "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", body = ErrorBody),
              (status = 429, body = ErrorBody)))]
async fn sign_up(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<SignUpBody>,
) -> ApiResult<Response> {
    let client = guard(
        &state,
        &headers,
        peer,
        "sign-up",
        body.callback_url.as_deref(),
    )
    .await?;
    let request = pb::SignUpRequest {
        name: body.name,
        email: body.email,
        password: body.password,
        image: body.image,
        client: Some(client),
    };
    let reply = state
        .accounts
        .clone()
        .sign_up(grpc::request(
            request,
            None,
            request_id(&headers).as_deref(),
        ))
        .await
        .map_err(|status| {
            // Better Auth answers a taken email with 422, not 409.
            let taken = status.code() == tonic::Code::AlreadyExists;
            let error = ApiError::from(status);
            if taken {
                error.with_status(StatusCode::UNPROCESSABLE_ENTITY)
            } else {
                error
            }
        })?
        .into_inner();
    let user = reply
        .user
        .map(AuthUser::from)
        .ok_or_else(|| ApiError::internal("sign-up without a user"))?;
    let cookies = state
        .cookies
        .start(&reply.session_token, body.remember_me.unwrap_or(true));
    Ok(with_cookies(
        axum::Json(SignUpReply {
            token: reply.session_token,
            user,
        }),
        cookies,
        None,
    ))
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/api/auth/sign-in/email", tag = "auth", request_body = SignInBody,
    responses((status = 200, body = SignInReply),
              (status = 401, description = "INVALID_EMAIL_OR_PASSWORD", body = ErrorBody),
              (status = 429, body = ErrorBody)))]
async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<SignInBody>,
) -> ApiResult<Response> {
    let client = guard(
        &state,
        &headers,
        peer,
        "sign-in",
        body.callback_url.as_deref(),
    )
    .await?;
    let request = pb::SignInRequest {
        email: body.email,
        password: body.password,
        client: Some(client),
    };
    let reply = state
        .accounts
        .clone()
        .sign_in(grpc::request(
            request,
            None,
            request_id(&headers).as_deref(),
        ))
        .await?
        .into_inner();
    let user = reply
        .user
        .map(AuthUser::from)
        .ok_or_else(|| ApiError::internal("sign-in without a user"))?;
    let cookies = state
        .cookies
        .start(&reply.session_token, body.remember_me.unwrap_or(true));
    let url = body.callback_url.filter(|u| !u.is_empty());
    let location = url.clone();
    let reply = SignInReply {
        redirect: url.is_some(),
        token: reply.session_token,
        url,
        user,
    };
    Ok(with_cookies(axum::Json(reply), cookies, location))
}

/// End the current session and clear the cookies.
#[utoipa::path(post, path = "/api/auth/sign-out", tag = "auth",
    responses((status = 200, body = SignOutReply),
              (status = 400, description = "FAILED_TO_GET_SESSION: no session sent", body = ErrorBody)))]
async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let token = state.cookies.token(&headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "FAILED_TO_GET_SESSION",
            "Failed to get session",
        )
    })?;
    let rid = request_id(&headers);
    // Revoking needs the session's own access token; an already dead session is simply gone.
    if let Some(exchanged) = auth::exchange(&state, &token, rid.as_deref()).await? {
        let request = grpc::request(
            pb::SignOutRequest {},
            Some(&exchanged.access_token),
            rid.as_deref(),
        );
        state.accounts.clone().sign_out(request).await?;
    }
    auth::forget(&state, &token).await;
    Ok(with_cookies(
        axum::Json(SignOutReply { success: true }),
        state.cookies.clear(),
        None,
    ))
}

/// The current session and user, or `null` (200) without a valid session.
#[utoipa::path(get, path = "/api/auth/get-session", tag = "auth",
    responses((status = 200, description = "`{ session, user }` or `null`", body = Option<SessionReply>)))]
async fn get_session(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let Some(token) = state.cookies.token(&headers) else {
        return Ok(axum::Json(serde_json::Value::Null).into_response());
    };
    let Some(found) = auth::exchange(&state, &token, request_id(&headers).as_deref()).await? else {
        return Ok(axum::Json(serde_json::Value::Null).into_response());
    };
    let (Some(session), Some(user)) = (found.session, found.user) else {
        return Err(ApiError::internal("exchange without session or user"));
    };
    let reply = SessionReply {
        session: SessionView::new(session, &token),
        user: user.into(),
    };
    // A session whose expiry just slid forward gets a fresh cookie, as Better Auth does.
    let cookies = if found.refreshed && headers.contains_key(header::COOKIE) {
        state.cookies.start(&token, true)
    } else {
        Vec::new()
    };
    Ok(with_cookies(axum::Json(reply), cookies, None))
}

/// The README's name for `get-session`.
#[utoipa::path(get, path = "/api/auth/session", tag = "auth",
    responses((status = 200, description = "`{ session, user }` or `null`", body = Option<SessionReply>)))]
async fn session(state: State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    get_session(state, headers).await
}

fn with_cookies(
    body: impl IntoResponse,
    cookies: Vec<HeaderValue>,
    location: Option<String>,
) -> Response {
    let mut response = body.into_response();
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
