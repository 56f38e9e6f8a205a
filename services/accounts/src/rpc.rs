//! The accounts gRPC service: one short method per RPC holding the rules; SQL is in `db`.

use chrono::{DateTime, Duration, Utc};
use hilo_kit::{
    auth::{Caller, TokenVerifier},
    config::RateLimit,
    grpc::reply,
    outbox::{self, Relay},
    validate::{self, Invalid, Violations},
};
use hilo_proto::{
    accounts::v1::{self as pb, accounts_service_server::AccountsService},
    subjects,
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::{
    config::Throttle,
    db::{self, NewUser, ProfilePatch, SessionRow, UserPatch, UserRow},
    error::{Error, Result},
    input, password,
    providers::Providers,
    tokens::{self, Signer},
};

/// Sessions last 7 days from their last extension...
const SESSION_TTL: Duration = Duration::days(7);
/// ...and are extended at most once a day (Better Auth's `updateAge`).
const SESSION_UPDATE_AGE: Duration = Duration::days(1);
const LIST_DEFAULT: i32 = 50;
const LIST_MAX: i32 = 100;

/// State of the accounts service; cheap to clone (pool and keys are shared).
#[derive(Clone)]
pub struct AccountsRpc {
    pub pool: PgPool,
    pub signer: std::sync::Arc<Signer>,
    pub verifier: TokenVerifier,
    pub providers: std::sync::Arc<Providers>,
    /// Publishes the outbox (session revoked, user deleted) after each commit.
    pub relay: Relay,
    /// Where a social sign-in may come back to (its base and callback URLs).
    pub trusted_origins: std::sync::Arc<[String]>,
    /// AUTH_THROTTLE.
    pub throttle: Throttle,
}

/// Who is signing in, for the per-caller budget: the end client's address the gateway passes
/// on, else the calling peer's.
fn caller_address<T>(r: &Request<T>, client: Option<&pb::ClientInfo>) -> String {
    client
        .and_then(|c| c.ip_address.clone())
        .filter(|ip| !ip.is_empty())
        .or_else(|| r.remote_addr().map(|a| a.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The gRPC surface: authenticate the caller where the RPC needs one, then run the rule.
#[tonic::async_trait]
impl AccountsService for AccountsRpc {
    async fn sign_up(
        &self,
        r: Request<pb::SignUpRequest>,
    ) -> Result<Response<pb::SignUpResponse>, Status> {
        let caller = caller_address(&r, r.get_ref().client.as_ref());
        reply(self.register(r.into_inner(), &caller).await)
    }

    async fn sign_in(
        &self,
        r: Request<pb::SignInRequest>,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let caller = caller_address(&r, r.get_ref().client.as_ref());
        reply(self.authenticate(r.into_inner(), &caller).await)
    }

    async fn exchange_session(
        &self,
        r: Request<pb::ExchangeSessionRequest>,
    ) -> Result<Response<pb::ExchangeSessionResponse>, Status> {
        reply(self.exchange(r.into_inner().session_token).await)
    }

    async fn sign_out(
        &self,
        r: Request<pb::SignOutRequest>,
    ) -> Result<Response<pb::SignOutResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.revoke(caller).await)
    }

    async fn get_public_key(
        &self,
        _r: Request<pb::GetPublicKeyRequest>,
    ) -> Result<Response<pb::GetPublicKeyResponse>, Status> {
        Ok(Response::new(pb::GetPublicKeyResponse {
            public_key_pem: self.signer.public_pem().to_owned(),
            issuer: self.signer.issuer().to_owned(),
            audience: self.signer.audience().to_owned(),
        }))
    }

    async fn get_user(
        &self,
        r: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        let user = self.user(&r.into_inner().user_id, &caller.user_id).await;
        reply(user.map(|user| pb::GetUserResponse { user: Some(user) }))
    }

    async fn list_users(
        &self,
        r: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.list(caller, r.into_inner()).await)
    }

    async fn batch_get_users(
        &self,
        r: Request<pb::BatchGetUsersRequest>,
    ) -> Result<Response<pb::BatchGetUsersResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.batch(caller, r.into_inner().user_ids).await)
    }

    async fn update_user(
        &self,
        r: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.update(caller, r.into_inner()).await)
    }

    async fn delete_user(
        &self,
        r: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.delete(caller, r.into_inner().user_id).await)
    }

    async fn start_social_sign_in(
        &self,
        r: Request<pb::StartSocialSignInRequest>,
    ) -> Result<Response<pb::StartSocialSignInResponse>, Status> {
        reply(self.start_social(r.into_inner()).await)
    }

    async fn finish_social_sign_in(
        &self,
        r: Request<pb::FinishSocialSignInRequest>,
    ) -> Result<Response<pb::FinishSocialSignInResponse>, Status> {
        reply(self.finish_social(r.into_inner()).await)
    }

    async fn list_identities(
        &self,
        r: Request<pb::ListIdentitiesRequest>,
    ) -> Result<Response<pb::ListIdentitiesResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.identities(caller).await)
    }

    async fn unlink_identity(
        &self,
        r: Request<pb::UnlinkIdentityRequest>,
    ) -> Result<Response<pb::UnlinkIdentityResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.unlink(caller, r.into_inner()).await)
    }
}

