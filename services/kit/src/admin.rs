//! The admin port: Prometheus metrics at `/metrics`, kept off the public listener so it is
//! never exposed through the ingress, never authenticated and never traced.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::{Router, routing::get};
use metrics_exporter_prometheus::PrometheusBuilder;
pub use metrics_exporter_prometheus::PrometheusHandle as Handle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Bucket bounds (seconds) of every latency histogram: from the sub-millisecond fan-out to
/// the slowest gRPC call. Histograms, not summaries, so operators can aggregate them across
/// replicas (`histogram_quantile(0.99, sum by (le) (rate(..._bucket[5m])))`).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide metrics recorder. Call once, before any metric is recorded.
pub fn install_recorder() -> anyhow::Result<Handle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .context("setting the histogram buckets")?
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    describe();
    let upkeep = handle.clone();
    // Recorded samples are drained into the buckets by upkeep; without it they pile up between
    // scrapes. On its own OS thread: at 200,000 deliveries/s a drain is work that would
    // otherwise stall one of the runtime's workers (and every socket it serves).
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                upkeep.run_upkeep();
            }
        })
        .context("starting the metrics upkeep thread")?;
    Ok(handle)
}

/// Binds the admin listener and serves `/metrics` until `shutdown` is cancelled.
/// Returns the bound address (the configured port may be 0 in tests).
pub async fn serve(
    addr: SocketAddr,
    handle: Handle,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admin listener on {addr}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new().route(
        "/metrics",
        get(move || async move {
            record_process();
            for read in PROBES
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
            {
                read();
            }
            handle.render()
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "admin server failed");
        }
    });
    Ok(bound)
}

/// What a scrape reads from the process's clients: set once at start-up by whoever builds them
/// ([`watch_pool`], [`watch_nats`]).
type Probe = Box<dyn Fn() + Send + Sync>;
static PROBES: std::sync::Mutex<Vec<Probe>> = std::sync::Mutex::new(Vec::new());

fn probe(read: impl Fn() + Send + Sync + 'static) {
    PROBES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Box::new(read));
}

/// Reports a PostgreSQL pool at each scrape: `db_pool_connections{pool, state}` (idle, in use)
/// and `db_pool_max_connections{pool}`.
pub fn watch_pool(name: &'static str, pool: &sqlx::PgPool) {
    let pool = pool.clone();
    probe(move || {
        let (size, idle) = (pool.size() as f64, pool.num_idle() as f64);
        metrics::gauge!("db_pool_connections", "pool" => name, "state" => "idle").set(idle);
        metrics::gauge!("db_pool_connections", "pool" => name, "state" => "in_use")
            .set(size - idle);
        metrics::gauge!("db_pool_max_connections", "pool" => name)
            .set(f64::from(pool.options().get_max_connections()));
    });
}

/// Reports a Redis connection (a multiplexed `ConnectionManager`, which has no pool to count):
/// a PING every 5 s sets `redis_connected` (1 or 0, 1 s to answer) and
/// `redis_ping_seconds` (the last round trip).
pub fn watch_redis(redis: &redis::aio::ConnectionManager) {
    let mut redis = redis.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            let started = std::time::Instant::now();
            let ping = redis::cmd("PING");
            let answer = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                ping.query_async::<String>(&mut redis),
            )
            .await;
            let up = matches!(answer, Ok(Ok(_)));
            metrics::gauge!("redis_connected").set(if up { 1.0 } else { 0.0 });
            if up {
                metrics::gauge!("redis_ping_seconds").set(started.elapsed().as_secs_f64());
            }
        }
    });
}

/// Reports a NATS connection at each scrape: `nats_connected` 1 or 0.
pub fn watch_nats(client: &async_nats::Client) {
    let client = client.clone();
    probe(move || {
        let up = client.connection_state() == async_nats::connection::State::Connected;
        metrics::gauge!("nats_connected").set(if up { 1.0 } else { 0.0 });
    });
}

