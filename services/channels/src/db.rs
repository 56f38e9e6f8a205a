//! SQL of the channels schema, one plain function per statement, each taking an executor.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub struct ChannelRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_private: bool,
    pub image_url: Option<String>,
    pub banner_url: Option<String>,
    pub category: String,
    pub owner_id: String,
    pub created_at: DateTime<Utc>,
}

/// A channel and the viewer's role in it (`None` when not a member).
#[derive(Debug, sqlx::FromRow)]
pub struct ChannelAccess {
    #[sqlx(flatten)]
    pub channel: ChannelRow,
    pub role: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct MemberRow {
    pub channel_id: Uuid,
    pub user_id: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

const CHANNEL_COLUMNS: &str = "c.id, c.name, c.description, c.is_private, c.image_url, c.banner_url, c.category, c.owner_id, c.created_at";
const MEMBER_COLUMNS: &str = "channel_id, user_id, role::text AS role, joined_at";

/// What a new channel is made of.
pub struct NewChannel {
    pub name: String,
    pub description: Option<String>,
    pub is_private: bool,
    pub image_url: Option<String>,
    pub banner_url: Option<String>,
    pub category: String,
}

pub async fn insert_channel(
    db: impl PgExecutor<'_>,
    owner_id: &str,
    new: &NewChannel,
) -> sqlx::Result<ChannelRow> {
    sqlx::query_as(
        "INSERT INTO channels AS c (id, name, description, is_private, image_url, banner_url, category, owner_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         RETURNING c.id, c.name, c.description, c.is_private, c.image_url, c.banner_url, c.category, c.owner_id, c.created_at",
    )
    .bind(Uuid::now_v7())
    .bind(&new.name)
    .bind(&new.description)
    .bind(new.is_private)
    .bind(&new.image_url)
    .bind(&new.banner_url)
    .bind(&new.category)
    .bind(owner_id)
    .fetch_one(db)
    .await
}

/// The channel `id` as `user_id` sees it, with their role.
pub async fn channel_access(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: &str,
) -> sqlx::Result<Option<ChannelAccess>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS}, m.role::text AS role FROM channels c \
         LEFT JOIN channel_members m ON m.channel_id = c.id AND m.user_id = $2 WHERE c.id = $1"
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// Channels `user_id` may see: public ones and private ones they belong to.
const VISIBLE: &str = "(NOT c.is_private OR EXISTS \
    (SELECT 1 FROM channel_members m WHERE m.channel_id = c.id AND m.user_id = $1))";

pub async fn list_visible(
    pool: &PgPool,
    user_id: &str,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<ChannelRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM channels c WHERE {VISIBLE} ORDER BY c.created_at, c.id LIMIT $2 OFFSET $3"
    )))
    .bind(user_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

pub async fn count_visible(pool: &PgPool, user_id: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM channels c WHERE {VISIBLE}"
    )))
    .bind(user_id)
    .fetch_one(pool)
    .await
}

/// Channels `user_id` belongs to, in the order they joined.
pub async fn list_joined(pool: &PgPool, user_id: &str) -> sqlx::Result<Vec<ChannelRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM channels c JOIN channel_members m ON m.channel_id = c.id \
         WHERE m.user_id = $1 ORDER BY m.joined_at, c.id"
    )))
    .bind(user_id)
    .fetch_all(pool)
    .await
}

/// The columns a channel update may change; `Some(None)` clears a nullable column.
#[derive(Default)]
pub struct ChannelPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_private: Option<bool>,
    pub image_url: Option<Option<String>>,
    pub banner_url: Option<Option<String>>,
    pub category: Option<String>,
}

pub async fn update_channel(
    db: impl PgExecutor<'_>,
    id: Uuid,
    patch: &ChannelPatch,
) -> sqlx::Result<ChannelRow> {
    sqlx::query_as(
        "UPDATE channels AS c SET \
           name = COALESCE($2, c.name), \
           description = CASE WHEN $3 THEN $4 ELSE c.description END, \
           is_private = COALESCE($5, c.is_private), \
           image_url = CASE WHEN $6 THEN $7 ELSE c.image_url END, \
           banner_url = CASE WHEN $8 THEN $9 ELSE c.banner_url END, \
           category = COALESCE($10, c.category) \
         WHERE c.id = $1 \
         RETURNING c.id, c.name, c.description, c.is_private, c.image_url, c.banner_url, c.category, c.owner_id, c.created_at",
    )
    .bind(id)
    .bind(&patch.name)
    .bind(patch.description.is_some())
    .bind(patch.description.clone().flatten())
    .bind(patch.is_private)
    .bind(patch.image_url.is_some())
    .bind(patch.image_url.clone().flatten())
    .bind(patch.banner_url.is_some())
    .bind(patch.banner_url.clone().flatten())
    .bind(&patch.category)
    .fetch_one(db)
    .await
}

