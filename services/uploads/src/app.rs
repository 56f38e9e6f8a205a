//! Builds the uploads service from its configuration and runs it until shutdown.

use std::net::SocketAddr;

use anyhow::Context;
use hilo_kit::{admin, auth::TokenVerifier, grpc, shutdown::CancellationToken};
use hilo_proto::uploads::v1::uploads_service_server::UploadsServiceServer;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{config::Config, rpc::UploadsRpc, s3::Store};

const SERVICE_NAME: &str = "hilo.uploads.v1.UploadsService";

/// A built, not yet running, uploads service: key loaded, S3 client built, listener bound.
pub struct App {
    config: Config,
    listener: TcpListener,
    rpc: UploadsRpc,
}

impl App {
    /// Gets the token key (waiting for accounts if needed), builds the S3 client (creating the
    /// bucket when configured), then binds, so a bound port means ready to serve.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let verifier = TokenVerifier::load(&config.verifier)
            .await
            .context("building the token verifier")?;
        let storage = config.s3.storage()?;
        let store = Store::connect(&storage).await?;
        tracing::info!(
            bucket = storage.bucket,
            endpoint = storage.endpoint.as_deref().unwrap_or("aws"),
            "S3 client ready"
        );
        let listener = grpc::bind(config.listen_addr).await?;
        let rpc = UploadsRpc {
            store,
            verifier,
            presign_ttl: config.presign_ttl(),
        };
        Ok(Self {
            config,
            listener,
            rpc,
        })
    }

    /// The bound gRPC address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves gRPC and the admin port until `shutdown` is cancelled.
    pub async fn run(
        self,
        metrics: admin::Handle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let admin = admin::serve(self.config.admin_addr, metrics, shutdown.clone()).await?;
        tracing::info!(grpc = %self.listener.local_addr()?, %admin, "uploads serving");
        let routes = Routes::new(UploadsServiceServer::new(self.rpc));
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
