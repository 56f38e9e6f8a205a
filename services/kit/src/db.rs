//! PostgreSQL for a service: one pool whose connections live in the service's own schema
//! (DESIGN §2: one schema per service), and the migrations of that schema.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// Connects a pool whose `search_path` is `schema`, so queries name tables without a prefix
/// and a service cannot read another's tables by accident.
pub async fn connect(url: &str, schema: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)
        .context("parsing DATABASE_URL")?
        .options([("search_path", schema)]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL")?;
    crate::admin::watch_pool("postgresql", &pool);
    Ok(pool)
}

/// Creates `schema` if needed and applies the migrations. Safe to run from several replicas
/// at once: the migrator holds a PostgreSQL advisory lock while it works.
pub async fn migrate(pool: &PgPool, schema: &str, migrator: &Migrator) -> anyhow::Result<()> {
    // The bookkeeping table lands in the first schema of the search_path, so it must exist
    // before the migrator looks for it.
    let ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS \"{}\"",
        schema.replace('"', "")
    );
    match sqlx::raw_sql(sqlx::AssertSqlSafe(ddl)).execute(pool).await {
        Ok(_) => {}
        // Two replicas creating the schema at the same instant: the loser sees a duplicate.
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {}
        Err(error) => return Err(error).with_context(|| format!("creating schema {schema}")),
    }
    migrator.run(pool).await.context("running migrations")?;
    Ok(())
}

/// The `migrate` subcommand of a service: connects, applies `schema`'s migrations, returns.
pub async fn migrate_only(url: &str, schema: &str, migrator: &Migrator) -> anyhow::Result<()> {
    let pool = connect(url, schema, 1).await?;
    migrate(&pool, schema, migrator).await?;
    tracing::info!(schema, "migrations applied");
    Ok(())
}

/// True when `error` is a unique violation of `constraint`.
pub fn is_unique_violation(error: &sqlx::Error, constraint: &str) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}

/// True when `error` is the database being out of reach for a while, not the request's fault:
/// the pool exhausted or closed, the connection lost, or PostgreSQL saying so (SQLSTATE
/// classes 08 connection exception, 40 transaction rollback such as a deadlock or a
/// serialization failure, 53 insufficient resources, and 57P01-57P03 shutting down or not yet
/// accepting connections). Callers answer UNAVAILABLE (503 with `Retry-After`), never INTERNAL.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(code.get(..2), Some("08" | "40" | "53"))
                || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}
