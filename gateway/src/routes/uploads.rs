//! `/api/uploads`: the original's twelve file routes, `/validate` and `/info` (docs/api.md §6).
//! A multipart body is read as a stream and forwarded chunk by chunk into the uploads
//! service's client-streaming `Upload` (through a small bounded channel, so a slow store slows
//! the client instead of filling memory). The rules (types by sniffing, sizes, file counts,
//! all-or-nothing) are the service's; this file maps HTTP to gRPC and back.

use axum::extract::{
    DefaultBodyLimit, Multipart, State,
    multipart::{MultipartError, MultipartRejection},
};
use hilo_proto::uploads::v1::{self as pb, upload_request::Part};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;
use utoipa_axum::{
    router::{OpenApiRouter, UtoipaMethodRouterExt as _},
    routes,
};

use crate::{
    app::AppState,
    auth::Authed,
    error::{ApiError, ApiResult, ErrorBody},
    json::Json,
};

const MIB: usize = 1024 * 1024;
/// Room for the multipart framing and small extra fields on top of the files themselves.
const SLACK: usize = MIB;
/// Chunks in flight between the multipart reader and the gRPC stream.
const CHANNEL_DEPTH: usize = 8;

/// A stored file: the union of the README's and the original code's fields (docs/api.md §1.2).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadedFile {
    url: String,
    key: String,
    size: i64,
    mime_type: String,
    file_key: String,
    public_url: String,
    /// The sanitised file name.
    filename: String,
    content_type: String,
}

impl From<pb::StoredFile> for UploadedFile {
    fn from(f: pb::StoredFile) -> Self {
        Self {
            url: f.url.clone(),
            file_key: f.key.clone(),
            mime_type: f.content_type.clone(),
            public_url: f.url,
            key: f.key,
            size: f.size,
            filename: f.filename,
            content_type: f.content_type,
        }
    }
}

/// The answer of a single-file route (and of a completed presigned upload).
#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    success: bool,
    data: UploadedFile,
}

impl Uploaded {
    /// The success body for one stored file.
    pub fn new(file: pb::StoredFile) -> axum::Json<Self> {
        axum::Json(Self {
            success: true,
            data: file.into(),
        })
    }
}

/// The answer of a multi-file route: the files in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedMany {
    success: bool,
    data: Vec<UploadedFile>,
}

/// A single-file form: field `file`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the request body only
struct FileForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A multi-file form: field `files`, repeated.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the request body only
struct FilesForm {
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
}

/// Declares each file route: its handler (documented for OpenAPI), kind, form field and body
/// limit (files allowed × size limit, plus slack; the service enforces the exact rules).
macro_rules! file_routes {
    ($($handler:ident: $path:literal, $kind:literal, $max_mib:literal MiB, $count:literal $field:tt;)*) => {
        $( file_routes!(@handler $handler, $path, $kind, $field); )*

        /// The file routes, each with its own raised body limit.
        fn file_routes() -> OpenApiRouter<AppState> {
            OpenApiRouter::new()
                $( .routes(routes!($handler).layer(DefaultBodyLimit::max($count * $max_mib * MIB + SLACK))) )*
        }
    };
    (@handler $handler:ident, $path:literal, $kind:literal, file) => {
        #[doc = concat!("Upload one file (form field `file`) as `", $kind, "`.")]
        #[utoipa::path(post, path = $path, tag = "uploads",
            request_body(content = FileForm, content_type = "multipart/form-data"),
            responses((status = 200, body = Uploaded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
                      (status = 413, body = ErrorBody), (status = 415, description = "type not allowed (by content)", body = ErrorBody)))]
        async fn $handler(
            State(state): State<AppState>,
            who: Authed,
            form: Result<Multipart, MultipartRejection>,
        ) -> ApiResult<axum::Json<Uploaded>> {
            let mut files = upload(state, who, form, $kind, "file").await?;
            let file = files.pop().ok_or_else(|| ApiError::internal("upload stored no file"))?;
            Ok(Uploaded::new(file))
        }
    };
    (@handler $handler:ident, $path:literal, $kind:literal, files) => {
        #[doc = concat!("Upload several files (form field `files`, repeated) as `", $kind, "`, all or none.")]
        #[utoipa::path(post, path = $path, tag = "uploads",
            request_body(content = FilesForm, content_type = "multipart/form-data"),
            responses((status = 200, body = UploadedMany), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
                      (status = 413, body = ErrorBody), (status = 415, description = "type not allowed (by content)", body = ErrorBody)))]
        async fn $handler(
            State(state): State<AppState>,
            who: Authed,
            form: Result<Multipart, MultipartRejection>,
        ) -> ApiResult<axum::Json<UploadedMany>> {
            let files = upload(state, who, form, $kind, "files").await?;
            Ok(axum::Json(UploadedMany {
                success: true,
                data: files.into_iter().map(Into::into).collect(),
            }))
        }
    };
}

