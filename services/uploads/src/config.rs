//! Uploads configuration, from flags or environment variables (see `hilo-uploads --help`).
//! Every `S3_*` storage variable also accepts the original's `R2_*` name, so an existing
//! deployment's environment keeps working.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use clap::Parser;
use hilo_kit::config::{GrpcArgs, TelemetryArgs, VerifierArgs};

/// Everything the uploads service reads at start-up.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "hilo-uploads",
    version,
    about = "Hilo uploads service (gRPC, S3)"
)]
pub struct Config {
    /// gRPC listen address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50054")]
    pub listen_addr: SocketAddr,
    /// Admin listen address (Prometheus `/metrics`).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9154")]
    pub admin_addr: SocketAddr,
    #[command(flatten)]
    pub s3: S3Args,
    /// Lifetime of presigned upload URLs, in seconds.
    #[arg(long, env = "PRESIGN_TTL_SECS", default_value_t = 300)]
    pub presign_ttl_secs: u64,
    #[command(flatten)]
    pub verifier: VerifierArgs,
    #[command(flatten)]
    pub grpc: GrpcArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Config {
    /// How long a presigned URL stays valid.
    pub fn presign_ttl(&self) -> Duration {
        Duration::from_secs(self.presign_ttl_secs.max(1))
    }
}

/// The S3-compatible bucket (AWS S3, Cloudflare R2, SeaweedFS, ...).
#[derive(clap::Args, Clone, Debug)]
pub struct S3Args {
    /// S3 endpoint URL; unset means AWS S3 for S3_REGION.
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "R2_ENDPOINT", hide = true)]
    pub r2_endpoint: Option<String>,
    /// Bucket that holds every upload.
    #[arg(long, env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,
    #[arg(long, env = "R2_BUCKET_NAME", hide = true)]
    pub r2_bucket_name: Option<String>,
    /// Region to sign for (`auto` when only R2_* variables are set).
    #[arg(long, env = "S3_REGION")]
    pub s3_region: Option<String>,
    /// Access key; unset means the standard AWS credential chain (AWS_*, web identity, ...).
    #[arg(long, env = "S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    #[arg(long, env = "R2_ACCESS_KEY_ID", hide = true, hide_env_values = true)]
    pub r2_access_key_id: Option<String>,
    /// Secret key that goes with S3_ACCESS_KEY_ID.
    #[arg(long, env = "S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    #[arg(
        long,
        env = "R2_SECRET_ACCESS_KEY",
        hide = true,
        hide_env_values = true
    )]
    pub r2_secret_access_key: Option<String>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint` (most non-AWS servers).
    #[arg(long, env = "S3_FORCE_PATH_STYLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub s3_force_path_style: bool,
    /// Public base URL of the bucket; an object's URL is `S3_PUBLIC_URL/<key>`.
    #[arg(long, env = "S3_PUBLIC_URL")]
    pub s3_public_url: Option<String>,
    #[arg(long, env = "R2_PUBLIC_URL", hide = true)]
    pub r2_public_url: Option<String>,
    /// Create the bucket at start-up when it does not exist (development and tests).
    #[arg(long, env = "S3_CREATE_BUCKET", default_value_t = false, action = clap::ArgAction::Set)]
    pub s3_create_bucket: bool,
}

/// The storage settings once aliases are resolved.
#[derive(Clone, Debug)]
pub struct Storage {
    /// `None` for AWS S3 itself.
    pub endpoint: Option<String>,
    pub bucket: String,
    /// The region requests are signed for.
    pub region: String,
    /// `(access key id, secret)`, or `None` for the default credential chain.
    pub credentials: Option<(String, String)>,
    /// `endpoint/bucket/key` URLs, which most S3-compatible servers need.
    pub force_path_style: bool,
    /// Without a trailing slash.
    pub public_url: String,
    /// Create the bucket at start-up if missing (development and tests only).
    pub create_bucket: bool,
}

impl S3Args {
    /// Resolves `S3_*` over `R2_*` and refuses to start with a half-configured store.
    pub fn storage(&self) -> anyhow::Result<Storage> {
        let pick = |s3: &Option<String>, r2: &Option<String>| {
            s3.clone()
                .or_else(|| r2.clone())
                .filter(|v| !v.trim().is_empty())
        };
        let endpoint = pick(&self.s3_endpoint, &self.r2_endpoint);
        let bucket = pick(&self.s3_bucket, &self.r2_bucket_name)
            .context("S3_BUCKET (or R2_BUCKET_NAME) is required")?;
        let public_url = pick(&self.s3_public_url, &self.r2_public_url)
            .context("S3_PUBLIC_URL (or R2_PUBLIC_URL) is required")?;
        let region = match (&self.s3_region, &self.r2_endpoint) {
            (Some(region), _) => region.clone(),
            (None, Some(_)) => "auto".to_owned(),
            (None, None) => "us-east-1".to_owned(),
        };
        let key = pick(&self.s3_access_key_id, &self.r2_access_key_id);
        let secret = pick(&self.s3_secret_access_key, &self.r2_secret_access_key);
        let credentials = match (key, secret) {
            (Some(key), Some(secret)) => Some((key, secret)),
            (None, None) => None,
            _ => anyhow::bail!(
                "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY (or their R2_* names) go together"
            ),
        };
        Ok(Storage {
            endpoint,
            bucket,
            region,
            credentials,
            force_path_style: self.s3_force_path_style,
            public_url: public_url.trim_end_matches('/').to_owned(),
            create_bucket: self.s3_create_bucket,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Built by hand: parsing would read the S3_* variables of the test's environment.
    fn args() -> S3Args {
        S3Args {
            s3_endpoint: None,
            r2_endpoint: None,
            s3_bucket: None,
            r2_bucket_name: None,
            s3_region: None,
            s3_access_key_id: None,
            r2_access_key_id: None,
            s3_secret_access_key: None,
            r2_secret_access_key: None,
            s3_force_path_style: false,
            s3_public_url: None,
            r2_public_url: None,
            s3_create_bucket: false,
        }
    }

    fn some(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn r2_names_are_aliases_and_s3_names_win() {
        let args = S3Args {
            r2_endpoint: some("https://acct.r2.cloudflarestorage.com"),
            r2_bucket_name: some("old"),
            r2_access_key_id: some("k"),
            r2_secret_access_key: some("s"),
            r2_public_url: some("https://cdn.example/"),
            s3_bucket: some("new"),
            ..args()
        };
        let storage = args.storage().unwrap();
        assert_eq!(storage.bucket, "new");
        assert_eq!(storage.region, "auto");
        assert_eq!(storage.public_url, "https://cdn.example");
        assert_eq!(
            storage.endpoint.as_deref(),
            Some("https://acct.r2.cloudflarestorage.com")
        );
        assert_eq!(storage.credentials, Some(("k".to_owned(), "s".to_owned())));
    }

    #[test]
    fn a_half_configured_store_is_refused() {
        let minimal = S3Args {
            s3_bucket: some("b"),
            s3_public_url: some("http://x"),
            ..args()
        };
        let storage = minimal.clone().storage().unwrap();
        assert!(storage.credentials.is_none());
        assert_eq!(storage.region, "us-east-1");
        let half = S3Args {
            s3_access_key_id: some("k"),
            ..minimal
        };
        assert!(half.storage().is_err());
        let no_url = S3Args {
            s3_bucket: some("b"),
            ..args()
        };
        assert!(no_url.storage().is_err());
    }
}
