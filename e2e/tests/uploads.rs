//! `/api/uploads`: every route against the real S3 server (SeaweedFS, which checks signatures):
//! types decided by content, limits enforced while streaming, all-or-nothing multi-file
//! requests, presigned uploads, and who may do what. Each stack writes to a bucket of its own,
//! so "nothing left behind" is checked by listing it; the bucket is dropped at the end.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::time::{Duration, Instant};

use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
};
use bytes::Bytes;
use common::*;
use hilo_e2e::{Options, Stack};
use reqwest::{Method, header};
use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;

// Tiny files that sniff right: their magic numbers, then filler.
fn png(len: usize) -> Vec<u8> {
    filled(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89", len)
}
fn jpeg(len: usize) -> Vec<u8> {
    filled(b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0", len)
}
fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n".to_vec()
}
fn mp3(len: usize) -> Vec<u8> {
    filled(b"ID3\x03\0\0\0\0\0\0\xff\xfb\x90\x64\0\0\0\0", len)
}
fn mp4(len: usize) -> Vec<u8> {
    filled(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2", len)
}
fn text() -> Vec<u8> {
    b"just some words, certainly not a picture\n".to_vec()
}
fn filled(magic: &[u8], len: usize) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    bytes.resize(len.max(magic.len()), 0);
    bytes
}

/// One file of a form: field, file name, declared type, bytes.
type FilePart<'a> = (&'a str, &'a str, &'a str, Vec<u8>);

const BOUNDARY: &str = "hilo-e2e-boundary-7d1f";