file_routes! {
    profile_avatar: "/api/uploads/profile/avatar", "profile/avatar", 5 MiB, 1 file;
    profile_banner: "/api/uploads/profile/banner", "profile/banner", 5 MiB, 1 file;
    channel_icon: "/api/uploads/channel/icon", "channel/icon", 5 MiB, 1 file;
    channel_banner: "/api/uploads/channel/banner", "channel/banner", 5 MiB, 1 file;
    message_image: "/api/uploads/message/image", "message/image", 10 MiB, 1 file;
    message_attachment: "/api/uploads/message/attachment", "message/attachment", 25 MiB, 1 file;
    message_video: "/api/uploads/message/video", "message/video", 25 MiB, 1 file;
    message_audio: "/api/uploads/message/audio", "message/audio", 50 MiB, 1 file;
    message_images: "/api/uploads/message/images", "message/images", 10 MiB, 10 files;
    message_attachments: "/api/uploads/message/attachments", "message/attachments", 25 MiB, 10 files;
    message_videos: "/api/uploads/message/videos", "message/videos", 25 MiB, 5 files;
    message_audios: "/api/uploads/message/audios", "message/audios", 50 MiB, 5 files;
}

/// The twelve file routes, `/validate`, `/info`, and the presigned routes.
pub fn router() -> OpenApiRouter<AppState> {
    file_routes()
        .routes(routes!(validate))
        .routes(routes!(info))
        .merge(super::presign::router())
}

/// Why forwarding a form stopped early.
enum Stop {
    /// The client's body is at fault (malformed, too large, gone).
    Client(ApiError),
    /// The service ended the call (it answers why).
    Closed,
}

/// Streams the `field` files of a form into one `Upload` call and returns what was stored.
/// Whoever stops first decides: the service's error (too large, wrong type) is answered at
/// once; a broken body ends the stream without `done`, so the service keeps nothing.
async fn upload(
    state: AppState,
    who: Authed,
    form: Result<Multipart, MultipartRejection>,
    kind: &'static str,
    field: &'static str,
) -> ApiResult<Vec<pb::StoredFile>> {
    let mut form = form.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "INVALID_MULTIPART",
            "Request body must be multipart/form-data",
        )
    })?;
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let mut client = state.uploads.clone();
    let call = client.upload(who.call(ReceiverStream::new(rx)));
    tokio::pin!(call);
    let forwarded = tokio::select! {
        answered = &mut call => return answer(answered),
        forwarded = forward(&mut form, &tx, kind, field) => forwarded,
    };
    drop(tx);
    let answered = call.await;
    match forwarded {
        Ok(()) | Err(Stop::Closed) => answer(answered),
        // The service may have refused a file before the body broke (a file over its limit
        // usually crosses the route's body limit too): its verdict is the precise one.
        Err(Stop::Client(error)) => match answered {
            Err(status) if status.code() == tonic::Code::InvalidArgument => Err(status.into()),
            _ => Err(error),
        },
    }
}

fn answer(
    answered: Result<tonic::Response<pb::UploadResponse>, tonic::Status>,
) -> ApiResult<Vec<pb::StoredFile>> {
    Ok(answered?.into_inner().files)
}

