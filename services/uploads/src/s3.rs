//! The bucket: one S3 client built at start-up, and the few calls uploads makes, each a thin
//! wrapper that turns SDK errors into plain errors (their text names no credential).

use std::time::Duration;

use anyhow::Context as _;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::{
    Client,
    config::{Credentials, RequestChecksumCalculation, ResponseChecksumValidation},
    error::DisplayErrorContext,
    presigning::{PresignedRequest, PresigningConfig},
    primitives::ByteStream,
    types::{
        BucketLocationConstraint, CompletedMultipartUpload, CompletedPart,
        CreateBucketConfiguration,
    },
};
use bytes::Bytes;

use crate::config::Storage;

/// The bucket uploads writes to, and the public base URL of its objects.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    bucket: String,
    public_url: String,
}

/// An SDK error with its whole chain, as one line for logs and `anyhow`.
fn sdk(error: impl std::error::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", DisplayErrorContext(error))
}

impl Store {
    /// Builds the client (explicit keys, else the AWS credential chain) and, when configured,
    /// creates the bucket.
    pub async fn connect(storage: &Storage) -> anyhow::Result<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(storage.region.clone()));
        if let Some(endpoint) = &storage.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some((key, secret)) = &storage.credentials {
            loader = loader.credentials_provider(Credentials::new(
                key,
                secret,
                None,
                None,
                "hilo-uploads-config",
            ));
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(storage.force_path_style)
            // Checksums only where S3 demands them: presigned PUTs must not carry a checksum
            // of an empty body, and several S3-compatible stores reject the newer ones.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        let store = Self {
            client: Client::from_conf(config),
            bucket: storage.bucket.clone(),
            public_url: storage.public_url.clone(),
        };
        if storage.create_bucket {
            store.ensure_bucket(&storage.region).await?;
        }
        Ok(store)
    }

    /// Creates the bucket unless it exists.
    async fn ensure_bucket(&self, region: &str) -> anyhow::Result<()> {
        let head = self.client.head_bucket().bucket(&self.bucket).send().await;
        match head {
            Ok(_) => return Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {}
            Err(e) => return Err(sdk(e).context(format!("checking bucket {}", self.bucket))),
        }
        let mut create = self.client.create_bucket().bucket(&self.bucket);
        if region != "us-east-1" && region != "auto" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => {
                tracing::info!(bucket = self.bucket, "bucket created");
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk(e).context(format!("creating bucket {}", self.bucket))),
        }
    }

    /// The public URL of `key`.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.public_url)
    }

    /// Stores a small object in one request.
    pub async fn put(&self, key: &str, content_type: &str, body: Bytes) -> anyhow::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(body.len() as i64)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(sdk)
            .context("PutObject")?;
        Ok(())
    }

    /// Copies `from` to `to` inside the bucket, stored as `content_type` (the server copies the
    /// bytes: nothing passes through this service). Keys are made of URL-safe characters
    /// ([`crate::kinds::sanitize`]), so the copy source needs no escaping.
    pub async fn copy(&self, from: &str, to: &str, content_type: &str) -> anyhow::Result<()> {
        let source = format!("{}/{from}", self.bucket);
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(source)
            .content_type(content_type)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .send()
            .await
            .map_err(sdk)
            .context("CopyObject")?;
        Ok(())
    }

    /// Starts a multipart upload; returns its id.
    pub async fn start_multipart(&self, key: &str, content_type: &str) -> anyhow::Result<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(sdk)
            .context("CreateMultipartUpload")?;
        out.upload_id
            .context("CreateMultipartUpload answered without an upload id")
    }

    /// Uploads part `number` (from 1) of a multipart upload.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> anyhow::Result<CompletedPart> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(body.len() as i64)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(sdk)
            .context("UploadPart")?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag)
            .build())
    }

    /// Assembles the parts into the object.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> anyhow::Result<()> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(sdk)
            .context("CompleteMultipartUpload")?;
        Ok(())
    }

    /// Drops a multipart upload and its parts. Best effort: a failure is logged (a bucket
    /// lifecycle rule for incomplete uploads is the backstop).
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(key, error = %sdk(e), "aborting a multipart upload failed");
        }
    }

    /// Deletes objects. Best effort: failures are logged, the caller's error stands.
    pub async fn delete(&self, keys: &[&str]) {
        for key in keys {
            let deleted = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(*key)
                .send()
                .await;
            match deleted {
                Ok(_) => tracing::info!(key, "object deleted"),
                Err(e) => tracing::warn!(key, error = %sdk(e), "deleting an object failed"),
            }
        }
    }

    /// `(size, content type)` of an object, `None` when there is none.
    pub async fn head(&self, key: &str) -> anyhow::Result<Option<(i64, String)>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some((
                out.content_length.unwrap_or_default(),
                out.content_type.unwrap_or_default(),
            ))),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(sdk(e).context("HeadObject")),
        }
    }

    /// The first `len` bytes of an object (a ranged GET, not the whole object).
    pub async fn first_bytes(&self, key: &str, len: usize) -> anyhow::Result<Bytes> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", len.saturating_sub(1)))
            .send()
            .await
            .map_err(sdk)
            .context("GetObject")?;
        let body = out.body.collect().await.context("reading GetObject")?;
        Ok(body.into_bytes())
    }

    /// A presigned PUT of exactly `size` bytes of `content_type` to `key`, valid for `ttl`.
    /// Both headers are signed, so S3 refuses a body of another length or type.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: i64,
        ttl: Duration,
    ) -> anyhow::Result<PresignedRequest> {
        let config = PresigningConfig::expires_in(ttl).context("presigning ttl")?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(size)
            .presigned(config)
            .await
            .map_err(sdk)
            .context("presigning PutObject")
    }
}