impl AccountsRpc {
    async fn register(&self, req: pb::SignUpRequest, caller: &str) -> Result<pb::SignUpResponse> {
        self.throttle(&format!("caller:{caller}"), self.throttle.caller)
            .await?;
        let email = input::email("email", &req.email)?;
        input::password(&req.password)?;
        let name = validate::text("name", &req.name, input::NAME_MAX)?;
        let image = req
            .image
            .as_deref()
            .map(|i| validate::http_url("image", i))
            .transpose()?;

        let hash = password::hash(req.password).await?;
        let user_id = tokens::random_id();
        let new = NewUser {
            id: &user_id,
            email: &email,
            name: &name,
            image: image.as_deref(),
        };
        let mut tx = self.pool.begin().await?;
        db::insert_user(&mut *tx, &new).await.map_err(|e| {
            if hilo_kit::db::is_unique_violation(&e, "users_email_key") {
                Error::UserExists
            } else {
                e.into()
            }
        })?;
        db::insert_profile(&mut *tx, &new).await?;
        db::insert_identity(
            &mut *tx,
            &tokens::random_id(),
            &user_id,
            "credential",
            &user_id,
            Some(&hash),
        )
        .await?;
        let (token, session) = open_session(&mut *tx, &user_id, req.client).await?;
        tx.commit().await?;

        tracing::info!(user_id, "user signed up");
        let user = self.user(&user_id, &user_id).await?;
        Ok(pb::SignUpResponse {
            session_token: token,
            session: Some(session_pb(&session)),
            user: Some(user),
        })
    }

    async fn authenticate(
        &self,
        req: pb::SignInRequest,
        caller: &str,
    ) -> Result<pb::SignInResponse> {
        // A malformed email cannot have an account: same answer as a wrong password.
        let email = input::email("email", &req.email).unwrap_or_default();
        self.throttle(&format!("caller:{caller}"), self.throttle.caller)
            .await?;
        // Guessing one account's password from many addresses meets this one.
        self.throttle(&format!("email:{email}"), self.throttle.email)
            .await?;
        let (user_id, hash) = match db::find_credential(&self.pool, &email).await? {
            Some((id, hash)) => (Some(id), hash),
            None => (None, None),
        };
        let ok = password::verify(req.password, hash).await?;
        let Some(user_id) = user_id.filter(|_| ok) else {
            return Err(Error::InvalidCredentials);
        };
        let (token, session) = open_session(&self.pool, &user_id, req.client).await?;
        let user = self.user(&user_id, &user_id).await?;
        Ok(pb::SignInResponse {
            session_token: token,
            session: Some(session_pb(&session)),
            user: Some(user),
        })
    }

    async fn exchange(&self, token: String) -> Result<pb::ExchangeSessionResponse> {
        let hash = tokens::hash_token(&token);
        let mut session = db::find_session(&self.pool, &hash)
            .await?
            .ok_or(Error::NoSession)?;
        let now = Utc::now();
        if session.expires_at <= now {
            db::delete_session(&self.pool, &session.id).await?;
            return Err(Error::NoSession);
        }
        let refreshed = now - session.updated_at > SESSION_UPDATE_AGE;
        if refreshed {
            session = db::extend_session(&self.pool, &session.id, now + SESSION_TTL).await?;
        }
        let user = self.user(&session.user_id, &session.user_id).await?;
        let (access_token, exp) = self.signer.sign(&session.user_id, &session.id)?;
        Ok(pb::ExchangeSessionResponse {
            session: Some(session_pb(&session)),
            user: Some(user),
            access_token,
            access_token_expire_time: Some(hilo_proto::Timestamp {
                seconds: exp as i64,
                nanos: 0,
            }),
            refreshed,
        })
    }

    /// Counts an attempt on `key`; refused beyond `limit` (AUTH_THROTTLE).
    async fn throttle(&self, key: &str, limit: RateLimit) -> Result<()> {
        let RateLimit::PerWindow { max, window_secs } = limit else {
            return Ok(());
        };
        if db::hit(&self.pool, key, window_secs).await? > i64::from(max) {
            tracing::warn!(key, "sign-in throttled");
            return Err(Error::Throttled);
        }
        Ok(())
    }

