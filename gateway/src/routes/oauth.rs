//! Better Auth's social sign-in (docs/api.md §1.3): start with
//! `POST /api/auth/sign-in/social` (or the README's `GET /api/auth/sign-in/{provider}`) and
//! come back at `/api/auth/callback/{provider}`. Accounts runs the OAuth flow; this file checks
//! callback URLs, binds each flow to the browser that started it (a signed state cookie, as
//! Better Auth does; an app hands it to the system browser through the Expo authorization
//! proxy), maps HTTP to gRPC and redirects.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use hilo_kit::grpc;
use hilo_proto::accounts::v1::{self as pb, finish_social_sign_in_response::Outcome};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    auth::{check_callback, request_id},
    error::{ApiError, ApiResult, ErrorBody},
    json::Json,
    ratelimit,
};

/// The social sign-in routes, documented in the OpenAPI document.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in_social))
        .routes(routes!(sign_in_redirect))
        .routes(routes!(callback))
        .routes(routes!(expo_authorization_proxy))
        .routes(routes!(error_page))
}

/// Where the browser goes after a social sign-in; every URL must be a relative path or on a
/// trusted origin (else 403, as Better Auth answers).
#[derive(Debug, Default, Deserialize, ToSchema, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CallbackUrls {
    /// After signing in; default: BETTER_AUTH_URL.
    #[serde(rename = "callbackURL")]
    pub callback_url: Option<String>,
    /// On failure, with `?error=<code>`; default: `/api/auth/error`.
    #[serde(rename = "errorCallbackURL")]
    pub error_callback_url: Option<String>,
    /// After signing in as a new user; default: callbackURL.
    #[serde(rename = "newUserCallbackURL")]
    pub new_user_callback_url: Option<String>,
}

/// Better Auth's `signIn.social` body (its `idToken`, `scopes` and `loginHint` are not supported).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SocialBody {
    /// `github` or `google`.
    pub provider: String,
    #[serde(flatten)]
    pub urls: CallbackUrls,
    /// Answer the URL without a `Location` header (the client navigates itself).
    pub disable_redirect: Option<bool>,
}

/// Better Auth's answer: the URL to send the browser to.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocialReply {
    /// The provider's authorization URL.
    pub url: String,
    pub redirect: bool,
}

/// A started sign-in: the provider's URL, and the `Set-Cookie` binding it to this browser.
struct Started {
    url: String,
    state_cookie: Option<HeaderValue>,
}

/// Checks the callback URLs, counts the attempt, and asks accounts for the provider's URL.
/// The URL is remembered for the flow's lifetime, so the Expo proxy redirects to it only.
async fn start(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    provider: String,
    urls: CallbackUrls,
) -> ApiResult<Started> {
    let trusted = &state.trusted_origins;
    check_callback("callbackURL", urls.callback_url.as_deref(), trusted)?;
    check_callback(
        "errorCallbackURL",
        urls.error_callback_url.as_deref(),
        trusted,
    )?;
    check_callback(
        "newUserCallbackURL",
        urls.new_user_callback_url.as_deref(),
        trusted,
    )?;
    let ip = ratelimit::client_ip(headers, peer, state.proxy_hops);
    ratelimit::check(state, "sign-in-social", ip).await?;
    let given = |url: Option<String>| url.filter(|u| !u.is_empty());
    let request = pb::StartSocialSignInRequest {
        provider,
        base_url: state.base_url.clone(),
        callback_url: given(urls.callback_url).unwrap_or_else(|| state.base_url.clone()),
        error_callback_url: given(urls.error_callback_url),
        new_user_callback_url: given(urls.new_user_callback_url),
    };
    let reply = state
        .accounts
        .clone()
        .start_social_sign_in(grpc::request(request, None, request_id(headers).as_deref()))
        .await?
        .into_inner();
    let mut redis = state.redis.clone();
    let remembered: redis::RedisResult<()> = redis::AsyncCommands::set_ex(
        &mut redis,
        proxy_key(&reply.state),
        &reply.authorization_url,
        STATE_SECS,
    )
    .await;
    if let Err(error) = remembered {
        // Only the Expo proxy needs it; browsers that started here still sign in.
        tracing::warn!(%error, "could not remember the authorization URL");
    }
    Ok(Started {
        url: reply.authorization_url,
        state_cookie: state.cookies.bind_oauth_state(&reply.state),
    })
}

/// How long a started sign-in lives (accounts' state and the state cookie alike).
const STATE_SECS: u64 = 600;

/// The Redis key of a started flow's authorization URL (by the state's digest).
fn proxy_key(oauth_state: &str) -> String {
    format!(
        "hilo:gw:oauth:{}",
        hilo_kit::session::hex_digest(oauth_state)
    )
}

