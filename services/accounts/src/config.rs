//! Accounts configuration, from flags or environment variables (see `hilo-accounts --help`).

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Args;
use hilo_kit::config::{GrpcArgs, JwtArgs, OriginArgs, RateLimit, TelemetryArgs, named_budgets};

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
    /// NATS URL; session revocations and user deletions go to JetStream (`chat.events.>`).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:14222")]
    pub nats_url: String,
    /// Accounts' own sign-in and sign-up budgets, for every caller (the gateway limits per
    /// address before): `email=N/Ds` (sign-ins per email), `caller=N/Ds` (sign-ins and sign-ups
    /// per client address, or per calling peer without one), comma-separated, or `off`.
    #[arg(
        long,
        env = "AUTH_THROTTLE",
        default_value = "email=10/300s,caller=60/60s"
    )]
    pub auth_throttle: Throttle,
    /// Lifetime of access tokens, in seconds. Short, because they cannot be revoked.
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value_t = 300)]
    pub access_token_ttl_secs: u64,
    /// The public URL and trusted origins, as the gateway reads them: a social sign-in may only
    /// come back to them (StartSocialSignIn's base and callback URLs).
    #[command(flatten)]
    pub origins: OriginArgs,
    #[command(flatten)]
    pub oauth: OAuthArgs,
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

/// OAuth providers for "Sign in with GitHub / Google". A provider is enabled only when both
/// its client id and secret are set; the endpoints are overridable for tests and proxies.
#[derive(Args, Clone, Debug)]
pub struct OAuthArgs {
    /// GitHub OAuth app client id (with GITHUB_CLIENT_SECRET, enables GitHub sign-in).
    #[arg(long, env = "GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,
    /// GitHub OAuth app client secret.
    #[arg(long, env = "GITHUB_CLIENT_SECRET", hide_env_values = true)]
    pub github_client_secret: Option<Secret>,
    /// GitHub's authorization endpoint.
    #[arg(
        long,
        env = "GITHUB_AUTHORIZE_URL",
        default_value = "https://github.com/login/oauth/authorize"
    )]
    pub github_authorize_url: String,
    /// GitHub's token endpoint.
    #[arg(
        long,
        env = "GITHUB_TOKEN_URL",
        default_value = "https://github.com/login/oauth/access_token"
    )]
    pub github_token_url: String,
    /// GitHub's REST API base (`/user` and `/user/emails` are read from it).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,
    /// Google OAuth client id (with GOOGLE_CLIENT_SECRET, enables Google sign-in).
    #[arg(long, env = "GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,
    /// Google OAuth client secret.
    #[arg(long, env = "GOOGLE_CLIENT_SECRET", hide_env_values = true)]
    pub google_client_secret: Option<Secret>,
    /// Google's authorization endpoint.
    #[arg(
        long,
        env = "GOOGLE_AUTHORIZE_URL",
        default_value = "https://accounts.google.com/o/oauth2/v2/auth"
    )]
    pub google_authorize_url: String,
    /// Google's token endpoint.
    #[arg(
        long,
        env = "GOOGLE_TOKEN_URL",
        default_value = "https://oauth2.googleapis.com/token"
    )]
    pub google_token_url: String,
    /// Google's OpenID Connect userinfo endpoint.
    #[arg(
        long,
        env = "GOOGLE_USERINFO_URL",
        default_value = "https://openidconnect.googleapis.com/v1/userinfo"
    )]
    pub google_userinfo_url: String,
    /// Timeout of each request to a provider, in seconds.
    #[arg(long, env = "OAUTH_HTTP_TIMEOUT_SECS", default_value_t = 10)]
    pub oauth_http_timeout_secs: u64,
}

/// A configured secret: never shown by `Debug`, so printing a config cannot leak it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// AUTH_THROTTLE: accounts' budgets per email and per caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    pub email: RateLimit,
    pub caller: RateLimit,
}

/// `email=N/Ds,caller=N/Ds` (one not named keeps its default), or `off`.
impl std::str::FromStr for Throttle {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let [email, caller] = named_budgets(s, ["email", "caller"], DEFAULT_THROTTLE)?;
        Ok(Self { email, caller })
    }
}

/// AUTH_THROTTLE's default: `email=10/300s,caller=60/60s`.
const DEFAULT_THROTTLE: [RateLimit; 2] = [
    RateLimit::PerWindow {
        max: 10,
        window_secs: 300,
    },
    RateLimit::PerWindow {
        max: 60,
        window_secs: 60,
    },
];

#[cfg(test)]
mod throttle_tests {
    use super::{RateLimit, Throttle};

    #[test]
    fn throttles_parse_per_key_or_off() {
        let both: Throttle = "email=10/300s,caller=60/60s".parse().unwrap();
        assert_eq!(
            both.email,
            RateLimit::PerWindow {
                max: 10,
                window_secs: 300
            }
        );
        assert_eq!(
            both.caller,
            RateLimit::PerWindow {
                max: 60,
                window_secs: 60
            }
        );
        let off: Throttle = "off".parse().unwrap();
        assert_eq!((off.email, off.caller), (RateLimit::Off, RateLimit::Off));
        assert!("ip=1/1s".parse::<Throttle>().is_err());
    }
}
