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
    let app = Router::new().route("/metrics", get(move || async move { handle.render() }));
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
