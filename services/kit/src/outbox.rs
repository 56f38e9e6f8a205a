//! Durable event publication: an event is written to the service's `outbox` table in the same
//! transaction as the change it describes, and a relay publishes it to JetStream afterwards,
//! retrying until the server acknowledges. JetStream de-duplicates by the event id
//! (`Nats-Msg-Id`), so a relay that crashes between publishing and marking the row still
//! delivers each event once. Each service keeps its own table (any name; messaging's per-thread
//! event log is its outbox) with at least these columns:
//!
//! ```sql
//! CREATE TABLE outbox (
//!     id uuid PRIMARY KEY, subject text NOT NULL, payload bytea NOT NULL,
//!     traceparent text, created_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz
//! );
//! ```

use std::{sync::Arc, time::Duration};

use async_nats::{HeaderMap, jetstream};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::telemetry;

/// Records a cross-service event (a JSON object) in the `outbox` table in the current
/// transaction, with the current trace context. Its `id` field is set here: a fresh UUIDv7,
/// also the JetStream de-duplication id. Call [`Relay::wake`] after commit.
pub async fn enqueue(
    tx: &mut PgConnection,
    subject: &str,
    mut event: serde_json::Value,
) -> sqlx::Result<()> {
    let id = Uuid::now_v7();
    event["id"] = serde_json::Value::String(id.to_string());
    let payload = event.to_string().into_bytes();
    let traceparent = telemetry::traceparent();
    sqlx::query("INSERT INTO outbox (id, subject, payload, traceparent) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(subject)
        .bind(payload)
        .bind(traceparent)
        .execute(tx)
        .await?;
    Ok(())
}

/// The handle that wakes the relay after a commit.
#[derive(Clone)]
pub struct Relay {
    wake: Arc<Notify>,
    table: &'static str,
}

impl Relay {
    /// A relay for the events of `table` (a fixed name from the service's own code).
    pub fn new(table: &'static str) -> Self {
        Self {
            wake: Arc::default(),
            table,
        }
    }

    /// Publish what was just committed without waiting for the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs the relay until shutdown: publishes pending rows oldest first, on wake-up or every
    /// second (a committed row whose wake-up was lost, or that failed, is picked up then).
    pub fn spawn(&self, pool: PgPool, js: jetstream::Context, shutdown: CancellationToken) {
        let (wake, table) = (self.wake.clone(), self.table);
        tokio::spawn(async move {
            loop {
                match publish_pending(&pool, &js, table).await {
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), "outbox relay will retry")
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }
}

#[derive(sqlx::FromRow)]
struct Pending {
    id: Uuid,
    subject: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
}

/// Publishes up to 100 pending events in order; returns how many went out.
async fn publish_pending(
    pool: &PgPool,
    js: &jetstream::Context,
    table: &str,
) -> anyhow::Result<usize> {
    let pending: Vec<Pending> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, subject, payload, traceparent FROM {table} WHERE published_at IS NULL \
         ORDER BY created_at, id LIMIT 100"
    )))
    .fetch_all(pool)
    .await?;
    for event in &pending {
        // A producer span in the trace of the request that wrote the event, so the trace
        // shows the wait in the outbox and consumers continue from the publish.
        let span = tracing::info_span!(
            "publish",
            subject = %event.subject,
            otel.kind = "producer",
            trace_id = tracing::field::Empty,
        );
        if let Some(traceparent) = &event.traceparent {
            telemetry::continue_from(&span, traceparent);
        }
        span.record(
            "trace_id",
            tracing::field::display(telemetry::trace_id(&span)),
        );
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
        span.in_scope(|| telemetry::inject_nats(&mut headers));
        js.publish_with_headers(event.subject.clone(), headers, event.payload.clone().into())
            .instrument(span.clone())
            .await?
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET published_at = now() WHERE id = $1"
        )))
        .bind(event.id)
        .execute(pool)
        .await?;
    }
    Ok(pending.len())
}

/// Longest pause between two reconnection attempts: async-nats's default grows to 4 s, so a
/// NATS restart of a few seconds left services deaf for up to 4 s more.
const NATS_RECONNECT_MAX: std::time::Duration = std::time::Duration::from_millis(500);

/// Connects to NATS, reconnecting for ever after a loss (1, 2, 4 ... ms apart, at most
/// 500 ms), as every service does.
pub async fn connect(nats_url: &str) -> anyhow::Result<async_nats::Client> {
    use anyhow::Context as _;
    let client = async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|attempts| {
            let exp = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
            let delay = std::time::Duration::from_millis(2u64.saturating_pow(exp));
            delay.min(NATS_RECONNECT_MAX)
        })
        .connect(nats_url)
        .await
        .context("connecting to NATS")?;
    crate::admin::watch_nats(&client);
    Ok(client)
}

/// Connects to NATS and makes sure the events stream exists, as every service that publishes
/// or consumes cross-service events does at start-up.
pub async fn connect_events(
    nats_url: &str,
) -> anyhow::Result<(async_nats::Client, jetstream::Context)> {
    use anyhow::Context as _;
    let nats = connect(nats_url).await?;
    let js = jetstream::new(nats.clone());
    ensure_events_stream(&js)
        .await
        .context("creating the events stream")?;
    Ok((nats, js))
}

/// The messages of the service's durable consumer of `filter` events on `CHAT_EVENTS` (named
/// by `args`, else `default_name`), acknowledged explicitly, redelivered after 30 s.
pub async fn durable_consumer(
    js: &jetstream::Context,
    args: &crate::config::ConsumerArgs,
    default_name: &str,
    filter: &str,
) -> anyhow::Result<jetstream::consumer::pull::Stream> {
    let name = args.events_consumer.as_deref().unwrap_or(default_name);
    let stream = js.get_stream(hilo_proto::subjects::EVENTS_STREAM).await?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            name,
            jetstream::consumer::pull::Config {
                durable_name: Some(name.to_owned()),
                filter_subject: filter.to_owned(),
                ack_wait: Duration::from_secs(30),
                inactive_threshold: Duration::from_secs(args.events_consumer_inactive_secs),
                ..Default::default()
            },
        )
        .await?;
    Ok(consumer.messages().await?)
}

/// Creates (or keeps) a durable stream over `subjects` keeping messages for `max_age`, with
/// the two-minute de-duplication window the relay relies on.
pub async fn ensure_stream(
    js: &jetstream::Context,
    name: &str,
    subjects: &str,
    max_age: Duration,
) -> anyhow::Result<()> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        max_age,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// The durable stream of cross-service events (`chat.events.>`), kept a week.
pub async fn ensure_events_stream(js: &jetstream::Context) -> anyhow::Result<()> {
    use hilo_proto::subjects::{EVENTS_ALL, EVENTS_STREAM};
    ensure_stream(
        js,
        EVENTS_STREAM,
        EVENTS_ALL,
        Duration::from_secs(7 * 24 * 3600),
    )
    .await
}
