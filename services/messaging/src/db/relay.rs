//! SQL of the relay: the outbox of unpublished thread events, and the partition leases.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// An event waiting for publication, with its stored frame.
#[derive(Debug, sqlx::FromRow)]
pub struct Pending {
    pub part: i16,
    pub thread_id: Uuid,
    pub seq: i64,
    /// `None` when the event row is gone (its thread was deleted meanwhile).
    pub event_id: Option<Uuid>,
    pub payload: Option<Vec<u8>>,
    pub traceparent: Option<String>,
    /// Seconds since the event was stored.
    pub age: f64,
}

const PENDING: &str = "SELECT o.part, o.thread_id, o.seq, e.id AS event_id, e.payload, e.traceparent, \
       extract(epoch FROM now() - o.created_at)::float8 AS age \
     FROM thread_outbox o LEFT JOIN thread_events e ON e.thread_id = o.thread_id AND e.seq = o.seq";

/// Pending events of these threads (of these partitions), in seq order per thread.
pub async fn pending_of(
    pool: &PgPool,
    parts: &[i16],
    threads: &[Uuid],
    limit: i64,
) -> sqlx::Result<Vec<Pending>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PENDING} WHERE o.part = ANY($1) AND o.thread_id = ANY($2) \
         ORDER BY o.part, o.thread_id, o.seq LIMIT $3"
    )))
    .bind(parts)
    .bind(threads)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A page of the pending events of partitions `parts`, after `after` (`(part, thread, seq)`)
/// in key order: the periodic scan walks the whole outbox this way, page by page.
pub async fn pending_page(
    pool: &PgPool,
    parts: &[i16],
    after: Option<(i16, Uuid, i64)>,
    limit: i64,
) -> sqlx::Result<Vec<Pending>> {
    let (part, thread, seq) = after.unwrap_or((-1, Uuid::nil(), 0));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PENDING} WHERE o.part = ANY($1) AND (o.part, o.thread_id, o.seq) > ($2, $3, $4) \
         ORDER BY o.part, o.thread_id, o.seq LIMIT $5"
    )))
    .bind(parts)
    .bind(part)
    .bind(thread)
    .bind(seq)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Forgets published events: for each `(part, thread, seq)`, every event of the thread up to
/// `seq` (a thread's events are published in seq order).
pub async fn published(pool: &PgPool, upto: &[(i16, Uuid, i64)]) -> sqlx::Result<()> {
    let parts: Vec<i16> = upto.iter().map(|u| u.0).collect();
    let threads: Vec<Uuid> = upto.iter().map(|u| u.1).collect();
    let seqs: Vec<i64> = upto.iter().map(|u| u.2).collect();
    sqlx::query(
        "DELETE FROM thread_outbox o USING unnest($1::smallint[], $2::uuid[], $3::bigint[]) \
           AS d(part, thread_id, seq) \
         WHERE o.part = d.part AND o.thread_id = d.thread_id AND o.seq <= d.seq",
    )
    .bind(parts)
    .bind(threads)
    .bind(seqs)
    .execute(pool)
    .await?;
    Ok(())
}

/// How many events of `parts` wait, and the age in seconds of the oldest.
pub async fn backlog(pool: &PgPool, parts: &[i16]) -> sqlx::Result<(i64, f64)> {
    sqlx::query_as(
        "SELECT count(*), COALESCE(extract(epoch FROM now() - min(created_at)), 0)::float8 \
         FROM thread_outbox WHERE part = ANY($1)",
    )
    .bind(parts)
    .fetch_one(pool)
    .await
}

/// What a lease renewal learnt.
#[derive(Debug)]
pub struct Renewal {
    /// Relays seen within the lease lifetime, this one included.
    pub live: i64,
    /// The partitions this relay holds (renewed).
    pub mine: Vec<i16>,
    /// Every partition's current holder.
    pub owners: Vec<(i16, Uuid)>,
}

/// Records this relay's heartbeat, renews its leases for `ttl`, and reads who holds what.
pub async fn renew(pool: &PgPool, me: Uuid, ttl: Duration) -> sqlx::Result<Renewal> {
    let ttl_ms = ttl.as_millis() as f64;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO relay_members (replica, seen_at) VALUES ($1, now()) \
         ON CONFLICT (replica) DO UPDATE SET seen_at = now()",
    )
    .bind(me)
    .execute(&mut *tx)
    .await?;
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM relay_members WHERE seen_at > now() - $1 * interval '1 millisecond'",
    )
    .bind(ttl_ms)
    .fetch_one(&mut *tx)
    .await?;
    let mine: Vec<i16> = sqlx::query_scalar(
        "UPDATE relay_leases SET expires_at = now() + $2 * interval '1 millisecond' \
         WHERE owner = $1 RETURNING part",
    )
    .bind(me)
    .bind(ttl_ms)
    .fetch_all(&mut *tx)
    .await?;
    let owners: Vec<(i16, Uuid)> = sqlx::query_as(
        "SELECT part, owner FROM relay_leases WHERE owner IS NOT NULL AND expires_at > now()",
    )
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM relay_members WHERE seen_at < now() - interval '1 minute'")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Renewal { live, mine, owners })
}

/// Takes up to `n` partitions that nobody holds (free, or their lease expired).
pub async fn claim(pool: &PgPool, me: Uuid, n: i64, ttl: Duration) -> sqlx::Result<Vec<i16>> {
    sqlx::query_scalar(
        "UPDATE relay_leases SET owner = $1, expires_at = now() + $3 * interval '1 millisecond' \
         WHERE part IN (SELECT part FROM relay_leases WHERE owner IS NULL OR expires_at < now() \
                        ORDER BY part LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING part",
    )
    .bind(me)
    .bind(n)
    .bind(ttl.as_millis() as f64)
    .fetch_all(pool)
    .await
}

/// Gives partitions back (rebalancing, shutdown); `None` gives back all, and leaves.
pub async fn release(pool: &PgPool, me: Uuid, parts: Option<&[i16]>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE relay_leases SET owner = NULL, expires_at = '-infinity' \
         WHERE owner = $1 AND ($2::smallint[] IS NULL OR part = ANY($2))",
    )
    .bind(me)
    .bind(parts)
    .execute(pool)
    .await?;
    if parts.is_none() {
        sqlx::query("DELETE FROM relay_members WHERE replica = $1")
            .bind(me)
            .execute(pool)
            .await?;
    }
    Ok(())
}
