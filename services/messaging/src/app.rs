//! Builds the messaging service from its configuration and runs it until shutdown.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hilo_kit::{admin, auth, db, grpc, outbox, shutdown::CancellationToken};
use hilo_proto::{messaging::v1::messaging_service_server::MessagingServiceServer, subjects};
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{
    MIGRATOR, SCHEMA, access::Access, config::Config, consumer, posting, relay, rpc::MessagingRpc,
};

const SERVICE_NAME: &str = "hilo.messaging.v1.MessagingService";

/// A built, not yet running, messaging service.
pub struct App {
    config: Config,
    listener: TcpListener,
    rpc: MessagingRpc,
    relay: relay::Runner,
    nats: async_nats::Client,
}

impl App {
    /// Connects PostgreSQL (migrating when configured) and NATS, gets the token key, binds.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = db::connect(&config.database_url, SCHEMA, config.db_max_connections).await?;
        if config.migrate_on_start {
            db::migrate(&pool, SCHEMA, &MIGRATOR).await?;
        }
        let (nats, js) = outbox::connect_events(&config.nats_url).await?;
        // Thread events are kept a day: enough for consumers that were away to catch up.
        let day = Duration::from_secs(24 * 3600);
        outbox::ensure_stream(&js, subjects::THREADS_STREAM, subjects::THREADS_ALL, day).await?;
        let verifier = auth::TokenVerifier::load(&config.verifier).await?;
        let access = Access::new(
            grpc::connect(&config.channels_url)?,
            grpc::connect(&config.verifier.accounts_url)?,
            Duration::from_millis(config.permission_cache_ms),
        );
        let listener = grpc::bind(config.listen_addr).await?;
        let (relay, runner) = relay::channel();
        let rpc = MessagingRpc {
            posts: posting::Posts::new(pool.clone(), relay.clone()),
            channels_of: moka::sync::Cache::new(100_000),
            pool,
            verifier,
            access: Arc::new(access),
            relay,
        };
        Ok(Self {
            config,
            listener,
            rpc,
            relay: runner,
            nats,
        })
    }

    /// The bound gRPC address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves gRPC, the admin port, the relay and the consumers until `shutdown`.
    pub async fn run(
        self,
        metrics: admin::Handle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let admin = admin::serve(self.config.admin_addr, metrics, shutdown.clone()).await?;
        tracing::info!(grpc = %self.listener.local_addr()?, %admin, "messaging serving");
        self.relay
            .spawn(self.rpc.pool.clone(), self.nats.clone(), shutdown.clone())
            .await?;
        consumer::spawn(
            self.nats,
            &self.config.consumer,
            self.rpc.pool.clone(),
            self.rpc.access.clone(),
            shutdown.clone(),
        )
        .await?;
        let routes = Routes::new(MessagingServiceServer::new(self.rpc));
        grpc::serve(
            routes,
            grpc::ServeOptions {
                listener: self.listener,
                args: &self.config.grpc,
                descriptors: hilo_proto::FILE_DESCRIPTOR_SET,
                service_names: &[SERVICE_NAME],
                shutdown,
            },
        )
        .await
    }
}

/// Applies the schema's migrations and returns (the `migrate` subcommand).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    db::migrate_only(&config.database_url, SCHEMA, &MIGRATOR).await
}
