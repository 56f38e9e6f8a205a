//! Channels configuration, from flags or environment variables (see `hilo-channels serve --help`).

use std::net::SocketAddr;

use clap::Args;
use hilo_kit::config::{ConsumerArgs, GrpcArgs, TelemetryArgs, VerifierArgs};

/// Everything the channels service reads at start-up.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// gRPC listen address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50052")]
    pub listen_addr: SocketAddr,
    /// Admin listen address (Prometheus `/metrics`).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9152")]
    pub admin_addr: SocketAddr,
    /// PostgreSQL URL; channels keeps its tables in schema `channels`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Maximum PostgreSQL connections of this replica.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Apply migrations at start-up (development); in Kubernetes a hook Job runs `migrate`.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = false, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// NATS URL; membership and channel events go to JetStream (`chat.events.>`).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:14222")]
    pub nats_url: String,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    #[command(flatten)]
    pub verifier: VerifierArgs,
    #[command(flatten)]
    pub grpc: GrpcArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}
