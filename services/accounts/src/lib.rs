//! Hilo accounts: users, profiles, credentials, sessions, and the signing of access tokens.
//!
//! - [`app`]: build the service from its [`config`] and run it.
//! - `rpc`: the gRPC methods and their rules; `db`: the SQL; `error`: errors -> statuses.
//! - `oauth`: social sign-in and identities; `providers`: GitHub and Google over `oauth2`.
//! - `input`: client input parsing; `password`: argon2id; `tokens`: ids, session tokens, JWTs.

pub mod app;
pub mod config;
mod db;
mod error;
mod input;
mod oauth;
mod password;
mod providers;
mod rpc;
pub mod tokens;

/// Migrations of the `accounts` schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL schema that accounts owns.
pub const SCHEMA: &str = "accounts";
