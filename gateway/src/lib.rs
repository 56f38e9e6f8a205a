//! Hilo's gateway: the one public HTTP entry. It authenticates clients (Better Auth cookie or
//! bearer), applies CORS, limits and rate limits, and turns REST calls into gRPC calls.
//!
//! - [`app`]: state, router and layers; [`config`]: settings.
//! - `auth`: cookies, session -> access token, origin checks; `ratelimit`: shared budgets.
//! - `routes`: one module per resource; `views`: JSON shapes; `json`: body parsing;
//!   `error`: THE gRPC -> HTTP table and the error body.

pub mod app;
mod auth;
pub mod config;
mod error;
mod json;
mod ratelimit;
mod routes;
mod views;
mod wsproxy;
