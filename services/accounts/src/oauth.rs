//! Sign-in with an OAuth provider, with Better Auth's rules and error codes (docs/api.md §1.3),
//! and the listing and unlinking of a user's identities.
//!
//! The state of a sign-in in flight lives in the accounts database (`oauth_states`), not in
//! Redis: accounts owns PostgreSQL already, a `DELETE ... RETURNING` makes single use atomic
//! across replicas, and the row sits next to the users it will create. The state sent to the
//! provider is `<id>.<secret>`: the row is found by id, the secret's hash compared in constant
//! time, and the row deleted by the first callback that presents it, matching or not.

use chrono::{Duration, Utc};
use hilo_kit::{
    auth::Caller,
    session,
    validate::{self, Invalid},
};
use hilo_proto::accounts::v1::{self as pb, finish_social_sign_in_response::Outcome};
use oauth2::PkceCodeChallenge;
use subtle::ConstantTimeEq as _;

use crate::{
    db::{
        self, NewUser,
        identities::{self as sql, IdentityRow, OAuthStateRow},
    },
    error::{Error, Result},
    input,
    providers::ProviderUser,
    rpc::{AccountsRpc, announce_revoked, open_session, session_pb, timestamp},
    tokens,
};

/// How long a started sign-in may take (Better Auth's 10 minutes).
const STATE_TTL: Duration = Duration::minutes(10);
/// Longest `state` or `code` taken from a callback (they come from the browser).
const PARAM_MAX: usize = 2048;

fn refused(code: &str) -> Error {
    Error::OAuth(code.to_owned())
}

impl AccountsRpc {
    /// Keeps a new state with its PKCE verifier and returns the provider's authorization URL.
    pub(crate) async fn start_social(
        &self,
        req: pb::StartSocialSignInRequest,
    ) -> Result<pb::StartSocialSignInResponse> {
        let provider = self
            .providers
            .get(&req.provider)
            .ok_or(Error::ProviderNotFound)?;
        let base = validate::http_url("baseUrl", &req.base_url)?;
        // The caller's word is not taken for where the user comes back: the base and the
        // callbacks must be this installation's (the gateway checks them too).
        let trusted = &self.trusted_origins;
        let base_origin = url::Url::parse(&base).map(|u| u.origin().ascii_serialization());
        if !base_origin.is_ok_and(|origin| session::is_trusted(&origin, trusted)) {
            return Err(Invalid::field("INVALID_BASEURL", "baseUrl", "Invalid baseUrl").into());
        }
        let mut v = validate::Violations::default();
        for (field, url) in [
            ("callbackURL", Some(&req.callback_url)),
            ("errorCallbackURL", req.error_callback_url.as_ref()),
            ("newUserCallbackURL", req.new_user_callback_url.as_ref()),
        ] {
            if url.is_some_and(|u| u.is_empty() || u.len() > validate::URL_MAX) {
                v.push(field, format!("{field} must be 1 to 2048 characters"));
            } else if url.is_some_and(|u| !session::callback_allowed(u, trusted)) {
                v.push(field, format!("Invalid {field}"));
            }
        }
        v.finish()?;

        let redirect_uri = format!(
            "{}/api/auth/callback/{}",
            base.trim_end_matches('/'),
            provider.id()
        );
        let (id, secret) = (tokens::random_id(), tokens::random_id());
        let state = format!("{id}.{secret}");
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let authorization_url =
            self.providers
                .authorize_url(provider, &redirect_uri, &state, challenge)?;
        sql::delete_expired_oauth_states(&self.pool).await?;
        let row = OAuthStateRow {
            id,
            secret_hash: tokens::hash_token(&secret),
            provider_id: provider.id().to_owned(),
            code_verifier: verifier.secret().clone(),
            redirect_uri,
            callback_url: req.callback_url,
            error_callback_url: req.error_callback_url,
            new_user_callback_url: req.new_user_callback_url,
            expires_at: Utc::now() + STATE_TTL,
        };
        sql::insert_oauth_state(&self.pool, &row).await?;
        Ok(pb::StartSocialSignInResponse {
            authorization_url,
            state,
        })
    }

    /// Consumes the state, then signs the user in, or says why not (for the error redirect).
    pub(crate) async fn finish_social(
        &self,
        req: pb::FinishSocialSignInRequest,
    ) -> Result<pb::FinishSocialSignInResponse> {
        let flow = self.take_state(&req.provider, &req.state).await?;
        let outcome = match self.sign_in_with(&flow, req).await {
            Ok(signed_in) => Outcome::SignedIn(Box::new(signed_in)),
            Err(Error::OAuth(code)) => {
                tracing::info!(provider = flow.provider_id, code, "social sign-in refused");
                Outcome::Error(code)
            }
            Err(other) => return Err(other),
        };
        Ok(pb::FinishSocialSignInResponse {
            callback_url: flow.callback_url,
            error_callback_url: flow.error_callback_url,
            new_user_callback_url: flow.new_user_callback_url,
            outcome: Some(outcome),
        })
    }

