//! Better Auth's account routes: the signed-in user's ways to sign in (`list-accounts`) and
//! unlinking one of them (`unlink-account`); the rules live in accounts.

use axum::extract::State;
use hilo_proto::accounts::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    auth::Authed,
    error::{ApiResult, ErrorBody},
    json::Json,
    views::iso,
};

/// The account routes, documented in the OpenAPI document.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts))
        .routes(routes!(unlink_account))
}

/// One way to sign in, as Better Auth lists it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub id: String,
    /// `credential` (password), `github` or `google`.
    pub provider_id: String,
    pub account_id: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The signed-in user's ways to sign in.
#[utoipa::path(get, path = "/api/auth/list-accounts", tag = "auth",
    responses((status = 200, body = Vec<AccountView>), (status = 401, body = ErrorBody)))]
async fn list_accounts(
    State(state): State<AppState>,
    who: Authed,
) -> ApiResult<axum::Json<Vec<AccountView>>> {
    let identities = state
        .accounts
        .clone()
        .list_identities(who.call(pb::ListIdentitiesRequest {}))
        .await?
        .into_inner()
        .identities;
    let accounts = identities
        .into_iter()
        .map(|i| AccountView {
            id: i.id,
            provider_id: i.provider_id,
            account_id: i.account_id,
            user_id: i.user_id,
            scopes: i.scopes,
            created_at: iso(i.create_time),
            updated_at: iso(i.update_time),
        })
        .collect();
    Ok(axum::Json(accounts))
}

/// Which identity to unlink (Better Auth's `unlinkAccount` body).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnlinkBody {
    pub provider_id: String,
    /// Which account of that provider, when the user has several.
    pub account_id: Option<String>,
}

/// Better Auth's answer to an unlink.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnlinkReply {
    pub status: bool,
}

/// Unlink one of the user's ways to sign in; never the last one.
#[utoipa::path(post, path = "/api/auth/unlink-account", tag = "auth", request_body = UnlinkBody,
    responses((status = 200, body = UnlinkReply),
              (status = 400, description = "FAILED_TO_UNLINK_LAST_ACCOUNT or ACCOUNT_NOT_FOUND", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn unlink_account(
    State(state): State<AppState>,
    who: Authed,
    Json(body): Json<UnlinkBody>,
) -> ApiResult<axum::Json<UnlinkReply>> {
    let request = pb::UnlinkIdentityRequest {
        provider_id: body.provider_id,
        account_id: body.account_id,
    };
    state
        .accounts
        .clone()
        .unlink_identity(who.call(request))
        .await?;
    Ok(axum::Json(UnlinkReply { status: true }))
}
