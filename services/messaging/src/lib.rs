//! Hilo messaging: threads, messages, and each thread's event log with its publication.
//!
//! - [`app`]: build the service from its [`config`] and run it.
//! - `rpc` (the RPC table and thread operations), `messages` (message operations), `events`
//!   (the per-thread log), `access` (permissions and senders, asked of channels and accounts),
//!   `attachments`, `consumer` (channel deletions), `posting` (group commit),
//!   `relay` (publication in seq order), `db`
//!   (the SQL), `error`.

mod access;
pub mod app;
mod attachments;
pub mod config;
mod consumer;
mod db;
mod error;
mod events;
mod messages;
mod posting;
mod relay;
mod rpc;

/// Migrations of the `messaging` schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL schema that messaging owns.
pub const SCHEMA: &str = "messaging";
