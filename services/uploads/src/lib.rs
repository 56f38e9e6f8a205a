//! Hilo uploads: files into an S3-compatible bucket, streamed through the gateway or sent
//! straight to S3 with presigned URLs; types decided by sniffing, limits per route.
//!
//! - [`app`]: build the service from its [`config`] and run it.
//! - `rpc`: the gRPC methods and their rules; `stream`: one streamed request, file by file;
//!   `kinds`: routes, limits, keys; `sniff`: MIME types from bytes; `s3`: the bucket;
//!   `error`: errors -> statuses.

pub mod app;
pub mod config;
mod error;
mod kinds;
mod rpc;
mod s3;
mod sniff;
mod stream;