/// Start signing in with GitHub or Google: answers the provider's authorization URL.
#[utoipa::path(post, path = "/api/auth/sign-in/social", tag = "auth", request_body = SocialBody,
    responses((status = 200, body = SocialReply, description = "`Location` is set unless `disableRedirect`"),
              (status = 403, description = "INVALID_CALLBACKURL (etc.): untrusted callback URL", body = ErrorBody),
              (status = 404, description = "PROVIDER_NOT_FOUND", body = ErrorBody),
              (status = 429, body = ErrorBody)))]
async fn sign_in_social(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<SocialBody>,
) -> ApiResult<Response> {
    let Started { url, state_cookie } =
        start(&state, &headers, peer, body.provider, body.urls).await?;
    let redirect = !body.disable_redirect.unwrap_or(false);
    let mut response = axum::Json(SocialReply {
        url: url.clone(),
        redirect,
    })
    .into_response();
    if redirect && let Ok(location) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(cookie) = state_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The README's sign-in links: redirect (302) to GitHub's or Google's authorization page.
#[utoipa::path(get, path = "/api/auth/sign-in/{provider}", tag = "auth",
    params(("provider" = String, Path, description = "`github` or `google`"), CallbackUrls),
    responses((status = 302, description = "To the provider's authorization page"),
              (status = 403, body = ErrorBody),
              (status = 404, description = "PROVIDER_NOT_FOUND", body = ErrorBody),
              (status = 429, body = ErrorBody)))]
async fn sign_in_redirect(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Query(urls): Query<CallbackUrls>,
) -> ApiResult<Response> {
    let started = start(&state, &headers, peer, provider, urls).await?;
    Ok(redirect(
        &started.url,
        started.state_cookie.into_iter().collect(),
    ))
}

/// The Expo plugin's proxy query: the authorization URL an app got from `sign-in/social`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProxyQuery {
    #[serde(rename = "authorizationURL")]
    pub authorization_url: Option<String>,
}

/// Better Auth's Expo authorization proxy: an app that started a social sign-in opens this in
/// the system browser, which gets the flow's state cookie and goes on to the provider. Only
/// an authorization URL this gateway handed out (for a live flow) is followed.
#[utoipa::path(get, path = "/api/auth/expo-authorization-proxy", tag = "auth", params(ProxyQuery),
    responses((status = 302, description = "To the provider, with the state cookie set"),
              (status = 400, description = "INVALID_AUTHORIZATION_URL: not a URL of a live sign-in", body = ErrorBody)))]
async fn expo_authorization_proxy(
    State(state): State<AppState>,
    query: Result<Query<ProxyQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_AUTHORIZATION_URL",
            "Not the authorization URL of a sign-in in progress",
        )
    };
    let url = query
        .ok()
        .and_then(|Query(q)| q.authorization_url)
        .ok_or_else(invalid)?;
    let oauth_state = url::Url::parse(&url)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
        })
        .ok_or_else(invalid)?;
    let mut redis = state.redis.clone();
    let remembered: Option<String> = redis::AsyncCommands::get(&mut redis, proxy_key(&oauth_state))
        .await
        .map_err(|error| {
            tracing::warn!(%error, "authorization URLs unavailable");
            ApiError::unavailable()
        })?;
    if remembered.as_deref() != Some(url.as_str()) {
        return Err(invalid());
    }
    let cookie = state.cookies.bind_oauth_state(&oauth_state);
    Ok(redirect(&url, cookie.into_iter().collect()))
}

/// What a provider sends back.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set instead of `code` when the user declined or the provider failed (its
    /// `error_description` is not passed on: it is free text from the provider).
    pub error: Option<String>,
}

/// The providers' redirect URI: finishes the sign-in, sets the session cookie and redirects
/// to the callback URL (the new-user one for a new user), or to the error URL with `?error=`.
#[utoipa::path(get, path = "/api/auth/callback/{provider}", tag = "auth",
    params(("provider" = String, Path, description = "`github` or `google`"), CallbackQuery),
    responses((status = 302, description = "To the client's callback URL (session cookie set; \
        for a trusted app scheme such as `exp://` the cookie is also in a `cookie` parameter), \
        or to its error URL with `?error=<code>`")))]
