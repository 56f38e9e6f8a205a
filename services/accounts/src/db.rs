//! SQL of the accounts schema, one plain function per statement. Each takes an executor, so
//! callers decide what runs in one transaction.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

pub mod identities;

/// A user joined with its profile (the profile columns are null when it has none).
#[derive(Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub email_verified: bool,
    pub image: Option<String>,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub profile_id: Option<Uuid>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub banner_url: Option<String>,
    pub bio: Option<String>,
    pub age: Option<i32>,
    pub profile_created_at: Option<DateTime<Utc>>,
    pub profile_updated_at: Option<DateTime<Utc>>,
}

const SELECT_USER: &str = "SELECT u.id, u.email, u.name, u.email_verified, u.image, u.role, \
    u.created_at, u.updated_at, p.id AS profile_id, p.display_name, p.avatar_url, p.banner_url, \
    p.bio, p.age, p.created_at AS profile_created_at, p.updated_at AS profile_updated_at \
    FROM users u LEFT JOIN profiles p ON p.user_id = u.id";

/// A session with the time it was last extended.
#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a new user is created with.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub image: Option<&'a str>,
}

pub async fn insert_user(db: impl PgExecutor<'_>, user: &NewUser<'_>) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO users (id, email, name, image) VALUES ($1, $2, $3, $4)")
        .bind(user.id)
        .bind(user.email)
        .bind(user.name)
        .bind(user.image)
        .execute(db)
        .await?;
    Ok(())
}

/// The profile every user gets at creation: display name = name, else email (docs/api.md §1.3).
pub async fn insert_profile(db: impl PgExecutor<'_>, user: &NewUser<'_>) -> sqlx::Result<()> {
    let display_name = if user.name.trim().is_empty() {
        user.email
    } else {
        user.name
    };
    sqlx::query(
        "INSERT INTO profiles (id, user_id, display_name, avatar_url) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(user.id)
    .bind(display_name)
    .bind(user.image)
    .execute(db)
    .await?;
    Ok(())
}

/// Links a way to sign in to a user (`credential` holds the password hash).
pub async fn insert_identity(
    db: impl PgExecutor<'_>,
    id: &str,
    user_id: &str,
    provider_id: &str,
    account_id: &str,
    password_hash: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO identities (id, user_id, provider_id, account_id, password_hash) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(user_id)
    .bind(provider_id)
    .bind(account_id)
    .bind(password_hash)
    .execute(db)
    .await?;
    Ok(())
}

/// The user id and password hash for an email, if it has a password credential.
pub async fn find_credential(
    pool: &PgPool,
    email: &str,
) -> sqlx::Result<Option<(String, Option<String>)>> {
    sqlx::query_as(
        "SELECT u.id, i.password_hash FROM users u \
         LEFT JOIN identities i ON i.user_id = u.id AND i.provider_id = 'credential' \
         WHERE u.email = $1",
    )
    .bind(email)
    .fetch_optional(pool)
    .await
}

pub async fn insert_session(
    db: impl PgExecutor<'_>,
    id: &str,
    token_hash: &str,
    user_id: &str,
    expires_at: DateTime<Utc>,
    ip_address: Option<&str>,
    user_agent: Option<&str>,
) -> sqlx::Result<SessionRow> {
    sqlx::query_as(
        "INSERT INTO sessions (id, token_hash, user_id, expires_at, ip_address, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING id, user_id, expires_at, ip_address, user_agent, created_at, updated_at",
    )
    .bind(id)
    .bind(token_hash)
    .bind(user_id)
    .bind(expires_at)
    .bind(ip_address)
    .bind(user_agent)
    .fetch_one(db)
    .await
}

pub async fn find_session(pool: &PgPool, token_hash: &str) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as(
        "SELECT id, user_id, expires_at, ip_address, user_agent, created_at, updated_at \
         FROM sessions WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

/// Slides a session's expiry forward.
pub async fn extend_session(
    pool: &PgPool,
    id: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<SessionRow> {
    sqlx::query_as(
        "UPDATE sessions SET expires_at = $2, updated_at = now() WHERE id = $1 \
         RETURNING id, user_id, expires_at, ip_address, user_agent, created_at, updated_at",
    )
    .bind(id)
    .bind(expires_at)
    .fetch_one(pool)
    .await
}

/// Deletes a session; false when it was already gone.
pub async fn delete_session(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn get_user(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_USER} WHERE u.id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Users in creation order (stable across pages).
pub async fn list_users(pool: &PgPool, limit: i64, offset: i64) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_USER} ORDER BY u.created_at, u.id LIMIT $1 OFFSET $2"
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

pub async fn users_by_ids(pool: &PgPool, ids: &[String]) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_USER} WHERE u.id = ANY($1)"
    )))
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// The user columns a patch may change; `None` leaves a column as it is.
#[derive(Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    /// `Some(None)` clears the image.
    pub image: Option<Option<String>>,
}