    /// The started sign-in `state` names, deleted so it cannot be used again. Unknown or
    /// expired: `please_restart_the_process`; wrong secret or provider: `state_mismatch`.
    async fn take_state(&self, provider: &str, state: &str) -> Result<OAuthStateRow> {
        let restart = || refused("please_restart_the_process");
        let (id, secret) = state
            .split_once('.')
            .filter(|_| state.len() <= PARAM_MAX)
            .ok_or_else(restart)?;
        let row = sql::take_oauth_state(&self.pool, id)
            .await?
            .ok_or_else(restart)?;
        let presented = tokens::hash_token(secret);
        let matches = bool::from(presented.as_bytes().ct_eq(row.secret_hash.as_bytes()));
        if !matches || row.provider_id != provider {
            tracing::warn!(provider, "social sign-in with a mismatched state");
            return Err(refused("state_mismatch"));
        }
        if row.expires_at <= Utc::now() {
            return Err(restart());
        }
        Ok(row)
    }

    async fn sign_in_with(
        &self,
        flow: &OAuthStateRow,
        req: pb::FinishSocialSignInRequest,
    ) -> Result<pb::SocialSignedIn> {
        if let Some(error) = req.error.as_deref().filter(|e| !e.is_empty()) {
            return Err(refused(&provider_error(error)));
        }
        if req.code.is_empty() {
            return Err(refused("no_code"));
        }
        if req.code.len() > PARAM_MAX {
            return Err(refused("invalid_code"));
        }
        let provider = self
            .providers
            .get(&flow.provider_id)
            .ok_or_else(|| refused("oauth_provider_not_found"))?;
        let grant = self
            .providers
            .exchange(
                provider,
                req.code,
                flow.code_verifier.clone(),
                &flow.redirect_uri,
            )
            .await
            .map_err(|error| {
                tracing::warn!(
                    provider = provider.id(),
                    error = format!("{error:#}"),
                    "code exchange failed"
                );
                refused("invalid_code")
            })?;
        let info = self
            .providers
            .user(provider, &grant)
            .await
            .map_err(|error| {
                tracing::warn!(
                    provider = provider.id(),
                    error = format!("{error:#}"),
                    "reading the provider's user failed"
                );
                refused("unable_to_get_user_info")
            })?;
        let (user_id, new_user) = self
            .find_or_create(provider.id(), &info, &grant.scope)
            .await?;
        let (token, session) = open_session(&self.pool, &user_id, req.client).await?;
        let user = self.user(&user_id, &user_id).await?;
        tracing::info!(
            user_id,
            provider = provider.id(),
            new_user,
            "signed in with a provider"
        );
        Ok(pb::SocialSignedIn {
            session_token: token,
            session: Some(session_pb(&session)),
            user: Some(user),
            new_user,
        })
    }

    /// `(user id, created)`. A linked identity signs its user in. Otherwise the provider's
    /// email must be verified: it then links to the user with that email, or creates one (with
    /// its profile). An unverified email could be anyone's, so it neither links (Better Auth's
    /// `account_not_linked`) nor claims a new account (`email_not_verified`).
    ///
    /// Linking to a user whose email was never verified hands the account to the email's
    /// proven owner: whoever typed the address first (a squatter waiting for the owner to
    /// arrive) loses the password they set and every session they hold.
    async fn find_or_create(
        &self,
        provider: &str,
        info: &ProviderUser,
        scope: &str,
    ) -> Result<(String, bool)> {
        let mut tx = self.pool.begin().await?;
        if let Some(user_id) =
            sql::touch_identity(&mut *tx, provider, &info.account_id, scope).await?
        {
            tx.commit().await?;
            return Ok((user_id, false));
        }
        let email = info
            .email
            .as_deref()
            .and_then(|e| input::email("email", e).ok())
            .ok_or_else(|| refused("email_not_found"))?;
        let (user_id, created) = match sql::find_user_by_email(&mut *tx, &email).await? {
            Some(_) if !info.email_verified => return Err(refused("account_not_linked")),
            Some((user_id, verified)) => {
                if !verified {
                    let revoked = sql::drop_unproven_access(&mut tx, &user_id).await?;
                    for session_id in &revoked {
                        announce_revoked(&mut tx, session_id, &user_id).await?;
                    }
                    sql::mark_email_verified(&mut *tx, &user_id).await?;
                    tracing::warn!(
                        user_id,
                        sessions = revoked.len(),
                        "unverified account claimed by its email's owner: password and sessions removed"
                    );
                }
                (user_id, false)
            }
            None if !info.email_verified => return Err(refused("email_not_verified")),
            None => {
                let user_id = tokens::random_id();
                let name = new_user_name(info.name.as_deref(), &email);
                let image = info
                    .image
                    .as_deref()
                    .filter(|i| validate::http_url("image", i).is_ok());
                let new = NewUser {
                    id: &user_id,
                    email: &email,
                    name: &name,
                    image,
                };
                db::insert_user(&mut *tx, &new)
                    .await
                    .map_err(|e| conflict(e, "unable_to_create_user"))?;
                sql::mark_email_verified(&mut *tx, &user_id).await?;
                db::insert_profile(&mut *tx, &new).await?;
                (user_id, true)
            }
        };
        let id = tokens::random_id();
        sql::insert_oauth_identity(&mut *tx, &id, &user_id, provider, &info.account_id, scope)
            .await
            .map_err(|e| conflict(e, "unable_to_link_account"))?;
        tx.commit().await?;
        self.relay.wake();
        Ok((user_id, created))
    }

