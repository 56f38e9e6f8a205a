//! Hilo's realtime service: holds WebSockets, authorizes thread subscriptions with messaging,
//! fans NATS thread events out to local sockets, and resumes without gaps. Stateless: a replica
//! keeps only in-memory subscriptions, so any replica can serve any user.
//!
//! - [`app`]: state, router, serving and draining; [`config`]: settings.
//! - `ws`: the upgrade (origin, session); `session`: one socket's loop;
//! - `fanout`: NATS subscriptions per thread; `pump`: a thread's events in seq order to its
//!   sockets, holes repaired once per thread (`sequencer`); `authz`: AuthorizeThread, cached;
//! - `events`: membership, session and user events from `chat.events.>`;
//! - `sessions`: session lookups shared by a replica's sockets;
//! - `presence`: who is online, in Redis; `error`: the HTTP error shape.

pub mod app;
mod authz;
pub mod config;
mod error;
mod events;
mod fanout;
mod presence;
mod pump;
mod sequencer;
mod session;
mod sessions;
mod ws;