/// A multipart/form-data body, built by hand so tests control every byte.
fn form(parts: Vec<FilePart<'_>>) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, filename, content_type, bytes) in parts {
        body.extend_from_slice(part_head(field, filename, content_type).as_bytes());
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn part_head(field: &str, filename: &str, content_type: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
}

/// POSTs a form body to an upload route as `user`.
async fn post_form(
    base: &str,
    route: &str,
    user: Option<&User>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = http()
        .post(format!("{base}/api/uploads/{route}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(user) = user {
        request = request.header(header::AUTHORIZATION, user.bearer());
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A client for the stack's bucket, to see what really landed there.
fn s3(stack: &Stack) -> Client {
    let s3 = &stack.s3;
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(s3.region.clone()))
        .endpoint_url(&s3.endpoint)
        .credentials_provider(Credentials::new(
            &s3.access_key_id,
            &s3.secret_access_key,
            None,
            None,
            "e2e",
        ))
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

/// Every key in the stack's bucket under `prefix`.
async fn keys(stack: &Stack, prefix: &str) -> Vec<String> {
    let out = s3(stack)
        .list_objects_v2()
        .bucket(&stack.s3.bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// `(size, content type)` of an object, `None` when it does not exist.
async fn head(stack: &Stack, key: &str) -> Option<(i64, String)> {
    let out = s3(stack)
        .head_object()
        .bucket(&stack.s3.bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some((
        out.content_length().unwrap_or_default(),
        out.content_type().unwrap_or_default().to_owned(),
    ))
}

/// Multipart uploads started and neither completed nor aborted.
async fn pending_multipart(stack: &Stack) -> usize {
    let out = s3(stack)
        .list_multipart_uploads()
        .bucket(&stack.s3.bucket)
        .send()
        .await
        .unwrap();
    out.uploads().len()
}

/// Empties and deletes the stack's own bucket.
async fn drop_bucket(stack: &Stack) {
    let client = s3(stack);
    for key in keys(stack, "").await {
        client
            .delete_object()
            .bucket(&stack.s3.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    client
        .delete_bucket()
        .bucket(&stack.s3.bucket)
        .send()
        .await
        .unwrap();
}

/// Peak resident memory of a process so far (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Checks one stored file of a success body against the bucket.
async fn assert_stored(stack: &Stack, file: &Value, folder: &str, mime: &str, size: usize) {
    let key = file["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("{folder}/")), "{key} in {folder}");
    assert_eq!(file["fileKey"], key);
    assert_eq!(file["mimeType"], mime, "{file}");
    assert_eq!(file["contentType"], mime);
    assert_eq!(file["size"], size);
    let url = format!("{}/{key}", stack.s3.public_url);
    assert_eq!((file["url"].as_str(), file["publicUrl"].as_str()), (Some(url.as_str()), Some(url.as_str())));
    assert_eq!(head(stack, key).await, Some((size as i64, mime.to_owned())), "{key} stored with the sniffed type");
}

#[tokio::test]
async fn every_file_route_stores_real_files_sniffed_with_the_union_shape() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;

    // Single-file routes: the declared type is a hint; the content decides.
    let singles: [(&str, &str, Vec<u8>, &str, &str); 8] = [
        ("profile/avatar", "profiles/avatars", png(300), "image/jpeg", "image/png"),
        ("profile/banner", "profiles/banners", jpeg(400), "image/jpeg", "image/jpeg"),
        ("channel/icon", "channels/icons", png(200), "image/png", "image/png"),
        ("channel/banner", "channels/banners", jpeg(500), "application/octet-stream", "image/jpeg"),
        ("message/image", "messages/images", png(6 * MIB), "image/png", "image/png"),
        ("message/attachment", "messages/attachments", pdf(), "application/pdf", "application/pdf"),
        ("message/video", "messages/videos", mp4(2048), "video/mp4", "video/mp4"),
        ("message/audio", "messages/audios", mp3(4096), "audio/mpeg", "audio/mpeg"),
    ];
    for (route, folder, bytes, declared, sniffed) in singles {
        let size = bytes.len();
        let (status, body) = post_form(
            base,
            route,
            Some(&ada),
            form(vec![("file", "my photo (1).bin", declared, bytes)]),
        )
        .await;
        assert_eq!(status, 200, "{route}: {body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["data"]["filename"], "my_photo__1_.bin", "{route}");
        assert_stored(&stack, &body["data"], folder, sniffed, size).await;
    }

    // Multi-file routes: every file, in request order (one over a part size: multipart).
    let multis: [(&str, &str, Vec<FilePart<'_>>, [&str; 2]); 4] = [
        ("message/images", "messages/images",
            vec![("files", "a.png", "image/png", png(100)), ("files", "b.jpg", "image/jpeg", jpeg(6 * MIB))],
            ["image/png", "image/jpeg"]),
        ("message/attachments", "messages/attachments",
            vec![("files", "doc.pdf", "application/pdf", pdf()), ("files", "notes.txt", "text/plain", text())],
            ["application/pdf", "text/plain"]),
        ("message/videos", "messages/videos",
            vec![("files", "a.mp4", "video/mp4", mp4(1000)), ("files", "b.mp4", "video/mp4", mp4(3000))],
            ["video/mp4", "video/mp4"]),
        ("message/audios", "messages/audios",
            vec![("files", "a.mp3", "audio/mpeg", mp3(1000)), ("files", "b.mp3", "audio/mpeg", mp3(2000))],
            ["audio/mpeg", "audio/mpeg"]),
    ];
    for (route, folder, parts, types) in multis {
        let sizes: Vec<usize> = parts.iter().map(|p| p.3.len()).collect();
        let names: Vec<String> = parts.iter().map(|p| p.1.to_owned()).collect();
        let (status, body) = post_form(base, route, Some(&ada), form(parts)).await;
        assert_eq!(status, 200, "{route}: {body}");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{route}");
        for (i, file) in data.iter().enumerate() {
            assert_eq!(file["filename"], names[i].as_str());
            assert_stored(&stack, file, folder, types[i], sizes[i]).await;
        }
    }

    // validate: HEAD on a key.
    let key = keys(&stack, "profiles/avatars/").await.pop().unwrap();
    let url = format!("{}/{key}", stack.s3.public_url);
    let validate = |body: Value| call(Method::POST, format!("{base}/api/uploads/validate"), Some(&ada), Some(body));
    assert_eq!(validate(json!({"fileKey": key, "publicUrl": url})).await, (200, json!({"valid": true})));
    let (status, body) = validate(json!({"fileKey": "profiles/avatars/nope.png", "publicUrl": url})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, body) = validate(json!({"fileKey": "", "publicUrl": "not a url"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["details"].as_array().unwrap().len(), 2, "{body}");

    // info: the original's limits, exactly.
    let (status, info) = call(Method::GET, format!("{base}/api/uploads/info"), Some(&ada), None).await;
    assert_eq!(status, 200);
    let images = json!(["image/jpeg", "image/png", "image/webp", "image/gif"]);
    let videos = json!(["video/mp4", "video/webm", "video/ogg", "video/quicktime"]);
    let audios = json!(["audio/mpeg", "audio/mp4", "audio/ogg", "audio/wav", "audio/webm", "audio/aac"]);
    let documents = json!(["application/pdf", "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "text/plain", "text/csv"]);
    let all: Vec<Value> = [&images, &documents, &videos, &audios]
        .iter()
        .flat_map(|l| l.as_array().unwrap().clone())
        .collect();
    assert_eq!(
        info,
        json!({
            "limits": {
                "image": {"maxSize": 10485760, "maxSizeMB": 10, "allowedTypes": images},
                "document": {"maxSize": 26214400, "maxSizeMB": 25, "allowedTypes": documents},
                "profile": {"maxSize": 5242880, "maxSizeMB": 5, "allowedTypes": images},
                "video": {"maxSize": 26214400, "maxSizeMB": 25, "allowedTypes": videos},
                "audio": {"maxSize": 52428800, "maxSizeMB": 50, "allowedTypes": audios},
                "attachment": {"maxSize": 26214400, "maxSizeMB": 25, "allowedTypes": all},
            },
            "maxFilesPerRequest": {"images": 10, "attachments": 10, "videos": 5, "audios": 5}
        })
    );
    assert_eq!(pending_multipart(&stack).await, 0);
    drop_bucket(&stack).await;
}
