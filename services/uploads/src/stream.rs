//! One `Upload` stream, written to S3 as it arrives and never held whole: each file's first
//! bytes are sniffed, its size is counted against its kind's limit, and its bytes go out in
//! parts of [`PART_SIZE`] (one PutObject when the whole file is smaller). The first broken rule
//! ends the call at once; then, as when the client gives up, the file in progress is aborted and
//! the files already stored are deleted, so a request stores all its files or none.

use aws_sdk_s3::types::CompletedPart;
use bytes::{Bytes, BytesMut};
use hilo_kit::grpc::echo;
use hilo_proto::uploads::v1::{self as pb, upload_request::Part};
use tonic::Streaming;

use crate::{
    error::{Error, Result},
    kinds::{self, Kind},
    s3::Store,
    sniff::{self, SNIFF_LEN},
};

/// Size of multipart parts: S3's minimum (all parts but the last must be at least 5 MiB). At
/// most one part is buffered per upload.
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// Room above a part for the chunk that completes it, so the buffer of a large file is
/// allocated once at its final size instead of doubling past it.
const CHUNK_ROOM: usize = 1024 * 1024;

/// Receives a whole stream: the stored files in request order, or nothing stored.
pub async fn receive(
    store: Store,
    mut stream: Streaming<pb::UploadRequest>,
) -> Result<Vec<pb::StoredFile>> {
    let mut request = Request::default();
    match request.run(&store, &mut stream).await {
        Ok(()) => Ok(request.stored),
        Err(error) => {
            request.discard(&store).await;
            Err(error)
        }
    }
}

/// What a stream has stored so far, and the file in progress.
#[derive(Default)]
struct Request {
    kind: Option<&'static Kind>,
    stored: Vec<pb::StoredFile>,
    current: Option<File>,
}

impl Request {
    async fn run(
        &mut self,
        store: &Store,
        stream: &mut Streaming<pb::UploadRequest>,
    ) -> Result<()> {
        loop {
            let part = match stream.message().await {
                Ok(Some(message)) => message.part,
                // Ended without `done`, or broke: the client gave up.
                Ok(None) | Err(_) => return Err(Error::Abandoned),
            };
            match part {
                Some(Part::File(header)) => {
                    self.finish_current(store).await?;
                    self.current = Some(self.open(header)?);
                }
                Some(Part::Chunk(bytes)) => {
                    let file = self.current.as_mut().ok_or_else(|| {
                        Error::invalid("VALIDATION_ERROR", "chunk", "a chunk before any file")
                    })?;
                    file.push(store, bytes).await?;
                }
                Some(Part::Done(_)) => {
                    self.finish_current(store).await?;
                    if self.stored.is_empty() {
                        return Err(Error::NoFile);
                    }
                    return Ok(());
                }
                None => return Err(Error::invalid("VALIDATION_ERROR", "", "an empty message")),
            }
        }
    }

    /// Checks a file header against the request so far and starts that file.
    fn open(&mut self, header: pb::FileHeader) -> Result<File> {
        let kind = kinds::find(&header.kind).ok_or_else(|| {
            Error::invalid(
                "UNKNOWN_KIND",
                "kind",
                format!("Unknown upload kind '{}'", echo(&header.kind)),
            )
        })?;
        if self.kind.is_some_and(|k| k != kind) {
            return Err(Error::invalid(
                "VALIDATION_ERROR",
                "kind",
                "every file of a request has the same kind",
            ));
        }
        self.kind = Some(kind);
        let index = self.stored.len();
        if header.index as usize != index {
            return Err(Error::invalid(
                "VALIDATION_ERROR",
                "index",
                format!(
                    "file {} arrived where file {index} was expected",
                    header.index
                ),
            ));
        }
        if index as u32 >= kind.max_files {
            return Err(Error::invalid(
                "TOO_MANY_FILES",
                if kind.multi() { "files" } else { "file" },
                format!(
                    "Received at least {} files but maximum allowed is {}",
                    index + 1,
                    kind.max_files
                ),
            ));
        }
        Ok(File::new(kind, index, header))
    }

    async fn finish_current(&mut self, store: &Store) -> Result<()> {
        if let Some(file) = self.current.as_mut() {
            let stored = file.finish(store).await?;
            self.current = None;
            self.stored.push(stored);
        }
        Ok(())
    }

    /// Leaves nothing behind: aborts the file in progress, deletes the stored ones.
    async fn discard(self, store: &Store) {
        if let Some(file) = self.current {
            file.abort(store).await;
        }
        let keys: Vec<&str> = self.stored.iter().map(|f| f.key.as_str()).collect();
        store.delete(&keys).await;
    }
}

