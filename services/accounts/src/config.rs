//! Accounts configuration, from flags or environment variables (see `hilo-accounts --help`).

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Args;
use hilo_kit::config::{GrpcArgs, JwtArgs, TelemetryArgs};

/// Everything the accounts service reads at start-up.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// gRPC listen address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub listen_addr: SocketAddr,
    /// Admin listen address (Prometheus `/metrics`).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9151")]
    pub admin_addr: SocketAddr,
    /// PostgreSQL URL; accounts keeps its tables in schema `accounts`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Maximum PostgreSQL connections of this replica.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Apply migrations at start-up (development); in Kubernetes a hook Job runs `migrate`.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = false, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// Ed25519 private key (PKCS#8 PEM) that signs access tokens; `hilo-accounts keygen` makes one.
    #[arg(long, env = "JWT_PRIVATE_KEY", hide_env_values = true)]
    pub jwt_private_key: Option<String>,
    /// File holding the private key, instead of JWT_PRIVATE_KEY.
    #[arg(long, env = "JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<PathBuf>,
    /// Lifetime of access tokens, in seconds. Short, because they cannot be revoked.
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value_t = 300)]
    pub access_token_ttl_secs: u64,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub grpc: GrpcArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Config {
    /// The signing key's PEM, from the variable or the file.
    pub fn private_key_pem(&self) -> anyhow::Result<String> {
        match (&self.jwt_private_key, &self.jwt_private_key_file) {
            (Some(pem), _) => Ok(pem.clone()),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("reading JWT_PRIVATE_KEY_FILE {}", path.display())),
            (None, None) => anyhow::bail!(
                "JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE is required (make one with `hilo-accounts keygen`)"
            ),
        }
    }
}
