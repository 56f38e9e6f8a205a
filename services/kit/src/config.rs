//! Configuration shared by every binary. Each service declares its own `Config` with clap and
//! flattens these groups into it, so every variable shows up in `--help` with its default.

use std::time::Duration;

use clap::{Args, ValueEnum};

/// How logs are written to stdout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line: what log collectors parse.
    #[default]
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

/// Logging and tracing settings.
#[derive(Args, Clone, Debug)]
pub struct TelemetryArgs {
    /// Log format: json or pretty. Filter with RUST_LOG (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// OTLP/gRPC collector; traces are exported only when set (standard OTEL_* variables apply).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// The public URL and the origins trusted for auth (CSRF and `/ws` origin checks, callback
/// URLs), read the same way by the gateway, realtime and accounts.
#[derive(Args, Clone, Debug)]
pub struct OriginArgs {
    /// Public base URL; its origin is trusted, and `https://` makes cookies `__Secure-`.
    #[arg(long, env = "BETTER_AUTH_URL", default_value = "http://localhost:8080")]
    pub better_auth_url: String,
    /// Browser origins of the web client (comma-separated): allowed by CORS, trusted for auth.
    #[arg(long, env = "CORS_ORIGIN", default_value = "http://localhost:8081")]
    pub cors_origin: String,
    /// More trusted origins (comma-separated); `exp://` trusts an Expo app.
    #[arg(long, env = "TRUSTED_ORIGINS", default_value = "")]
    pub trusted_origins: String,
    /// Better Auth's name for the same list.
    #[arg(long, env = "BETTER_AUTH_TRUSTED_ORIGINS", default_value = "")]
    pub better_auth_trusted_origins: String,
}

impl OriginArgs {
    /// CORS_ORIGIN's entries.
    pub fn cors_origins(&self) -> Vec<String> {
        split(&self.cors_origin)
    }

    /// Every trusted origin: BETTER_AUTH_URL's, CORS_ORIGIN, TRUSTED_ORIGINS and
    /// BETTER_AUTH_TRUSTED_ORIGINS (without the original's hard-coded LAN addresses).
    pub fn trusted(&self) -> anyhow::Result<Vec<String>> {
        use anyhow::Context as _;
        let base =
            url::Url::parse(&self.better_auth_url).context("BETTER_AUTH_URL is not a URL")?;
        let mut origins = vec![base.origin().ascii_serialization()];
        for list in [
            &self.cors_origin,
            &self.trusted_origins,
            &self.better_auth_trusted_origins,
        ] {
            origins.extend(split(list));
        }
        origins.dedup();
        Ok(origins)
    }

