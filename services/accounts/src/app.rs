//! Builds the accounts service from its configuration and runs it until shutdown.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use hilo_kit::{admin, auth::TokenVerifier, db, grpc, outbox, shutdown::CancellationToken};
use hilo_proto::accounts::v1::accounts_service_server::AccountsServiceServer;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{
    MIGRATOR, SCHEMA, config::Config, providers::Providers, rpc::AccountsRpc, tokens::Signer,
};

const SERVICE_NAME: &str = "hilo.accounts.v1.AccountsService";

/// A built, not yet running, accounts service: listeners bound, pool connected, keys loaded.
pub struct App {
    config: Config,
    listener: TcpListener,
    rpc: AccountsRpc,
    jetstream: async_nats::jetstream::Context,
}

impl App {
    /// Connects to PostgreSQL (migrating when configured) and NATS, loads the signing key,
    /// builds the OAuth providers' clients, binds.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let signer = Signer::new(
            &config.private_key_pem()?,
            &config.jwt.jwt_issuer,
            &config.jwt.jwt_audience,
            config.access_token_ttl_secs,
        )?;
        let verifier =
            TokenVerifier::from_public_pem(signer.public_pem(), signer.issuer(), signer.audience())
                .context("building the token verifier")?;
        let pool = db::connect(&config.database_url, SCHEMA, config.db_max_connections).await?;
        if config.migrate_on_start {
            db::migrate(&pool, SCHEMA, &MIGRATOR).await?;
        }
        let (_, jetstream) = outbox::connect_events(&config.nats_url).await?;
        let providers = Providers::from_config(&config.oauth)?;
        tracing::info!(providers = ?providers.enabled(), "OAuth providers");
        let listener = grpc::bind(config.listen_addr).await?;
        let rpc = AccountsRpc {
            pool,
            signer: Arc::new(signer),
            verifier,
            providers: Arc::new(providers),
            relay: outbox::Relay::new("outbox"),
            trusted_origins: config.origins.trusted()?.into(),
            throttle: config.auth_throttle,
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

    /// Serves gRPC, the admin port and the outbox relay until `shutdown` is cancelled.
    pub async fn run(
        self,
        metrics: admin::Handle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let admin = admin::serve(self.config.admin_addr, metrics, shutdown.clone()).await?;
        tracing::info!(grpc = %self.listener.local_addr()?, %admin, "accounts serving");
        self.rpc
            .relay
            .spawn(self.rpc.pool.clone(), self.jetstream, shutdown.clone());
        let routes = Routes::new(AccountsServiceServer::new(self.rpc));
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
