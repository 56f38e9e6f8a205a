//! Message attachments: validated as the original did (at most 10; id, url, filename,
//! mimeType, size, type) but with http(s) URLs only, since clients render them.

use hilo_kit::validate::{self, Violations};
use hilo_proto::messaging::v1 as pb;
use serde::{Deserialize, Serialize};

pub const MAX_ATTACHMENTS: usize = 10;
const KINDS: [&str; 4] = ["image", "document", "video", "audio"];

/// An attachment as stored (JSON in `messages.attachments`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub id: String,
    pub url: String,
    pub filename: String,
    pub mime_type: String,
    pub size: f64,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Checks every attachment, recording each failing field as `attachments.<i>.<field>`.
pub fn parse(list: Vec<pb::Attachment>, v: &mut Violations) -> Vec<Attachment> {
    if list.len() > MAX_ATTACHMENTS {
        v.push(
            "attachments",
            format!("at most {MAX_ATTACHMENTS} attachments"),
        );
        return Vec::new();
    }
    list.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let field = |name: &str| format!("attachments.{i}.{name}");
            if uuid::Uuid::parse_str(&a.id).is_err() {
                v.push(&field("id"), "id must be a UUID");
            }
            v.check(validate::http_url(&field("url"), &a.url));
            v.check(validate::text(&field("filename"), &a.filename, 255));
            v.check(validate::text(&field("mimeType"), &a.mime_type, 255));
            if !(a.size.is_finite() && a.size > 0.0) {
                v.push(&field("size"), "size must be a positive number");
            }
            if !KINDS.contains(&a.r#type.as_str()) {
                v.push(
                    &field("type"),
                    "type must be image, document, video or audio",
                );
            }
            Attachment {
                id: a.id,
                url: a.url,
                filename: a.filename,
                mime_type: a.mime_type,
                size: a.size,
                kind: a.r#type,
            }
        })
        .collect()
}

impl From<Attachment> for pb::Attachment {
    fn from(a: Attachment) -> Self {
        Self {
            id: a.id,
            url: a.url,
            filename: a.filename,
            mime_type: a.mime_type,
            size: a.size,
            r#type: a.kind,
        }
    }
}
