//! The uploads gRPC service: authenticate the caller, then one short method per RPC holding
//! the rules; S3 calls are in `s3`, streamed files in `stream`.

use hilo_kit::grpc::{echo, reply};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hilo_kit::{
    auth::{Caller, TokenVerifier},
    grpc::internal,
};
use hilo_proto::uploads::v1::{self as pb, uploads_service_server::UploadsService};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use crate::{
    error::{Error, Result},
    kinds::{self, Kind},
    s3::Store,
    sniff::{self, SNIFF_LEN},
    stream,
};

/// State of the uploads service; cheap to clone (the S3 client is shared).
#[derive(Clone)]
pub struct UploadsRpc {
    pub store: Store,
    pub verifier: TokenVerifier,
    pub presign_ttl: Duration,
}

#[tonic::async_trait]
impl UploadsService for UploadsRpc {
    async fn upload(
        &self,
        r: Request<Streaming<pb::UploadRequest>>,
    ) -> Result<Response<pb::UploadResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        // A task of its own: if the caller cancels, this call is dropped but the clean-up of
        // what was already written still runs.
        let task = stream::receive(self.store.clone(), r.into_inner());
        let files = tokio::spawn(task.instrument(tracing::Span::current()))
            .await
            .map_err(internal)?;
        if let Ok(files) = &files {
            tracing::info!(
                user_id = caller.user_id,
                files = files.len(),
                "upload stored"
            );
        }
        reply(files.map(|files| pb::UploadResponse { files }))
    }

    async fn create_presigned_upload(
        &self,
        r: Request<pb::CreatePresignedUploadRequest>,
    ) -> Result<Response<pb::CreatePresignedUploadResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.presign(caller, r.into_inner()).await)
    }

    async fn complete_presigned_upload(
        &self,
        r: Request<pb::CompletePresignedUploadRequest>,
    ) -> Result<Response<pb::CompletePresignedUploadResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        let file = self.complete(caller, r.into_inner()).await;
        reply(file.map(|file| pb::CompletePresignedUploadResponse { file: Some(file) }))
    }

    async fn stat_object(
        &self,
        r: Request<pb::StatObjectRequest>,
    ) -> Result<Response<pb::StatObjectResponse>, Status> {
        self.verifier.caller(&r)?;
        reply(self.stat(r.into_inner().key).await)
    }

    async fn get_limits(
        &self,
        r: Request<pb::GetLimitsRequest>,
    ) -> Result<Response<pb::GetLimitsResponse>, Status> {
        self.verifier.caller(&r)?;
        Ok(tonic::Response::new(limits()))
    }
}

impl UploadsRpc {
    async fn presign(
        &self,
        caller: Caller,
        req: pb::CreatePresignedUploadRequest,
    ) -> Result<pb::CreatePresignedUploadResponse> {
        let kind = find_kind(&req.kind)?;
        let content_type = req
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let types = kind.class.types;
        let Some(content_type) = types.iter().find(|t| **t == content_type) else {
            return Err(Error::Unsupported {
                field: "contentType".to_owned(),
                message: format!(
                    "Invalid file type: {}. Allowed types: {}",
                    echo(&content_type),
                    types.join(", ")
                ),
            });
        };
        check_size(kind, req.size, "size")?;
        let key = kinds::owned_key(kind, &caller.user_id, &kinds::sanitize(&req.filename));
        // The PUT lands in quarantine: `key` (and its public URL) exists only once
        // `/complete` has checked the bytes.
        let presigned = self
            .store
            .presign_put(
                &kinds::quarantined(&key),
                content_type,
                req.size,
                self.presign_ttl,
            )
            .await?;
        let expires = SystemTime::now() + self.presign_ttl;
        let seconds = expires
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        tracing::info!(user_id = caller.user_id, key, "presigned upload issued");
        Ok(pb::CreatePresignedUploadResponse {
            url: presigned.uri().to_owned(),
            method: presigned.method().to_owned(),
            headers: presigned
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            public_url: self.store.url(&key),
            key,
            expire_time: Some(hilo_proto::Timestamp {
                seconds: seconds as i64,
                nanos: 0,
            }),
        })
    }