/// Sends every `field` part of the form (header, then its chunks as they arrive), then `done`.
/// Other fields are skipped, as the original ignored them, and so is a text part (no
/// filename): the original saw a string there, no file.
async fn forward(
    form: &mut Multipart,
    tx: &mpsc::Sender<pb::UploadRequest>,
    kind: &str,
    field_name: &str,
) -> Result<(), Stop> {
    let mut index = 0;
    while let Some(mut field) = form.next_field().await.map_err(bad_body)? {
        let Some(filename) = field
            .file_name()
            .filter(|_| field.name() == Some(field_name))
        else {
            continue;
        };
        let header = pb::FileHeader {
            kind: kind.to_owned(),
            filename: filename.to_owned(),
            declared_content_type: field.content_type().unwrap_or_default().to_owned(),
            index,
        };
        send(tx, Part::File(header)).await?;
        while let Some(chunk) = field.chunk().await.map_err(bad_body)? {
            if !chunk.is_empty() {
                send(tx, Part::Chunk(chunk)).await?;
            }
        }
        index += 1;
    }
    send(tx, Part::Done(true)).await
}

async fn send(tx: &mpsc::Sender<pb::UploadRequest>, part: Part) -> Result<(), Stop> {
    tx.send(pb::UploadRequest { part: Some(part) })
        .await
        .map_err(|_| Stop::Closed)
}

fn bad_body(error: MultipartError) -> Stop {
    let status = error.status();
    Stop::Client(if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "PAYLOAD_TOO_LARGE", "Request body is too large")
    } else {
        ApiError::new(status, "INVALID_MULTIPART", error.body_text())
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateBody {
    file_key: String,
    /// Checked to be a URL, otherwise unused (as in the original).
    public_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Valid {
    valid: bool,
}

/// Whether a stored object exists (404 otherwise).
#[utoipa::path(post, path = "/api/uploads/validate", tag = "uploads", request_body = ValidateBody,
    responses((status = 200, body = Valid), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn validate(
    State(state): State<AppState>,
    who: Authed,
    Json(body): Json<ValidateBody>,
) -> ApiResult<axum::Json<Valid>> {
    let mut details = Vec::new();
    if body.file_key.is_empty() {
        details.push(("fileKey", "fileKey is required"));
    }
    if url::Url::parse(&body.public_url).is_err() {
        details.push(("publicUrl", "publicUrl must be a valid URL"));
    }
    if !details.is_empty() {
        return Err(ApiError::validation(
            details
                .into_iter()
                .map(|(field, message)| crate::error::FieldError {
                    field: field.to_owned(),
                    message: message.to_owned(),
                })
                .collect(),
        ));
    }
    let request = pb::StatObjectRequest { key: body.file_key };
    state.uploads.clone().stat_object(who.call(request)).await?;
    Ok(axum::Json(Valid { valid: true }))
}

/// Limits of one class of files.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitView {
    max_size: i64,
    #[serde(rename = "maxSizeMB")]
    max_size_mb: i64,
    allowed_types: Vec<String>,
}

/// Every limit, as the original's `/info` returned them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// By class: image, document, profile, video, audio, attachment.
    limits: BTreeMap<String, LimitView>,
    /// By multi-file route: images, attachments, videos, audios.
    max_files_per_request: BTreeMap<String, u32>,
}

/// Size limits, allowed types and files per request.
#[utoipa::path(get, path = "/api/uploads/info", tag = "uploads",
    responses((status = 200, body = Info), (status = 401, body = ErrorBody)))]
async fn info(State(state): State<AppState>, who: Authed) -> ApiResult<axum::Json<Info>> {
    let limits = state
        .uploads
        .clone()
        .get_limits(who.call(pb::GetLimitsRequest {}))
        .await?
        .into_inner();
    Ok(axum::Json(Info {
        limits: limits
            .limits
            .into_iter()
            .map(|l| {
                let view = LimitView {
                    max_size: l.max_size,
                    max_size_mb: l.max_size / MIB as i64,
                    allowed_types: l.allowed_types,
                };
                (l.name, view)
            })
            .collect(),
        max_files_per_request: limits
            .max_files_per_request
            .into_iter()
            .map(|m| (m.name, m.max_files))
            .collect(),
    }))
}
