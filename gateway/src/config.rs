//! Gateway configuration, from flags or environment variables (see `hilo-gateway --help`).

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, bail};
use clap::Parser;
use hilo_kit::config::{OriginArgs, RateLimit, TelemetryArgs};

/// Everything the gateway reads at start-up.
#[derive(Parser, Clone, Debug)]
#[command(name = "hilo-gateway", version, about = "Hilo's public HTTP gateway")]
pub struct Config {
    /// HTTP listen address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,
    /// Admin listen address (Prometheus `/metrics`).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9180")]
    pub admin_addr: SocketAddr,
    /// gRPC address of the accounts service.
    #[arg(long, env = "ACCOUNTS_URL", default_value = "http://127.0.0.1:50051")]
    pub accounts_url: String,
    /// gRPC address of the channels service.
    #[arg(long, env = "CHANNELS_URL", default_value = "http://127.0.0.1:50052")]
    pub channels_url: String,
    /// gRPC address of the messaging service.
    #[arg(long, env = "MESSAGING_URL", default_value = "http://127.0.0.1:50053")]
    pub messaging_url: String,
    /// A realtime replica (or Service) to hand `/ws` upgrades to, e.g. `http://realtime:8090`;
    /// unset, `/ws` is not served here (route it to realtime directly).
    #[arg(long, env = "REALTIME_URL")]
    pub realtime_url: Option<String>,
    /// gRPC address of the uploads service.
    #[arg(long, env = "UPLOADS_URL", default_value = "http://127.0.0.1:50054")]
    pub uploads_url: String,
    /// Redis URL: rate limits and the session -> access-token cache, shared by all replicas.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: String,
    /// Secret that signs session cookies (Better Auth's); required outside development.
    #[arg(long, env = "BETTER_AUTH_SECRET", hide_env_values = true)]
    pub better_auth_secret: Option<String>,
    #[command(flatten)]
    pub origins: OriginArgs,
    /// Sign-in/sign-up budget per client IP: `N/Ds` (e.g. `3/10s`) or `off`.
    #[arg(long, env = "AUTH_RATE_LIMIT", default_value = "3/10s")]
    pub auth_rate_limit: RateLimit,
    /// Budgets of app routes per class, for each user (each client address has ten times
    /// them): `reads`, `writes`, `uploads`, `invites` as `class=N/Ds`,
    /// comma-separated (classes not named keep their default), or `off`.
    #[arg(long, env = "RATE_LIMITS", default_value = crate::ratelimit::DEFAULT_RATE_LIMITS)]
    pub rate_limits: crate::ratelimit::Budgets,
    /// `production` makes cookies `Secure; SameSite=None`; otherwise `SameSite=Lax`.
    #[arg(long, env = "DEPLOYMENT", default_value = "development")]
    pub deployment: String,
    /// How many proxies in front of the gateway append to `X-Forwarded-For` (an ingress: 1; a
    /// CDN, then an ingress: 2). The client IP is the entry that many places from the right:
    /// the ones further left are written by the client and never trusted. 0: the peer address.
    #[arg(long, env = "TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: u8,
    /// Former setting: `true` means one trusted proxy (TRUSTED_PROXY_HOPS=1).
    #[arg(long, env = "TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,
    /// Requests taking longer are answered 504.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Upload requests (`/api/uploads/*`) taking longer are answered 504: files of tens of MiB
    /// need more than REQUEST_TIMEOUT_SECS on a slow link.
    #[arg(long, env = "UPLOAD_TIMEOUT_SECS", default_value_t = 600)]
    pub upload_timeout_secs: u64,
    /// Development mode: allows running without BETTER_AUTH_SECRET (a fixed, public one is used).
    #[arg(long, env = "HILO_DEV", default_value_t = false, action = clap::ArgAction::Set)]
    pub dev: bool,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// The secret used in development when none is configured. Never valid in production.
const DEV_SECRET: &str = "hilo-development-secret-do-not-use-in-production";

impl Config {
    /// The cookie-signing secret; refuses to go on without one unless in development.
    pub fn secret(&self) -> anyhow::Result<String> {
        match &self.better_auth_secret {
            Some(secret) if secret.len() >= 16 => Ok(secret.clone()),
            Some(_) => bail!("BETTER_AUTH_SECRET must be at least 16 characters"),
            None if self.dev => {
                tracing::warn!(
                    "BETTER_AUTH_SECRET is not set; using the public development secret"
                );
                Ok(DEV_SECRET.to_owned())
            }
            None => {
                bail!("BETTER_AUTH_SECRET is required (or set HILO_DEV=true for local development)")
            }
        }
    }

    pub fn production(&self) -> bool {
        self.deployment == "production"
    }

    /// Trusted proxy hops, counting the former TRUST_FORWARDED_FOR as one.
    pub fn proxy_hops(&self) -> u8 {
        self.trusted_proxy_hops
            .max(u8::from(self.trust_forwarded_for))
    }

    /// `host:port` of REALTIME_URL, when set.
    pub fn realtime_addr(&self) -> anyhow::Result<Option<String>> {
        let Some(url) = &self.realtime_url else {
            return Ok(None);
        };
        let url = url::Url::parse(url).context("REALTIME_URL is not a URL")?;
        let host = url.host_str().context("REALTIME_URL without a host")?;
        let port = url
            .port_or_known_default()
            .context("REALTIME_URL without a port")?;
        Ok(Some(format!("{host}:{port}")))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    /// The budget of `/api/uploads/*` requests.
    pub fn upload_timeout(&self) -> Duration {
        Duration::from_secs(self.upload_timeout_secs.max(1))
    }
}