/// A file being received.
struct File {
    kind: &'static Kind,
    /// Where the client put it: `file`, or `files.<index>`.
    field: String,
    original_name: String,
    filename: String,
    declared: String,
    key: String,
    /// Bytes not yet sent to S3 (less than a part and a chunk).
    buffer: BytesMut,
    size: u64,
    content_type: Option<&'static str>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl File {
    fn new(kind: &'static Kind, index: usize, header: pb::FileHeader) -> Self {
        let filename = kinds::sanitize(&header.filename);
        Self {
            kind,
            field: if kind.multi() {
                format!("files.{index}")
            } else {
                "file".to_owned()
            },
            key: kinds::key(kind, &filename),
            original_name: header.filename,
            filename,
            declared: header.declared_content_type,
            buffer: BytesMut::new(),
            size: 0,
            content_type: None,
            upload_id: None,
            parts: Vec::new(),
        }
    }

    /// A message about this file; multi-file routes name the file, as the original did.
    fn message(&self, text: String) -> String {
        if self.kind.multi() {
            format!("Error in file {}: {text}", echo(&self.original_name))
        } else {
            text
        }
    }

    async fn push(&mut self, store: &Store, chunk: Bytes) -> Result<()> {
        self.size += chunk.len() as u64;
        let max = self.kind.class.max_size;
        if self.size > max {
            return Err(Error::TooLarge {
                field: self.field.clone(),
                message: self.message(format!(
                    "File size exceeds maximum allowed size of {}",
                    kinds::megabytes(max, 1)
                )),
            });
        }
        // A full part goes out only once more bytes came within the limit: a file that crosses
        // it is refused without sending S3 a part for nothing.
        if self.buffer.len() >= PART_SIZE {
            self.send_part(store).await?;
        }
        let needed = self.buffer.len() + chunk.len();
        if needed > self.buffer.capacity() && needed > SNIFF_LEN {
            self.buffer
                .reserve((PART_SIZE + CHUNK_ROOM).max(needed) - self.buffer.len());
        }
        self.buffer.extend_from_slice(&chunk);
        if self.content_type.is_none() && self.buffer.len() >= SNIFF_LEN {
            self.decide()?;
        }
        Ok(())
    }

    /// Sniffs the buffered head and checks it against the kind's types.
    fn decide(&mut self) -> Result<&'static str> {
        let head = &self.buffer[..self.buffer.len().min(SNIFF_LEN)];
        let types = self.kind.class.types;
        let decided =
            sniff::decide(head, &self.declared, types).map_err(|sniffed| Error::Unsupported {
                field: self.field.clone(),
                message: self.message(format!(
                    "Invalid file type: {sniffed}. Allowed types: {}",
                    types.join(", ")
                )),
            })?;
        self.content_type = Some(decided);
        Ok(decided)
    }

    async fn send_part(&mut self, store: &Store) -> Result<()> {
        let content_type = match self.content_type {
            Some(t) => t,
            None => self.decide()?,
        };
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = store.start_multipart(&self.key, content_type).await?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let body = std::mem::take(&mut self.buffer).freeze();
        let number = self.parts.len() as i32 + 1;
        let part = store
            .upload_part(&self.key, &upload_id, number, body.clone())
            .await?;
        self.parts.push(part);
        // The SDK has let go of the part: its allocation holds the next one, so a large file
        // uses one buffer instead of a fresh one per part.
        if let Ok(mut reused) = body.try_into_mut() {
            reused.clear();
            self.buffer = reused;
        }
        Ok(())
    }

    /// Stores what is left: one PutObject for a small file, else the last part and the
    /// assembly of the parts.
    async fn finish(&mut self, store: &Store) -> Result<pb::StoredFile> {
        if self.size == 0 {
            return Err(Error::invalid(
                "EMPTY_FILE",
                &self.field,
                self.message("File is empty".to_owned()),
            ));
        }
        let content_type = match self.content_type {
            Some(t) => t,
            None => self.decide()?,
        };
        match self.upload_id.clone() {
            None => {
                let body = std::mem::take(&mut self.buffer).freeze();
                store.put(&self.key, content_type, body).await?;
            }
            Some(upload_id) => {
                if !self.buffer.is_empty() {
                    self.send_part(store).await?;
                }
                let parts = std::mem::take(&mut self.parts);
                store
                    .complete_multipart(&self.key, &upload_id, parts)
                    .await?;
                self.upload_id = None;
            }
        }
        tracing::info!(
            key = self.key,
            size = self.size,
            content_type,
            "file stored"
        );
        Ok(pb::StoredFile {
            url: store.url(&self.key),
            key: self.key.clone(),
            filename: self.filename.clone(),
            content_type: content_type.to_owned(),
            size: self.size as i64,
        })
    }

    async fn abort(self, store: &Store) {
        if let Some(upload_id) = &self.upload_id {
            store.abort_multipart(&self.key, upload_id).await;
        }
    }
}
