//! Messaging configuration, from flags or environment variables (see `hilo-messaging serve --help`).

use std::net::SocketAddr;

use clap::Args;
use hilo_kit::config::{ConsumerArgs, GrpcArgs, TelemetryArgs, VerifierArgs};

/// Everything the messaging service reads at start-up.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// gRPC listen address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50053")]
    pub listen_addr: SocketAddr,
    /// Admin listen address (Prometheus `/metrics`).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9153")]
    pub admin_addr: SocketAddr,
    /// PostgreSQL URL; messaging keeps its tables in schema `messaging`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Maximum PostgreSQL connections of this replica.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Apply migrations at start-up (development); in Kubernetes a hook Job runs `migrate`.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = false, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// NATS URL: thread events go to `chat.thread.<id>`; channel deletions come from JetStream.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:14222")]
    pub nats_url: String,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    /// gRPC address of the channels service (permission checks).
    #[arg(long, env = "CHANNELS_URL", default_value = "http://127.0.0.1:50052")]
    pub channels_url: String,
    /// How long a "may read / may post" answer from channels is reused, in milliseconds.
    #[arg(long, env = "PERMISSION_CACHE_MS", default_value_t = 3000)]
    pub permission_cache_ms: u64,
    #[command(flatten)]
    pub verifier: VerifierArgs,
    #[command(flatten)]
    pub grpc: GrpcArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}
