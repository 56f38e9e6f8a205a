//! `/api/uploads/presign` and `/api/uploads/complete`: the client sends a file straight to S3
//! with a short-lived URL bound to its type and length, then asks for it to be checked. The
//! file's bytes never pass through the gateway.

use std::collections::BTreeMap;

use axum::extract::State;
use hilo_proto::uploads::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::uploads::Uploaded;
use crate::{
    app::AppState,
    auth::Authed,
    error::{ApiError, ApiResult, ErrorBody},
    json::Json,
    views,
};

/// `/presign` and `/complete` (merged into the uploads router).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(presign))
        .routes(routes!(complete))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresignBody {
    /// An upload route below `/api/uploads/`, e.g. `profile/avatar` or `message/attachment`.
    kind: String,
    filename: String,
    /// Must be allowed for the kind; the PUT must send exactly this `Content-Type`.
    content_type: String,
    /// Exact length in bytes the PUT must send.
    size: i64,
}

/// Where and how to PUT the file.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Presigned {
    url: String,
    method: String,
    /// Headers the PUT must carry exactly (they are part of the signature).
    headers: BTreeMap<String, String>,
    key: String,
    file_key: String,
    public_url: String,
    expires_at: String,
}

/// A presigned PUT URL (valid a few minutes) for one file, bound to its type and length.
#[utoipa::path(post, path = "/api/uploads/presign", tag = "uploads", request_body = PresignBody,
    responses((status = 200, body = Presigned), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
async fn presign(
    State(state): State<AppState>,
    who: Authed,
    Json(body): Json<PresignBody>,
) -> ApiResult<axum::Json<Presigned>> {
    let request = pb::CreatePresignedUploadRequest {
        kind: body.kind,
        filename: body.filename,
        content_type: body.content_type,
        size: body.size,
    };
    let presigned = state
        .uploads
        .clone()
        .create_presigned_upload(who.call(request))
        .await?
        .into_inner();
    Ok(axum::Json(Presigned {
        url: presigned.url,
        method: presigned.method,
        headers: presigned.headers.into_iter().collect(),
        file_key: presigned.key.clone(),
        key: presigned.key,
        public_url: presigned.public_url,
        expires_at: views::iso(presigned.expire_time),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteBody {
    /// The key `presign` returned (`fileKey` is accepted too).
    key: Option<String>,
    file_key: Option<String>,
    /// When given, the key must be in this kind's folder.
    kind: Option<String>,
}

/// Checks a presigned upload (size, type by content). An object that breaks its kind's rules
/// is deleted and answered 413 or 415; a key issued to someone else is 403.
#[utoipa::path(post, path = "/api/uploads/complete", tag = "uploads", request_body = CompleteBody,
    responses((status = 200, body = Uploaded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody)))]
async fn complete(
    State(state): State<AppState>,
    who: Authed,
    Json(body): Json<CompleteBody>,
) -> ApiResult<axum::Json<Uploaded>> {
    let key = body
        .key
        .or(body.file_key)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::field("key", "key is required"))?;
    let request = pb::CompletePresignedUploadRequest {
        key,
        kind: body.kind.unwrap_or_default(),
    };
    let file = state
        .uploads
        .clone()
        .complete_presigned_upload(who.call(request))
        .await?
        .into_inner()
        .file
        .ok_or_else(|| ApiError::internal("complete without a file"))?;
    Ok(Uploaded::new(file))
}