/// Applies `patch`; a changed email is no longer verified.
pub async fn update_user(db: impl PgExecutor<'_>, id: &str, patch: &UserPatch) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE users SET \
           name = COALESCE($2, name), \
           email_verified = CASE WHEN $3::text IS NOT NULL AND $3 <> email THEN false ELSE email_verified END, \
           email = COALESCE($3, email), \
           image = CASE WHEN $4 THEN $5 ELSE image END, \
           updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(&patch.name)
    .bind(&patch.email)
    .bind(patch.image.is_some())
    .bind(patch.image.clone().flatten())
    .execute(db)
    .await?;
    Ok(())
}

/// The profile columns a patch may change; `Some(None)` clears a nullable column.
#[derive(Default)]
pub struct ProfilePatch {
    pub display_name: Option<String>,
    pub avatar_url: Option<Option<String>>,
    pub banner_url: Option<Option<String>>,
    pub bio: Option<Option<String>>,
    pub age: Option<Option<i32>>,
}

pub async fn update_profile(
    db: impl PgExecutor<'_>,
    user_id: &str,
    patch: &ProfilePatch,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE profiles SET \
           display_name = COALESCE($2, display_name), \
           avatar_url = CASE WHEN $3 THEN $4 ELSE avatar_url END, \
           banner_url = CASE WHEN $5 THEN $6 ELSE banner_url END, \
           bio = CASE WHEN $7 THEN $8 ELSE bio END, \
           age = CASE WHEN $9 THEN $10 ELSE age END, \
           updated_at = now() \
         WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(&patch.display_name)
    .bind(patch.avatar_url.is_some())
    .bind(patch.avatar_url.clone().flatten())
    .bind(patch.banner_url.is_some())
    .bind(patch.banner_url.clone().flatten())
    .bind(patch.bio.is_some())
    .bind(patch.bio.clone().flatten())
    .bind(patch.age.is_some())
    .bind(patch.age.flatten())
    .execute(db)
    .await?;
    Ok(())
}

/// Counts one attempt on `key` in the current window of `window_secs` and returns the count
/// so far; windows past their end are dropped on the way.
pub async fn hit(pool: &PgPool, key: &str, window_secs: u32) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "WITH gone AS (DELETE FROM auth_throttle WHERE expires_at < now()) \
         INSERT INTO auth_throttle (key, window_start, expires_at) \
         VALUES ($1, floor(extract(epoch FROM now()) / $2)::bigint, \
           now() + make_interval(secs => $2::double precision)) \
         ON CONFLICT (key, window_start) DO UPDATE SET hits = auth_throttle.hits + 1 \
         RETURNING hits::bigint",
    )
    .bind(key)
    .bind(i64::from(window_secs))
    .fetch_one(pool)
    .await
}

/// Deletes a user; profile, identities and sessions go with it (ON DELETE CASCADE).
/// Returns false when there was no such user.
pub async fn delete_user(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}