/// Deletes a channel; members and invites go with it. False when it was already gone.
pub async fn delete_channel(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM channels WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn insert_member(
    db: impl PgExecutor<'_>,
    channel_id: Uuid,
    user_id: &str,
    role: &str,
) -> sqlx::Result<MemberRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO channel_members (channel_id, user_id, role) VALUES ($1, $2, $3::channel_role) \
         RETURNING {MEMBER_COLUMNS}"
    )))
    .bind(channel_id)
    .bind(user_id)
    .bind(role)
    .fetch_one(db)
    .await
}

pub async fn get_member(
    db: impl PgExecutor<'_>,
    channel_id: Uuid,
    user_id: &str,
) -> sqlx::Result<Option<MemberRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBER_COLUMNS} FROM channel_members WHERE channel_id = $1 AND user_id = $2"
    )))
    .bind(channel_id)
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// Members in the order they joined.
pub async fn list_members(
    pool: &PgPool,
    channel_id: Uuid,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<MemberRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBER_COLUMNS} FROM channel_members WHERE channel_id = $1 \
         ORDER BY joined_at, user_id LIMIT $2 OFFSET $3"
    )))
    .bind(channel_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

/// The channel's admins, locked until the transaction ends, so that two admins cannot demote
/// or remove each other at the same instant and leave the channel without one.
///
/// The channel row is locked first: every change of who administers a channel (role changes,
/// removals, a deleted user's departure) takes that lock, so they run one after the other, and
/// the admins are read after it is held. Locking only the admin rows is not enough: a
/// statement that waited for them still works from its own older snapshot and misses a member
/// promoted meanwhile (a deleted admin's successor could then leave as if not an admin).
/// `NO KEY UPDATE` does not block joins (their foreign key check only takes `KEY SHARE`).
pub async fn lock_admins(db: &mut PgConnection, channel_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query("SELECT 1 FROM channels WHERE id = $1 FOR NO KEY UPDATE")
        .bind(channel_id)
        .execute(&mut *db)
        .await?;
    sqlx::query_scalar(
        "SELECT user_id FROM channel_members WHERE channel_id = $1 AND role = 'admin' ORDER BY user_id FOR UPDATE",
    )
    .bind(channel_id)
    .fetch_all(db)
    .await
}

pub async fn update_role(
    db: impl PgExecutor<'_>,
    channel_id: Uuid,
    user_id: &str,
    role: &str,
) -> sqlx::Result<Option<MemberRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE channel_members SET role = $3::channel_role WHERE channel_id = $1 AND user_id = $2 \
         RETURNING {MEMBER_COLUMNS}"
    )))
    .bind(channel_id)
    .bind(user_id)
    .bind(role)
    .fetch_optional(db)
    .await
}

pub async fn delete_member(
    db: impl PgExecutor<'_>,
    channel_id: Uuid,
    user_id: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2")
        .bind(channel_id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The channels `user_id` belongs to, oldest membership first (a deleted user's departure
/// walks them one by one).
pub async fn channels_of(db: impl PgExecutor<'_>, user_id: &str) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT channel_id FROM channel_members WHERE user_id = $1 ORDER BY joined_at, channel_id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
}

/// Locks the channel row for a change that may delete the channel, and says whether it is
/// private; `None` when it is gone. `FOR UPDATE` also holds back joins (their foreign key
/// check) until the transaction ends, so a channel found empty stays empty until deleted.
pub async fn lock_channel(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar("SELECT is_private FROM channels WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The earliest-joined member of each role present in the channel (at most three rows): all a
/// successor rule needs to know, however large the channel.
pub async fn earliest_by_role(
    db: impl PgExecutor<'_>,
    channel_id: Uuid,
) -> sqlx::Result<Vec<MemberRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT ON (role) {MEMBER_COLUMNS} FROM channel_members WHERE channel_id = $1 \
         ORDER BY role, joined_at, user_id"
    )))
    .bind(channel_id)
    .fetch_all(db)
    .await
}

/// Deletes every invite `user_id` created, in any channel; returns how many.
pub async fn delete_invites_by(db: impl PgExecutor<'_>, user_id: &str) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM channel_invites WHERE created_by = $1")
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

pub async fn insert_invite(
    db: impl PgExecutor<'_>,
    code: &str,
    channel_id: Uuid,
    created_by: &str,
    expires_at: DateTime<Utc>,
    max_uses: Option<i32>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO channel_invites (code, channel_id, created_by, expires_at, max_uses) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(code)
    .bind(channel_id)
    .bind(created_by)
    .bind(expires_at)
    .bind(max_uses)
    .execute(db)
    .await?;
    Ok(())
}

/// Uses an invite of `channel_id` once, if it is still valid (one atomic statement, so
/// concurrent redemptions never exceed `max_uses`).
pub async fn redeem_invite(
    db: impl PgExecutor<'_>,
    code: &str,
    channel_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE channel_invites SET uses = uses + 1 \
         WHERE code = $1 AND channel_id = $2 AND expires_at > now() AND (max_uses IS NULL OR uses < max_uses)",
    )
    .bind(code)
    .bind(channel_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}