    /// Checks a presigned upload in quarantine, where it landed: one that keeps its kind's
    /// rules moves to its key, stored with the type its bytes show; one that breaks them is
    /// deleted, so it never becomes a usable URL. Completing again answers the stored file.
    async fn complete(
        &self,
        caller: Caller,
        req: pb::CompletePresignedUploadRequest,
    ) -> Result<pb::StoredFile> {
        let forbidden = || {
            Error::Forbidden(format!(
                "User '{}' may not complete the upload '{}'",
                caller.user_id,
                echo(&req.key)
            ))
        };
        let (kind, owner) = kinds::owner_of(&req.key).ok_or_else(forbidden)?;
        if !req.kind.is_empty() && find_kind(&req.kind)?.folder != kind.folder {
            return Err(Error::invalid(
                "VALIDATION_ERROR",
                "key",
                format!("The key is not in the folder of kind '{}'", echo(&req.kind)),
            ));
        }
        if !kinds::is_owner(owner, &caller.user_id) {
            return Err(forbidden());
        }
        let key = req.key.as_str();
        let held = kinds::quarantined(key);
        let Some((size, stored_type)) = self.store.head(&held).await? else {
            let (size, content_type) = self
                .store
                .head(key)
                .await?
                .ok_or_else(|| Error::NotFound(key.to_owned()))?;
            return Ok(self.stored_file(key, content_type, size));
        };
        let verdict = match check_size(kind, size, "key") {
            Ok(()) => {
                let head = self.store.first_bytes(&held, SNIFF_LEN).await?;
                sniff::decide(&head, &stored_type, kind.class.types).map_err(|sniffed| {
                    Error::Unsupported {
                        field: "key".to_owned(),
                        message: format!(
                            "Invalid file type: {sniffed}. Allowed types: {}",
                            kind.class.types.join(", ")
                        ),
                    }
                })
            }
            Err(error) => Err(error),
        };
        let content_type = match verdict {
            Ok(t) => t,
            Err(error) => {
                self.store.delete(&[&held]).await;
                tracing::info!(user_id = caller.user_id, key, %error, "presigned upload refused");
                return Err(error);
            }
        };
        self.store.copy(&held, key, content_type).await?;
        self.store.delete(&[&held]).await;
        tracing::info!(user_id = caller.user_id, key, "presigned upload checked");
        Ok(self.stored_file(key, content_type.to_owned(), size))
    }

    fn stored_file(&self, key: &str, content_type: String, size: i64) -> pb::StoredFile {
        let filename = key
            .rsplit('/')
            .next()
            .and_then(|segment| segment.get(37..))
            .unwrap_or_default();
        pb::StoredFile {
            url: self.store.url(key),
            key: key.to_owned(),
            filename: filename.to_owned(),
            content_type,
            size,
        }
    }

    async fn stat(&self, key: String) -> Result<pb::StatObjectResponse> {
        if key.is_empty() {
            return Err(Error::invalid("VALIDATION_ERROR", "key", "key is required"));
        }
        // Unchecked uploads are not objects anyone may rely on.
        if key.len() > kinds::MAX_KEY || key.starts_with(kinds::QUARANTINE) {
            return Err(Error::NotFound(key));
        }
        let (size, content_type) = self.store.head(&key).await?.ok_or(Error::NotFound(key))?;
        Ok(pb::StatObjectResponse { size, content_type })
    }
}

fn find_kind(name: &str) -> Result<&'static Kind> {
    kinds::find(name).ok_or_else(|| {
        Error::invalid(
            "UNKNOWN_KIND",
            "kind",
            format!("Unknown upload kind '{}'", echo(name)),
        )
    })
}

/// `0 < size <= the kind's limit`.
fn check_size(kind: &Kind, size: i64, field: &str) -> Result<()> {
    let max = kind.class.max_size;
    if size <= 0 {
        return Err(Error::invalid("EMPTY_FILE", field, "File is empty"));
    }
    if size as u64 > max {
        return Err(Error::TooLarge {
            field: field.to_owned(),
            message: format!(
                "File size ({}) exceeds maximum allowed size of {}",
                kinds::megabytes(size as u64, 2),
                kinds::megabytes(max, 1)
            ),
        });
    }
    Ok(())
}

/// Every class's limits and the multi-file routes' file counts (what `/info` shows).
fn limits() -> pb::GetLimitsResponse {
    pb::GetLimitsResponse {
        limits: kinds::CLASSES
            .iter()
            .map(|c| pb::Limit {
                name: c.name.to_owned(),
                max_size: c.max_size as i64,
                allowed_types: c.types.iter().map(|t| (*t).to_owned()).collect(),
            })
            .collect(),
        max_files_per_request: kinds::MAX_FILES
            .iter()
            .map(|(name, max)| pb::MaxFiles {
                name: (*name).to_owned(),
                max_files: *max,
            })
            .collect(),
    }
}
