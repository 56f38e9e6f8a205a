//! Realtime configuration, from flags or environment variables (see `hilo-realtime --help`).

use std::{net::SocketAddr, time::Duration};

use anyhow::bail;
use clap::Parser;
use hilo_kit::config::{OriginArgs, TelemetryArgs};

/// Everything a realtime replica reads at start-up.
#[derive(Parser, Clone, Debug)]
#[command(name = "hilo-realtime", version, about = "Hilo's WebSocket service")]
pub struct Config {
    /// HTTP (WebSocket) listen address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8090")]
    pub listen_addr: SocketAddr,
    /// Admin listen address (Prometheus `/metrics`).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9190")]
    pub admin_addr: SocketAddr,
    /// gRPC address of accounts (session -> access-token exchange).
    #[arg(long, env = "ACCOUNTS_URL", default_value = "http://127.0.0.1:50051")]
    pub accounts_url: String,
    /// gRPC address of messaging (AuthorizeThread, ListThreadEvents).
    #[arg(long, env = "MESSAGING_URL", default_value = "http://127.0.0.1:50053")]
    pub messaging_url: String,
    /// NATS URL: thread events, typing, membership events (one connection per replica).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:14222")]
    pub nats_url: String,
    /// Redis URL: the shared session cache and presence.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: String,
    /// Secret that signs session cookies (Better Auth's, the gateway's); required outside dev.
    #[arg(long, env = "BETTER_AUTH_SECRET", hide_env_values = true)]
    pub better_auth_secret: Option<String>,
    #[command(flatten)]
    pub origins: OriginArgs,
    /// Frames queued for one socket before it counts as too slow and is closed (1008).
    #[arg(long, env = "SEND_QUEUE", default_value_t = 256)]
    pub send_queue: usize,
    /// Largest client frame in bytes (docs/api.md §5: 64 KiB); larger ones close the socket (1009).
    #[arg(long, env = "MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// WebSocket read buffer per socket. Client frames are small commands, so 1 KiB serves
    /// them in one read, and larger frames (up to the limit) are read in several; measured on
    /// 10,000 idle sockets: 7.7 KiB RSS each with 1 KiB, 10.7 KiB with 4 KiB.
    #[arg(long, env = "WS_READ_BUFFER", default_value_t = 1024)]
    pub ws_read_buffer: usize,
    /// Bytes of frames gathered per socket before they are written: frames queued together
    /// go out in one write (allocated only once a socket receives something).
    #[arg(long, env = "WS_WRITE_BUFFER", default_value_t = 4096)]
    pub ws_write_buffer: usize,
    /// The kernel's send buffer per connection in bytes (`SO_SNDBUF`); 0 leaves it to the
    /// kernel, which on a fast link grows it to a megabyte or more. A bound caps the memory a
    /// client that stopped reading can pin, and finds it out (1008) sooner.
    #[arg(long, env = "WS_SEND_BUFFER", default_value_t = 0)]
    pub ws_send_buffer: usize,
    /// WebSocket connects per user, shared by every replica (`N/Ds`, or `off`): beyond it the
    /// upgrade is 429 with `Retry-After`.
    #[arg(long, env = "CONNECT_RATE_LIMIT", default_value = "30/60s")]
    pub connect_rate_limit: hilo_kit::config::RateLimit,
    /// Client commands per second per socket (burst: twice that).
    #[arg(long, env = "COMMANDS_PER_SEC", default_value_t = 20)]
    pub commands_per_sec: u32,
    /// Seconds between server pings.
    #[arg(long, env = "PING_SECS", default_value_t = 25)]
    pub ping_secs: u64,
    /// A socket silent (no frame, no pong) this long is closed.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,
    /// Seconds between re-validations of a socket's session and of its joined threads, done
    /// at the next ping after them (it also refreshes the socket's access token). Sign-out,
    /// account deletion and lost membership act at once through events; this is the backstop
    /// for an event missed.
    #[arg(long, env = "SESSION_CHECK_SECS", default_value_t = 15)]
    pub session_check_secs: u64,
    /// Seconds an AuthorizeThread answer is reused for the same user and thread.
    #[arg(long, env = "AUTHZ_CACHE_SECS", default_value_t = 10)]
    pub authz_cache_secs: u64,
    /// How long a replica keeps trying to fetch a thread's missing events (a hole in what NATS
    /// delivered) before it gives up and tells the thread's sockets RESYNC_REQUIRED.
    #[arg(long, env = "GAP_REPAIR_SECS", default_value_t = 5)]
    pub gap_repair_secs: u64,
    /// A resume further back than this many events answers RESYNC_REQUIRED.
    #[arg(long, env = "RESUME_MAX_EVENTS", default_value_t = 1000)]
    pub resume_max_events: i64,
    /// Seconds a presence entry lives without a refresh (refreshed every third of it).
    #[arg(long, env = "PRESENCE_TTL_SECS", default_value_t = 60)]
    pub presence_ttl_secs: u64,
    /// Seconds given to sockets to close on SIGTERM before the process exits.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Development mode: allows running without BETTER_AUTH_SECRET (a fixed, public one is used).
    #[arg(long, env = "HILO_DEV", default_value_t = false, action = clap::ArgAction::Set)]
    pub dev: bool,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// The gateway's development secret, so cookies it signs in development are read here too.
const DEV_SECRET: &str = "hilo-development-secret-do-not-use-in-production";

impl Config {
    /// The cookie-signing secret; refuses to go on without one unless in development.
    pub fn secret(&self) -> anyhow::Result<String> {
        match &self.better_auth_secret {
            Some(secret) if secret.len() >= 16 => Ok(secret.clone()),
            Some(_) => bail!("BETTER_AUTH_SECRET must be at least 16 characters"),
            None if self.dev => Ok(DEV_SECRET.to_owned()),
            None => {
                bail!("BETTER_AUTH_SECRET is required (or set HILO_DEV=true for local development)")
            }
        }
    }

    /// Durations of the socket lifecycle, in one place for the session loop.
    pub fn timers(&self) -> Timers {
        Timers {
            ping: Duration::from_secs(self.ping_secs.max(1)),
            idle: Duration::from_secs(self.idle_timeout_secs.max(2)),
            session_check: Duration::from_secs(self.session_check_secs.max(1)),
        }
    }
}

/// Socket timers.
#[derive(Clone, Copy, Debug)]
pub struct Timers {
    pub ping: Duration,
    pub idle: Duration,
    pub session_check: Duration,
}