    /// True when cookies carry the `__Secure-` prefix.
    pub fn secure_prefix(&self) -> bool {
        self.better_auth_url.starts_with("https://")
    }
}

fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().trim_end_matches('/').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Access-token settings shared by the signer (accounts) and every verifier.
#[derive(Args, Clone, Debug)]
pub struct JwtArgs {
    /// `iss` claim of access tokens.
    #[arg(long, env = "JWT_ISSUER", default_value = "hilo")]
    pub jwt_issuer: String,
    /// `aud` claim of access tokens.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "hilo")]
    pub jwt_audience: String,
}

/// Where a token verifier gets accounts' public key: the variable, or accounts itself.
#[derive(Args, Clone, Debug)]
pub struct VerifierArgs {
    /// Ed25519 public key that verifies access tokens: SubjectPublicKeyInfo PEM, or an X.509
    /// certificate PEM holding it. When unset it is fetched once at start-up from accounts
    /// (`GetPublicKey` at ACCOUNTS_URL).
    #[arg(long, env = "JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<String>,
    /// gRPC address of the accounts service.
    #[arg(long, env = "ACCOUNTS_URL", default_value = "http://127.0.0.1:50051")]
    pub accounts_url: String,
    #[command(flatten)]
    pub jwt: JwtArgs,
}

/// The service's durable JetStream consumer of cross-service events (`CHAT_EVENTS`).
#[derive(Args, Clone, Debug)]
pub struct ConsumerArgs {
    /// Name of the durable consumer; the service's replicas share it, so each event is handled
    /// once. Installations (or test stacks) sharing one NATS but not one database need one
    /// each, or they would take each other's events. Default: a fixed name per service.
    #[arg(long, env = "EVENTS_CONSUMER")]
    pub events_consumer: Option<String>,
    /// Seconds with no replica pulling after which NATS deletes the consumer; 0 keeps it for
    /// ever (production: events wait while every replica is down). For throwaway stacks.
    #[arg(long, env = "EVENTS_CONSUMER_INACTIVE_SECS", default_value_t = 0)]
    pub events_consumer_inactive_secs: u64,
}

/// gRPC server settings.
#[derive(Args, Clone, Debug)]
pub struct GrpcArgs {
    /// Close client connections after this many seconds (with a grace period), so that
    /// long-lived HTTP/2 connections re-balance over the replicas behind a Service.
    #[arg(long, env = "GRPC_MAX_CONNECTION_AGE_SECS", default_value_t = 30)]
    pub grpc_max_connection_age_secs: u64,
    /// Serve gRPC server reflection (v1 and v1alpha).
    #[arg(long, env = "GRPC_REFLECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub grpc_reflection: bool,
}

impl GrpcArgs {
    /// The maximum connection age as a duration.
    pub fn max_connection_age(&self) -> Duration {
        Duration::from_secs(self.grpc_max_connection_age_secs.max(1))
    }
}

/// A request budget per window, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimit {
    Off,
    PerWindow { max: u32, window_secs: u32 },
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        let parsed = s.split_once('/').and_then(|(max, window)| {
            let window = window.strip_suffix('s').unwrap_or(window);
            Some((max.parse().ok()?, window.parse().ok()?))
        });
        match parsed {
            Some((max, window_secs)) if max > 0 && window_secs > 0 => {
                Ok(Self::PerWindow { max, window_secs })
            }
            _ => Err(format!("expected `N/Ds` (e.g. 3/10s) or `off`, got `{s}`")),
        }
    }
}

/// Budgets by name, as settings list them: `name=N/Ds` comma-separated (a name not listed
/// keeps its default, and `name=off` turns one off), or `off` for all of them.
pub fn named_budgets<const N: usize>(
    s: &str,
    names: [&str; N],
    defaults: [RateLimit; N],
) -> Result<[RateLimit; N], String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok([RateLimit::Off; N]);
    }
    let mut budgets = defaults;
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, budget) = part
            .split_once('=')
            .ok_or_else(|| format!("expected `name=N/Ds` or `off`, got `{part}`"))?;
        let at = names
            .iter()
            .position(|n| *n == name.trim())
            .ok_or_else(|| format!("unknown budget `{name}` (one of {})", names.join(", ")))?;
        budgets[at] = budget.trim().parse()?;
    }
    Ok(budgets)
}

#[cfg(test)]
mod tests {
    use super::{RateLimit, named_budgets};

    #[test]
    fn named_budgets_keep_defaults_for_names_not_listed() {
        let per = |max, window_secs| RateLimit::PerWindow { max, window_secs };
        let defaults = [per(1, 1), per(2, 2)];
        assert_eq!(
            named_budgets("b=5/60s", ["a", "b"], defaults),
            Ok([per(1, 1), per(5, 60)])
        );
        assert_eq!(
            named_budgets("a=off", ["a", "b"], defaults),
            Ok([RateLimit::Off, per(2, 2)])
        );
        assert_eq!(
            named_budgets(" OFF ", ["a", "b"], defaults),
            Ok([RateLimit::Off; 2])
        );
        assert!(named_budgets("c=1/1s", ["a", "b"], defaults).is_err());
        assert!(named_budgets("a", ["a", "b"], defaults).is_err());
    }

    #[test]
    fn rate_limit_parses_budgets_and_off() {
        assert_eq!(
            "3/10s".parse(),
            Ok(RateLimit::PerWindow {
                max: 3,
                window_secs: 10
            })
        );
        assert_eq!(
            "100/60".parse(),
            Ok(RateLimit::PerWindow {
                max: 100,
                window_secs: 60
            })
        );
        assert_eq!("OFF".parse(), Ok(RateLimit::Off));
        assert!("0/10s".parse::<RateLimit>().is_err());
        assert!("three".parse::<RateLimit>().is_err());
    }
}