/// `# HELP` text of Hilo's metrics (each process exports those it records).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    let histograms = [
        (
            "server_request_duration_seconds",
            "HTTP requests by method, route and status",
        ),
        (
            "rpc_server_call_duration_seconds",
            "gRPC calls served, by method and status code",
        ),
        (
            "rpc_client_call_duration_seconds",
            "gRPC calls made, by method and status code",
        ),
        (
            "realtime_delivery_seconds",
            "NATS receipt to socket write, 1 delivery in 8",
        ),
        (
            "relay_publish_lag_seconds",
            "thread event commit to JetStream acknowledgement",
        ),
    ];
    for (name, help) in histograms {
        describe_histogram!(name, Unit::Seconds, help);
    }
    let counters = [
        (
            "rpc_client_resent_total",
            "gRPC calls sent again: they never reached the server",
        ),
        (
            "rpc_client_read_retries_total",
            "gRPC reads asked again after a failure",
        ),
        ("realtime_deliveries_total", "events written to sockets"),
        (
            "realtime_gap_fetches_total",
            "holes in a thread's events fetched from messaging",
        ),
        (
            "realtime_unfillable_holes_total",
            "holes given up: sockets told RESYNC_REQUIRED",
        ),
        (
            "realtime_slow_consumers_total",
            "sockets closed 1008: their send queue overflowed",
        ),
        (
            "realtime_resume_total",
            "JOIN_THREAD with sinceSeq, by outcome",
        ),
        ("relay_published_total", "thread events published on NATS"),
        (
            "relay_publish_errors_total",
            "thread event publications that failed (retried)",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, help);
    }
    let gauges = [
        ("realtime_sockets", "open WebSockets"),
        (
            "realtime_thread_subscriptions",
            "threads with at least one local socket",
        ),
        (
            "relay_partitions_owned",
            "outbox partitions this messaging replica publishes",
        ),
        (
            "relay_backlog_events",
            "thread events committed, not yet published",
        ),
        (
            "relay_backlog_age_seconds",
            "age of the oldest unpublished thread event",
        ),
        (
            "db_pool_connections",
            "PostgreSQL pool connections, idle or in use",
        ),
        ("db_pool_max_connections", "PostgreSQL pool size limit"),
        ("nats_connected", "1 while the NATS connection is up"),
        ("redis_connected", "1 while Redis answers PING (every 5 s)"),
        ("redis_ping_seconds", "the last Redis PING round trip"),
        ("http_server_active_requests", "HTTP requests being served"),
        ("rpc_server_active_calls", "gRPC calls being served"),
        (
            "process_cpu_seconds_total",
            "user and system CPU time of the process",
        ),
        (
            "process_resident_memory_bytes",
            "resident memory of the process",
        ),
        ("process_open_fds", "open file descriptors of the process"),
        (
            "process_start_time_seconds",
            "start time of the process, since the Unix epoch",
        ),
    ];
    for (name, help) in gauges {
        describe_gauge!(name, help);
    }
}

/// Prometheus's standard process metrics, read from `/proc` at each scrape (Linux; elsewhere
/// they are absent).
fn record_process() {
    // The clock tick and page size of every Linux target Hilo ships for.
    const TICKS_PER_SEC: f64 = 100.0;
    const PAGE_BYTES: f64 = 4096.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // After the command name (in parentheses, and possibly with spaces) come fields 3...
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0);
    metrics::gauge!("process_cpu_seconds_total").set((field(14) + field(15)) / TICKS_PER_SEC);
    metrics::gauge!("process_resident_memory_bytes").set(field(24) * PAGE_BYTES);
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("process_open_fds").set(fds.count() as f64);
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|stat| {
        stat.lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|secs| secs.trim().parse::<f64>().ok())
    });
    if let Some(boot) = boot {
        metrics::gauge!("process_start_time_seconds").set(boot + field(22) / TICKS_PER_SEC);
    }
}