    /// The caller's identities.
    pub(crate) async fn identities(&self, caller: Caller) -> Result<pb::ListIdentitiesResponse> {
        let rows = sql::list_identities(&self.pool, &caller.user_id).await?;
        Ok(pb::ListIdentitiesResponse {
            identities: rows.into_iter().map(identity_pb).collect(),
        })
    }

    /// Removes one of the caller's identities, never the last (Better Auth's checks, in its
    /// order). The user row is locked so concurrent unlinks cannot remove the last one.
    pub(crate) async fn unlink(
        &self,
        caller: Caller,
        req: pb::UnlinkIdentityRequest,
    ) -> Result<pb::UnlinkIdentityResponse> {
        let mut tx = self.pool.begin().await?;
        if !sql::lock_user(&mut *tx, &caller.user_id).await? {
            return Err(Error::UserNotFound(caller.user_id));
        }
        let identities = sql::list_identities(&mut *tx, &caller.user_id).await?;
        if identities.len() <= 1 {
            return Err(Error::LastIdentity);
        }
        let target = identities
            .iter()
            .find(|i| {
                i.provider_id == req.provider_id
                    && req.account_id.as_ref().is_none_or(|a| *a == i.account_id)
            })
            .ok_or(Error::IdentityNotFound)?;
        sql::delete_identity(&mut *tx, &target.id).await?;
        tx.commit().await?;
        tracing::info!(
            user_id = caller.user_id,
            provider = target.provider_id,
            "identity unlinked"
        );
        Ok(pb::UnlinkIdentityResponse {})
    }
}

/// A unique violation means a concurrent sign-in created the same user or link first.
fn conflict(error: sqlx::Error, code: &str) -> Error {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => refused(code),
        _ => error.into(),
    }
}

/// The provider's `error` parameter, kept only when it looks like an OAuth error code, since it
/// ends up in a redirect URL and in logs.
fn provider_error(error: &str) -> String {
    let plain = error.len() <= 64
        && error
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        error.to_owned()
    } else {
        "invalid_callback_request".to_owned()
    }
}

/// The name of a new user: the provider's, else the email (Better Auth), within the name limit.
fn new_user_name(name: Option<&str>, email: &str) -> String {
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(email);
    name.chars().take(input::NAME_MAX).collect()
}

fn identity_pb(row: IdentityRow) -> pb::Identity {
    pb::Identity {
        scopes: row
            .scope
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        id: row.id,
        user_id: row.user_id,
        provider_id: row.provider_id,
        account_id: row.account_id,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_errors_are_kept_only_when_plain_codes() {
        assert_eq!(provider_error("access_denied"), "access_denied");
        assert_eq!(provider_error("<script>"), "invalid_callback_request");
        assert_eq!(provider_error(&"a".repeat(65)), "invalid_callback_request");
    }

    #[test]
    fn new_users_are_named_by_the_provider_else_by_their_email() {
        assert_eq!(new_user_name(Some(" Ada "), "a@x.io"), "Ada");
        assert_eq!(new_user_name(Some("  "), "a@x.io"), "a@x.io");
        assert_eq!(new_user_name(None, "a@x.io"), "a@x.io");
        assert_eq!(
            new_user_name(Some(&"n".repeat(300)), "a@x.io").len(),
            input::NAME_MAX
        );
    }

    #[test]
    fn stored_scopes_are_listed_one_by_one() {
        let now = Utc::now();
        let row = |scope: Option<&str>| IdentityRow {
            id: "i".to_owned(),
            user_id: "u".to_owned(),
            provider_id: "github".to_owned(),
            account_id: "1".to_owned(),
            scope: scope.map(str::to_owned),
            created_at: now,
            updated_at: now,
        };
        assert_eq!(
            identity_pb(row(Some("read:user,user:email"))).scopes,
            ["read:user", "user:email"]
        );
        assert!(identity_pb(row(None)).scopes.is_empty());
    }
}
