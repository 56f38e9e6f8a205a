//! The admin port: Prometheus metrics at `/metrics`, kept off the public listener so it is
//! never exposed through the ingress, never authenticated and never traced.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::{Router, routing::get};
use metrics_exporter_prometheus::PrometheusBuilder;
pub use metrics_exporter_prometheus::PrometheusHandle as Handle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Installs the process-wide metrics recorder. Call once, before any metric is recorded.
pub fn install_recorder() -> anyhow::Result<Handle> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    let upkeep = handle.clone();
    // Histograms are drained by upkeep; without it their buffers grow between scrapes.
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
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
