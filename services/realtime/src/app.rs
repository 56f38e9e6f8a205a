//! Builds a realtime replica (clients once: one NATS connection, one Redis connection, gRPC
//! channels to accounts and messaging) and serves it. On shutdown it stops accepting, tells
//! every socket to close with 1012 "reconnect", and waits for them within the grace period:
//! axum's graceful shutdown does not wait for upgraded connections, so sockets are tracked.

use std::{net::SocketAddr, ops::Deref, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Router, http::StatusCode, routing::get, serve::ListenerExt as _};
use hilo_kit::{admin, grpc, session::Cookies, shutdown::CancellationToken};
use hilo_proto::accounts::v1::accounts_service_client::AccountsServiceClient;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::{
    authz::{AuthzCache, Messaging},
    config::Config,
    error::not_found,
    events,
    fanout::Hub,
    presence::Presence,
    ws,
};

/// What sockets share; built once, cloned per socket (one `Arc`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The shared parts.
pub struct Shared {
    pub config: Config,
    pub accounts: hilo_kit::session::AccountsClient,
    pub messaging: Messaging,
    pub redis: redis::aio::ConnectionManager,
    pub cookies: Cookies,
    pub trusted_origins: Vec<String>,
    pub hub: Arc<Hub>,
    pub presence: Arc<Presence>,
    /// Cancelled on SIGTERM: sessions close with 1012.
    pub shutdown: CancellationToken,
    /// Open sockets, awaited on shutdown.
    pub sockets: TaskTracker,
    /// Recent session lookups of this replica (see [`AppState::session`]).
    pub sessions: crate::sessions::SessionCache,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// A built, not yet serving, replica.
pub struct App {
    config: Config,
    listener: TcpListener,
    nats: async_nats::Client,
    redis: redis::aio::ConnectionManager,
}

impl App {
    /// Validates configuration, connects NATS and Redis, binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.secret()?;
        config.origins.trusted()?;
        let nats = hilo_kit::outbox::connect(&config.nats_url).await?;
        let redis = hilo_kit::session::connect_redis(&config.redis_url).await?;
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("binding {}", config.listen_addr))?;
        Ok(Self {
            config,
            listener,
            nats,
            redis,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown`, then drains sockets for up to SHUTDOWN_GRACE_SECS.
    pub async fn run(
        self,
        metrics: admin::Handle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let config = self.config;
        let messaging = Messaging::new(grpc::connect(&config.messaging_url)?);
        let hub = Hub::new(
            self.nats.clone(),
            messaging.clone(),
            AuthzCache::new(Duration::from_secs(config.authz_cache_secs)),
            Duration::from_secs(config.gap_repair_secs),
        );
        hub.serve_echo().await?;
        let presence = Presence::new(
            self.redis.clone(),
            Duration::from_secs(config.presence_ttl_secs),
        );
        tokio::spawn(presence.clone().heartbeat(shutdown.clone()));
        let state = AppState(Arc::new(Shared {
            accounts: AccountsServiceClient::new(grpc::connect(&config.accounts_url)?),
            messaging,
            redis: self.redis,
            cookies: Cookies::new(&config.secret()?, config.origins.secure_prefix(), false),
            trusted_origins: config.origins.trusted()?,
            hub,
            presence,
            shutdown: shutdown.clone(),
            sockets: TaskTracker::new(),
            sessions: crate::sessions::SessionCache::new(Duration::from_secs(
                (config.session_check_secs / 2).max(1),
            )),
            config,
        }));
        events::follow(self.nats, state.clone()).await?;
        let admin = admin::serve(state.config.admin_addr, metrics, shutdown.clone()).await?;
        tracing::info!(http = %self.listener.local_addr()?, %admin, "realtime serving");
        let router = Router::new()
            .route("/ws", get(ws::upgrade))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready))
            .fallback(not_found)
            .layer(axum::middleware::from_fn(hilo_kit::telemetry::observe))
            .with_state(state.clone());
        let stop = shutdown.clone();
        // TCP_NODELAY: small frames go out at once instead of waiting for a delayed ACK.
        let send_buffer = state.config.ws_send_buffer;
        let listener = self.listener.tap_io(move |tcp| {
            let _ = tcp.set_nodelay(true);
            if send_buffer > 0 {
                let _ = socket2::SockRef::from(&*tcp).set_send_buffer_size(send_buffer);
            }
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .context("serving HTTP")?;
        state.sockets.close();
        let grace = Duration::from_secs(state.config.shutdown_grace_secs.max(1));
        if tokio::time::timeout(grace, state.sockets.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = state.sockets.len(),
                "sockets still open after the grace period"
            );
        }
        tracing::info!("realtime stopped");
        Ok(())
    }
}

async fn ready(axum::extract::State(state): axum::extract::State<AppState>) -> StatusCode {
    if state.shutdown.is_cancelled() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}
