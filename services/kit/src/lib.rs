//! The runtime pieces every Hilo binary shares, and nothing else (no business rules):
//!
//! - [`config`]: argument groups read from the environment (documented by `--help`).
//! - [`telemetry`]: JSON logs, OpenTelemetry export, W3C trace-context propagation.
//! - [`auth`]: access-token verification (EdDSA public key, from the environment or fetched from
//!   accounts) and the caller of a gRPC request.
//! - [`grpc`]: serving (health, reflection, tracing, connection age) and connecting.
//! - [`db`]: PostgreSQL pool on a service's own schema, and its migrations.
//! - [`outbox`]: events written with the change, published to JetStream after commit.
//! - [`admin`]: the Prometheus `/metrics` endpoint on the admin port.
//! - [`validate`]: field checks that report every failing field.
//! - [`session`]: the Better Auth cookie and the cached session -> access-token exchange.
//! - [`ratelimit`]: fixed-window budgets shared by replicas, counted in Redis.
//! - [`shutdown`]: one cancellation token tripped by SIGTERM or Ctrl-C.

pub mod admin;
pub mod auth;
pub mod config;
pub mod db;
pub mod grpc;
pub mod outbox;
pub mod ratelimit;
pub mod session;
pub mod shutdown;
pub mod telemetry;
pub mod validate;
