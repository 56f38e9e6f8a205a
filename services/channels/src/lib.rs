//! Hilo channels: channels, members and roles, invites, and the permission rules the other
//! services ask about.
//!
//! - [`app`]: build the service from its [`config`] and run it.
//! - `rpc` (channel operations and the RPC table), `members` (member operations),
//!   `permissions` (the rule book, pure), `consumer` (a deleted user leaves their channels),
//!   `db` (the SQL), `error` (errors -> statuses).

pub mod app;
pub mod config;
mod consumer;
mod db;
mod error;
mod members;
pub mod permissions;
mod rpc;

/// Migrations of the `channels` schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL schema that channels owns.
pub const SCHEMA: &str = "channels";
