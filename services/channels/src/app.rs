//! Builds the channels service from its configuration and runs it until shutdown.

use std::net::SocketAddr;

use anyhow::Context;
use hilo_kit::{admin, auth, db, grpc, outbox, shutdown::CancellationToken};
use hilo_proto::{
    accounts::v1::accounts_service_client::AccountsServiceClient,
    channels::v1::channels_service_server::ChannelsServiceServer,
};
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{MIGRATOR, SCHEMA, config::Config, consumer, rpc::ChannelsRpc};

const SERVICE_NAME: &str = "hilo.channels.v1.ChannelsService";

/// A built, not yet running, channels service.
pub struct App {
    config: Config,
    listener: TcpListener,
    rpc: ChannelsRpc,
    jetstream: async_nats::jetstream::Context,
}

impl App {
    /// Connects PostgreSQL (migrating when configured) and NATS, gets the token key, binds.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = db::connect(&config.database_url, SCHEMA, config.db_max_connections).await?;
        if config.migrate_on_start {
            db::migrate(&pool, SCHEMA, &MIGRATOR).await?;
        }
        let (_, jetstream) = outbox::connect_events(&config.nats_url).await?;
        let verifier = auth::TokenVerifier::load(&config.verifier).await?;
        let accounts = AccountsServiceClient::new(grpc::connect(&config.verifier.accounts_url)?);
        let listener = grpc::bind(config.listen_addr).await?;
        let rpc = ChannelsRpc {
            pool,
            verifier,
            accounts,
            relay: outbox::Relay::new("outbox"),
        };
        Ok(Self {
            config,
            listener,
            rpc,
            jetstream,
        })
    }

    /// The bound gRPC address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves gRPC, the admin port, the outbox relay and the consumer of user deletions until
    /// `shutdown` is cancelled.
    pub async fn run(
        self,
        metrics: admin::Handle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let admin = admin::serve(self.config.admin_addr, metrics, shutdown.clone()).await?;
        tracing::info!(grpc = %self.listener.local_addr()?, %admin, "channels serving");
        consumer::spawn(
            &self.jetstream,
            &self.config.consumer,
            self.rpc.pool.clone(),
            self.rpc.relay.clone(),
            shutdown.clone(),
        )
        .await
        .context("starting the consumer of user deletions")?;
        self.rpc
            .relay
            .spawn(self.rpc.pool.clone(), self.jetstream, shutdown.clone());
        let routes = Routes::new(ChannelsServiceServer::new(self.rpc));
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