    /// Ends the caller's session and says so (realtime closes its sockets at once).
    async fn revoke(&self, caller: Caller) -> Result<pb::SignOutResponse> {
        let mut tx = self.pool.begin().await?;
        if db::delete_session(&mut *tx, &caller.session_id).await? {
            announce_revoked(&mut tx, &caller.session_id, &caller.user_id).await?;
        }
        tx.commit().await?;
        self.relay.wake();
        tracing::info!(user_id = caller.user_id, "session revoked");
        Ok(pb::SignOutResponse {})
    }

    async fn list(
        &self,
        caller: Caller,
        req: pb::ListUsersRequest,
    ) -> Result<pb::ListUsersResponse> {
        let limit = if req.limit <= 0 {
            LIST_DEFAULT
        } else {
            req.limit.min(LIST_MAX)
        };
        let rows = db::list_users(&self.pool, limit.into(), req.offset.max(0).into()).await?;
        let users = rows
            .into_iter()
            .map(|row| user_pb(row, &caller.user_id))
            .collect();
        Ok(pb::ListUsersResponse { users })
    }

    async fn batch(&self, caller: Caller, ids: Vec<String>) -> Result<pb::BatchGetUsersResponse> {
        if ids.len() > LIST_MAX as usize {
            return Err(
                Invalid::field(validate::VALIDATION_ERROR, "userIds", "at most 100 ids").into(),
            );
        }
        let rows = db::users_by_ids(&self.pool, &ids).await?;
        let users = rows
            .into_iter()
            .map(|row| user_pb(row, &caller.user_id))
            .collect();
        Ok(pb::BatchGetUsersResponse { users })
    }

    async fn update(
        &self,
        caller: Caller,
        req: pb::UpdateUserRequest,
    ) -> Result<pb::UpdateUserResponse> {
        only_self(&caller, &req.user_id, "update")?;
        let (user, profile) = parse_patch(&req)?;
        let mut tx = self.pool.begin().await?;
        if db::get_user(&mut *tx, &req.user_id).await?.is_none() {
            return Err(Error::UserNotFound(req.user_id));
        }
        db::update_user(&mut *tx, &req.user_id, &user)
            .await
            .map_err(|e| {
                if hilo_kit::db::is_unique_violation(&e, "users_email_key") {
                    Error::EmailTaken
                } else {
                    e.into()
                }
            })?;
        if let Some(profile) = profile {
            db::update_profile(&mut *tx, &req.user_id, &profile).await?;
        }
        // Services that show users (messaging's sender names) drop what they cached.
        let event = serde_json::json!({ "type": "user.updated", "userId": req.user_id });
        outbox::enqueue(&mut tx, subjects::USER_UPDATED, event).await?;
        tx.commit().await?;
        self.relay.wake();
        let user = self.user(&req.user_id, &caller.user_id).await?;
        Ok(pb::UpdateUserResponse { user: Some(user) })
    }

    async fn delete(&self, caller: Caller, user_id: String) -> Result<pb::DeleteUserResponse> {
        only_self(&caller, &user_id, "delete")?;
        let mut tx = self.pool.begin().await?;
        if !db::delete_user(&mut *tx, &user_id).await? {
            return Err(Error::UserNotFound(user_id));
        }
        // Sessions go with the user (cascade); realtime closes the user's sockets and channels
        // removes the memberships.
        let event = serde_json::json!({ "type": "user.deleted", "userId": user_id });
        outbox::enqueue(&mut tx, subjects::USER_DELETED, event).await?;
        tx.commit().await?;
        self.relay.wake();
        tracing::info!(user_id, "user deleted");
        Ok(pb::DeleteUserResponse {})
    }

    /// The user `id` as `viewer` may see it (email only for themselves).
    pub(crate) async fn user(&self, id: &str, viewer: &str) -> Result<pb::User> {
        let row = db::get_user(&self.pool, id)
            .await?
            .ok_or_else(|| Error::UserNotFound(id.to_owned()))?;
        Ok(user_pb(row, viewer))
    }
}

/// Users change and delete only themselves.
fn only_self(caller: &Caller, user_id: &str, verb: &str) -> Result<()> {
    if caller.user_id == user_id {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "User '{}' is not authorized to {verb} user '{user_id}'",
        caller.user_id
    )))
}