async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let default_error = format!("{}/api/auth/error", state.base_url);
    // Whatever happens, the flow's state cookie has served.
    let cleared: Vec<HeaderValue> = state.cookies.clear_oauth_state().into_iter().collect();
    let fail = |url: &str, code: &str| redirect(&with_query(url, "error", code), cleared.clone());
    let Ok(Query(query)) = query else {
        return Ok(fail(&default_error, "invalid_callback_request"));
    };
    let Some(oauth_state) = query.state.filter(|s| !s.is_empty()) else {
        return Ok(fail(&default_error, "state_not_found"));
    };
    // Only the browser that started the flow may finish it (Better Auth's state cookie). The
    // state stays usable for that browser: a stranger's attempt does not consume it.
    let bound = state.cookies.oauth_state(&headers).is_some_and(|started| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            started.as_bytes(),
            oauth_state.as_bytes(),
        ))
    });
    if !bound {
        return Ok(fail(&default_error, "state_mismatch"));
    }
    let ip = ratelimit::client_ip(&headers, peer, state.proxy_hops);
    let request = pb::FinishSocialSignInRequest {
        provider,
        state: oauth_state,
        code: query.code.unwrap_or_default(),
        error: query.error,
        client: Some(pb::ClientInfo {
            ip_address: Some(ip.to_string()),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }),
    };
    let rid = request_id(&headers);
    let reply = match state
        .accounts
        .clone()
        .finish_social_sign_in(grpc::request(request, None, rid.as_deref()))
        .await
    {
        Ok(reply) => reply.into_inner(),
        Err(status) => {
            // A refused state: no client URL can be trusted, so Better Auth's error page.
            let error = ApiError::from(status);
            if error.status.is_server_error() {
                return Err(error);
            }
            return Ok(fail(&default_error, &error.body.code.to_lowercase()));
        }
    };
    match reply.outcome {
        Some(Outcome::SignedIn(signed_in)) => {
            let target = match reply.new_user_callback_url {
                Some(url) if signed_in.new_user => url,
                _ => reply.callback_url,
            };
            let cookies = state.cookies.start(&signed_in.session_token, true);
            let target = app_redirect(target, &cookies, &state.trusted_origins);
            Ok(redirect(&target, [cookies, cleared].concat()))
        }
        Some(Outcome::Error(code)) => {
            let url = reply.error_callback_url.unwrap_or(default_error);
            Ok(fail(&url, &code))
        }
        None => Err(ApiError::internal(
            "social sign-in finished without an outcome",
        )),
    }
}

/// The error code a failed sign-in was redirected with.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErrorQuery {
    pub error: Option<String>,
}

/// Where failed social sign-ins land when the client gave no error URL (Better Auth's page).
#[utoipa::path(get, path = "/api/auth/error", tag = "auth", params(ErrorQuery),
    responses((status = 200, description = "A short HTML page naming the error code", content_type = "text/html")))]
async fn error_page(query: Result<Query<ErrorQuery>, QueryRejection>) -> Html<String> {
    let code = query
        .ok()
        .and_then(|Query(q)| q.error)
        .filter(|c| {
            c.len() <= 64
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .unwrap_or_else(|| "unknown".to_owned());
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head>\
         <body><h1>Sign-in failed</h1><p>Error: <code>{code}</code></p>\
         <p>Please go back and try again.</p></body></html>"
    ))
}

/// Characters escaped in a `Location`: controls, space and non-ASCII (not valid in headers).
const LOCATION: &AsciiSet = &CONTROLS.add(b' ');

/// A 302 to `location` that sets `cookies`.
fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let location = utf8_percent_encode(location, LOCATION).to_string();
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `url` with `key=value` (form-encoded) added to its query, before any fragment. Works on
/// relative paths and app schemes alike, as Better Auth's string concatenation does.
fn with_query(url: &str, key: &str, value: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let pair = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(key, value)
        .finish();
    let separator = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{separator}{pair}");
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Better Auth's expo plugin: a redirect to a trusted app scheme (`exp://...`) also carries the
/// `Set-Cookie` value in a `cookie` parameter, since the app cannot read the browser's cookies.
fn app_redirect(target: String, cookies: &[HeaderValue], trusted: &[String]) -> String {
    let to_app = trusted
        .iter()
        .any(|t| !t.starts_with("http") && target.starts_with(t.as_str()));
    if !to_app {
        return target;
    }
    let cookie = cookies
        .iter()
        .filter_map(|c| c.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    with_query(&target, "cookie", &cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_added_before_the_fragment() {
        assert_eq!(with_query("/err", "error", "no_code"), "/err?error=no_code");
        assert_eq!(
            with_query("https://a.io/x?y=1#top", "error", "a b&c"),
            "https://a.io/x?y=1&error=a+b%26c#top"
        );
    }

    #[test]
    fn only_trusted_app_schemes_get_the_cookie_in_the_url() {
        let trusted = vec!["http://localhost:8081".to_owned(), "exp://".to_owned()];
        let cookies = vec![HeaderValue::from_static(
            "better-auth.session_token=t.s; Path=/",
        )];
        let web = app_redirect("http://localhost:8081/home".to_owned(), &cookies, &trusted);
        assert_eq!(web, "http://localhost:8081/home");
        let app = app_redirect("exp://10.0.0.2:8081/--/home".to_owned(), &cookies, &trusted);
        let url = url::Url::parse(&app).unwrap();
        let cookie = url.query_pairs().find(|(k, _)| k == "cookie").unwrap().1;
        assert_eq!(cookie, "better-auth.session_token=t.s; Path=/");
        let other = app_redirect("myapp://x".to_owned(), &cookies, &trusted);
        assert_eq!(other, "myapp://x");
    }

    #[test]
    fn locations_are_made_header_safe() {
        let response = redirect("/bienvenue café", Vec::new());
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(
            response.headers()[header::LOCATION],
            "/bienvenue%20caf%C3%A9"
        );
    }
}
