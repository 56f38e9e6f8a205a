//! SQL of sign-in identities (password and OAuth) and of OAuth sign-ins in flight.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

/// A started OAuth sign-in, as stored until its callback consumes it.
#[derive(Debug, sqlx::FromRow)]
pub struct OAuthStateRow {
    pub id: String,
    pub secret_hash: String,
    pub provider_id: String,
    pub code_verifier: String,
    pub redirect_uri: String,
    pub callback_url: String,
    pub error_callback_url: Option<String>,
    pub new_user_callback_url: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// Keeps a started sign-in until its callback (or the sweep) deletes it.
pub async fn insert_oauth_state(db: impl PgExecutor<'_>, row: &OAuthStateRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO oauth_states (id, secret_hash, provider_id, code_verifier, redirect_uri, \
           callback_url, error_callback_url, new_user_callback_url, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&row.id)
    .bind(&row.secret_hash)
    .bind(&row.provider_id)
    .bind(&row.code_verifier)
    .bind(&row.redirect_uri)
    .bind(&row.callback_url)
    .bind(&row.error_callback_url)
    .bind(&row.new_user_callback_url)
    .bind(row.expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes and returns a state in one statement, so two callbacks racing with the same state
/// cannot both get it (single use).
pub async fn take_oauth_state(pool: &PgPool, id: &str) -> sqlx::Result<Option<OAuthStateRow>> {
    sqlx::query_as(
        "DELETE FROM oauth_states WHERE id = $1 \
         RETURNING id, secret_hash, provider_id, code_verifier, redirect_uri, callback_url, \
           error_callback_url, new_user_callback_url, expires_at",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Sweeps sign-ins that were started but never finished.
pub async fn delete_expired_oauth_states(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM oauth_states WHERE expires_at < now()")
        .execute(pool)
        .await?;
    Ok(())
}

/// The user an OAuth identity belongs to, recording the scopes granted this time.
pub async fn touch_identity(
    db: impl PgExecutor<'_>,
    provider_id: &str,
    account_id: &str,
    scope: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "UPDATE identities SET scope = $3, updated_at = now() \
         WHERE provider_id = $1 AND account_id = $2 RETURNING user_id",
    )
    .bind(provider_id)
    .bind(account_id)
    .bind(scope)
    .fetch_optional(db)
    .await
}

/// `(id, email_verified)` of the user with this (lower-cased) email.
pub async fn find_user_by_email(
    db: impl PgExecutor<'_>,
    email: &str,
) -> sqlx::Result<Option<(String, bool)>> {
    sqlx::query_as("SELECT id, email_verified FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(db)
        .await
}

/// Removes what anyone could have set up on an unverified account: its password credential
/// and its sessions. Returns the ids of the sessions removed.
pub async fn drop_unproven_access(
    tx: &mut sqlx::PgConnection,
    user_id: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query("DELETE FROM identities WHERE user_id = $1 AND provider_id = 'credential'")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query_scalar("DELETE FROM sessions WHERE user_id = $1 RETURNING id")
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await
}

/// A provider vouched for the user's email.
pub async fn mark_email_verified(db: impl PgExecutor<'_>, user_id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET email_verified = true, updated_at = now() WHERE id = $1")
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Links an OAuth identity to a user.
pub async fn insert_oauth_identity(
    db: impl PgExecutor<'_>,
    id: &str,
    user_id: &str,
    provider_id: &str,
    account_id: &str,
    scope: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO identities (id, user_id, provider_id, account_id, scope) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(user_id)
    .bind(provider_id)
    .bind(account_id)
    .bind(scope)
    .execute(db)
    .await?;
    Ok(())
}

/// One way to sign in, as listed to its user (never the password hash).
#[derive(Debug, sqlx::FromRow)]
pub struct IdentityRow {
    pub id: String,
    pub user_id: String,
    pub provider_id: String,
    pub account_id: String,
    pub scope: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user's identities, oldest first.
pub async fn list_identities(
    db: impl PgExecutor<'_>,
    user_id: &str,
) -> sqlx::Result<Vec<IdentityRow>> {
    sqlx::query_as(
        "SELECT id, user_id, provider_id, account_id, scope, created_at, updated_at \
         FROM identities WHERE user_id = $1 ORDER BY created_at, id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
}

/// Locks the user's row until the transaction ends, so two unlinks cannot both see "not the
/// last identity" and leave none. False when there is no such user.
pub async fn lock_user(db: impl PgExecutor<'_>, user_id: &str) -> sqlx::Result<bool> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    Ok(found.is_some())
}

/// Unlinks one identity; the caller has checked it is not the user's last.
pub async fn delete_identity(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM identities WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}