/// Opens a session for `user_id` and returns its token (in clear, the only time) and row.
pub(crate) async fn open_session(
    db: impl sqlx::PgExecutor<'_>,
    user_id: &str,
    client: Option<pb::ClientInfo>,
) -> Result<(String, SessionRow)> {
    let token = tokens::random_id();
    let client = client.unwrap_or_default();
    let row = db::insert_session(
        db,
        &tokens::random_id(),
        &tokens::hash_token(&token),
        user_id,
        Utc::now() + SESSION_TTL,
        client.ip_address.as_deref(),
        client.user_agent.as_deref(),
    )
    .await?;
    Ok((token, row))
}

/// Validates an update: every failing field is reported at once.
fn parse_patch(req: &pb::UpdateUserRequest) -> Result<(UserPatch, Option<ProfilePatch>)> {
    let mut v = Violations::default();
    let user = UserPatch {
        name: req
            .name
            .as_ref()
            .and_then(|n| v.check(validate::text("name", n, input::NAME_MAX))),
        email: req
            .email
            .as_ref()
            .and_then(|e| v.check(input::email("email", e))),
        image: req.image.as_ref().map(|i| {
            i.value
                .as_ref()
                .and_then(|u| v.check(validate::http_url("image", u)))
        }),
    };
    let profile = req.profile.as_ref().map(|p| ProfilePatch {
        display_name: p
            .display_name
            .as_ref()
            .and_then(|d| v.check(validate::text("profile.displayName", d, input::NAME_MAX))),
        avatar_url: p.avatar_url.as_ref().map(|u| {
            u.value
                .as_ref()
                .and_then(|u| v.check(validate::http_url("profile.avatarUrl", u)))
        }),
        banner_url: p.banner_url.as_ref().map(|u| {
            u.value
                .as_ref()
                .and_then(|u| v.check(validate::http_url("profile.bannerUrl", u)))
        }),
        bio: p.bio.as_ref().map(|b| {
            b.value.as_ref().and_then(|b| {
                if b.chars().count() > input::BIO_MAX {
                    v.push("profile.bio", "bio must be at most 500 characters");
                    None
                } else {
                    Some(b.clone())
                }
            })
        }),
        age: p.age.as_ref().map(|a| {
            a.value.and_then(|a| {
                if (0..=input::AGE_MAX).contains(&a) {
                    Some(a)
                } else {
                    v.push("profile.age", "age must be between 0 and 150");
                    None
                }
            })
        }),
    });
    let empty_profile = profile.as_ref().is_none_or(|p| {
        p.display_name.is_none()
            && p.avatar_url.is_none()
            && p.banner_url.is_none()
            && p.bio.is_none()
            && p.age.is_none()
    });
    let nothing =
        user.name.is_none() && user.email.is_none() && user.image.is_none() && empty_profile;
    if nothing
        && req.name.is_none()
        && req.email.is_none()
        && req.image.is_none()
        && req.profile.is_none()
    {
        v.push("", "Provide at least one property to update");
    }
    v.finish()?;
    Ok((user, profile))
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> hilo_proto::Timestamp {
    hilo_proto::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub(crate) fn session_pb(row: &SessionRow) -> pb::Session {
    pb::Session {
        id: row.id.clone(),
        user_id: row.user_id.clone(),
        expire_time: Some(timestamp(row.expires_at)),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        ip_address: row.ip_address.clone(),
        user_agent: row.user_agent.clone(),
    }
}

/// A user row as `viewer` may see it: others' emails are left out.
fn user_pb(row: UserRow, viewer: &str) -> pb::User {
    let profile = row.profile_id.map(|id| pb::Profile {
        id: id.to_string(),
        user_id: row.id.clone(),
        display_name: row.display_name.clone().unwrap_or_else(|| row.name.clone()),
        avatar_url: row.avatar_url.clone(),
        banner_url: row.banner_url.clone(),
        bio: row.bio.clone(),
        age: row.age,
        is_online: false,
        create_time: row.profile_created_at.map(timestamp),
        update_time: row.profile_updated_at.map(timestamp),
    });
    pb::User {
        email: (row.id == viewer).then_some(row.email),
        id: row.id,
        name: row.name,
        email_verified: row.email_verified,
        image: row.image,
        role: row.role,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        profile,
    }
}

/// Queues the `session.revoked` event of a deleted session (realtime closes its sockets).
pub(crate) async fn announce_revoked(
    tx: &mut sqlx::PgConnection,
    session_id: &str,
    user_id: &str,
) -> Result<()> {
    let event = serde_json::json!({
        "type": "session.revoked",
        "sessionId": session_id,
        "userId": user_id,
    });
    outbox::enqueue(tx, subjects::SESSION_REVOKED, event).await?;
    Ok(())
}
