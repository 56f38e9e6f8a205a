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
    filled(
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89",
        len,
    )
}
fn jpeg(len: usize) -> Vec<u8> {
    filled(
        b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0",
        len,
    )
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
    assert_eq!(
        (file["url"].as_str(), file["publicUrl"].as_str()),
        (Some(url.as_str()), Some(url.as_str()))
    );
    assert_eq!(
        head(stack, key).await,
        Some((size as i64, mime.to_owned())),
        "{key} stored with the sniffed type"
    );
}

#[tokio::test]
async fn every_file_route_stores_real_files_sniffed_with_the_union_shape() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;

    // Single-file routes: the declared type is a hint; the content decides.
    let singles: [(&str, &str, Vec<u8>, &str, &str); 8] = [
        (
            "profile/avatar",
            "profiles/avatars",
            png(300),
            "image/jpeg",
            "image/png",
        ),
        (
            "profile/banner",
            "profiles/banners",
            jpeg(400),
            "image/jpeg",
            "image/jpeg",
        ),
        (
            "channel/icon",
            "channels/icons",
            png(200),
            "image/png",
            "image/png",
        ),
        (
            "channel/banner",
            "channels/banners",
            jpeg(500),
            "application/octet-stream",
            "image/jpeg",
        ),
        (
            "message/image",
            "messages/images",
            png(6 * MIB),
            "image/png",
            "image/png",
        ),
        (
            "message/attachment",
            "messages/attachments",
            pdf(),
            "application/pdf",
            "application/pdf",
        ),
        (
            "message/video",
            "messages/videos",
            mp4(2048),
            "video/mp4",
            "video/mp4",
        ),
        (
            "message/audio",
            "messages/audios",
            mp3(4096),
            "audio/mpeg",
            "audio/mpeg",
        ),
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
        (
            "message/images",
            "messages/images",
            vec![
                ("files", "a.png", "image/png", png(100)),
                ("files", "b.jpg", "image/jpeg", jpeg(6 * MIB)),
            ],
            ["image/png", "image/jpeg"],
        ),
        (
            "message/attachments",
            "messages/attachments",
            vec![
                ("files", "doc.pdf", "application/pdf", pdf()),
                ("files", "notes.txt", "text/plain", text()),
            ],
            ["application/pdf", "text/plain"],
        ),
        (
            "message/videos",
            "messages/videos",
            vec![
                ("files", "a.mp4", "video/mp4", mp4(1000)),
                ("files", "b.mp4", "video/mp4", mp4(3000)),
            ],
            ["video/mp4", "video/mp4"],
        ),
        (
            "message/audios",
            "messages/audios",
            vec![
                ("files", "a.mp3", "audio/mpeg", mp3(1000)),
                ("files", "b.mp3", "audio/mpeg", mp3(2000)),
            ],
            ["audio/mpeg", "audio/mpeg"],
        ),
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
    let validate = |body: Value| {
        call(
            Method::POST,
            format!("{base}/api/uploads/validate"),
            Some(&ada),
            Some(body),
        )
    };
    assert_eq!(
        validate(json!({"fileKey": key, "publicUrl": url})).await,
        (200, json!({"valid": true}))
    );
    let (status, body) =
        validate(json!({"fileKey": "profiles/avatars/nope.png", "publicUrl": url})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, body) = validate(json!({"fileKey": "", "publicUrl": "not a url"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["details"].as_array().unwrap().len(), 2, "{body}");

    // info: the original's limits, exactly.
    let (status, info) = call(
        Method::GET,
        format!("{base}/api/uploads/info"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let images = json!(["image/jpeg", "image/png", "image/webp", "image/gif"]);
    let videos = json!(["video/mp4", "video/webm", "video/ogg", "video/quicktime"]);
    let audios = json!([
        "audio/mpeg",
        "audio/mp4",
        "audio/ogg",
        "audio/wav",
        "audio/webm",
        "audio/aac"
    ]);
    let documents = json!([
        "application/pdf",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "text/plain",
        "text/csv"
    ]);
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

/// A form whose one file is `magic` followed by zeros forever (or up to `size` bytes in all):
/// the body is made while it is sent, so neither side can hold it.
fn endless_form(field: &str, magic: &[u8], size: Option<usize>) -> reqwest::Body {
    let head = [
        part_head(field, "big.png", "image/png").into_bytes(),
        magic.to_vec(),
    ]
    .concat();
    let zeros = Bytes::from(vec![0u8; 64 * 1024]);
    let rest = size.map(|s| s - magic.len());
    let chunks = rest.map_or(usize::MAX, |r| r / zeros.len());
    let tail = rest.map_or(0, |r| r % zeros.len());
    let body = std::iter::once(Bytes::from(head))
        .chain(std::iter::repeat_n(zeros, chunks))
        .chain(std::iter::once(Bytes::from(vec![0u8; tail])))
        .chain(std::iter::once(Bytes::from(format!(
            "\r\n--{BOUNDARY}--\r\n"
        ))))
        .map(Ok::<_, std::io::Error>);
    reqwest::Body::wrap_stream(tokio_stream::iter(body))
}

#[tokio::test]
async fn an_oversize_file_is_refused_as_soon_as_it_crosses_the_limit() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let gateway = stack.pid("gateway-0").unwrap();
    let uploads = stack.pid("uploads").unwrap();
    let (gateway_before, uploads_before) = (peak_rss_kib(gateway), peak_rss_kib(uploads));

    // A body that never ends: only an answer given at the limit can come back.
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(60),
        post_form(
            base,
            "message/image",
            Some(&ada),
            endless_form("file", &png(64), None),
        ),
    )
    .await
    .expect("answered while the body was still being sent");
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "File size exceeds maximum allowed size of 10.0MB"
    );
    assert_eq!(body["details"][0]["field"], "file");
    let (gateway_after, uploads_after) = (peak_rss_kib(gateway), peak_rss_kib(uploads));
    println!(
        "oversize refused in {:?}; peak RSS gateway {gateway_before} -> {gateway_after} KiB, uploads {uploads_before} -> {uploads_after} KiB",
        started.elapsed()
    );
    assert!(
        gateway_after - gateway_before < 8 * 1024,
        "the gateway streams: its peak grew by {} KiB",
        gateway_after - gateway_before
    );

    // The first 5 MiB part had gone to S3: the multipart upload was aborted, nothing is left.
    assert_eq!(keys(&stack, "messages/images/").await, Vec::<String>::new());
    assert_eq!(pending_multipart(&stack).await, 0);

    // A finite body over the gateway's own limit for the route is refused too.
    let (status, _) = post_form(
        base,
        "profile/avatar",
        Some(&ada),
        endless_form("file", &png(64), Some(12 * MIB)),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(keys(&stack, "").await, Vec::<String>::new());
    drop_bucket(&stack).await;
}

#[tokio::test]
async fn the_content_decides_the_type_and_bad_forms_are_400() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;

    // Text that claims to be a PNG.
    let (status, body) = post_form(
        base,
        "profile/avatar",
        Some(&ada),
        form(vec![("file", "x.png", "image/png", text())]),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("UNSUPPORTED_MEDIA_TYPE")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "Invalid file type: text/plain. Allowed types: image/jpeg, image/png, image/webp, image/gif"
    );
    assert_eq!(body["details"][0]["field"], "file");
    // A PDF is a fine attachment but no picture; an HTML page is no attachment.
    let (status, _) = post_form(
        base,
        "message/image",
        Some(&ada),
        form(vec![("file", "a.jpg", "image/jpeg", pdf())]),
    )
    .await;
    assert_eq!(status, 415);
    let html = b"<html><script>alert(1)</script></html>".to_vec();
    let (status, _) = post_form(
        base,
        "message/attachment",
        Some(&ada),
        form(vec![("file", "a.txt", "text/plain", html)]),
    )
    .await;
    assert_eq!(status, 415);

    // No file, an empty file, a file in the wrong field, not a form at all.
    let (status, body) = post_form(base, "profile/avatar", Some(&ada), form(vec![])).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("NO_FILE")),
        "{body}"
    );
    assert_eq!(body["message"], "No file was provided in the request");
    let (status, body) = post_form(
        base,
        "message/images",
        Some(&ada),
        form(vec![("file", "a.png", "image/png", png(100))]),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("NO_FILE")),
        "multi routes read `files`"
    );
    let (status, body) = post_form(
        base,
        "profile/avatar",
        Some(&ada),
        form(vec![("file", "a.png", "image/png", Vec::new())]),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("EMPTY_FILE")),
        "{body}"
    );
    let (status, body) = call(
        Method::POST,
        format!("{base}/api/uploads/profile/avatar"),
        Some(&ada),
        Some(json!({"file": "x"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_MULTIPART")),
        "{body}"
    );

    assert_eq!(
        keys(&stack, "").await,
        Vec::<String>::new(),
        "nothing refused was kept"
    );
    drop_bucket(&stack).await;
}

#[tokio::test]
async fn multi_file_requests_store_all_files_or_none() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;

    // Eleven images where ten are allowed: refused, and the ten already stored are deleted.
    let eleven = (0..11)
        .map(|i| ("files", "p.png", "image/png", png(100 + i)))
        .collect();
    let (status, body) = post_form(base, "message/images", Some(&ada), form(eleven)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("TOO_MANY_FILES")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "Received at least 11 files but maximum allowed is 10"
    );
    assert_eq!(keys(&stack, "").await, Vec::<String>::new());
    // A second file on a single-file route is one too many as well.
    let two = vec![
        ("file", "a.png", "image/png", png(10)),
        ("file", "b.png", "image/png", png(10)),
    ];
    let (status, _) = post_form(base, "profile/avatar", Some(&ada), form(two)).await;
    assert_eq!(status, 400);

    // The last file is bad: the first (small) and second (multipart) ones are removed again.
    let parts = vec![
        ("files", "a.png", "image/png", png(100)),
        ("files", "b.jpg", "image/jpeg", jpeg(7 * MIB)),
        ("files", "c.png", "image/png", text()),
    ];
    let (status, body) = post_form(base, "message/images", Some(&ada), form(parts)).await;
    assert_eq!(status, 415, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Error in file c.png: Invalid file type: text/plain"),
        "{body}"
    );
    assert_eq!(body["details"][0]["field"], "files.2");
    // The last file is too large.
    let parts = vec![
        ("files", "a.mp4", "video/mp4", mp4(100)),
        ("files", "b.mp4", "video/mp4", mp4(25 * MIB + 1)),
    ];
    let (status, body) = post_form(base, "message/videos", Some(&ada), form(parts)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        body["message"],
        "Error in file b.mp4: File size exceeds maximum allowed size of 25.0MB"
    );

    assert_eq!(
        keys(&stack, "").await,
        Vec::<String>::new(),
        "all or nothing"
    );
    assert_eq!(pending_multipart(&stack).await, 0);
    drop_bucket(&stack).await;
}

/// Asks for a presigned upload as `user`.
async fn presign(base: &str, user: &User, body: Value) -> (u16, Value) {
    call(
        Method::POST,
        format!("{base}/api/uploads/presign"),
        Some(user),
        Some(body),
    )
    .await
}

/// Completes a presigned upload as `user`.
async fn complete(base: &str, user: &User, body: Value) -> (u16, Value) {
    call(
        Method::POST,
        format!("{base}/api/uploads/complete"),
        Some(user),
        Some(body),
    )
    .await
}

/// PUTs `bytes` to a presigned URL straight to S3, with the headers it was signed with.
async fn put_presigned(presigned: &Value, bytes: Vec<u8>) -> u16 {
    let mut request = http().put(presigned["url"].as_str().unwrap()).body(bytes);
    for (name, value) in presigned["headers"].as_object().unwrap() {
        if name != "content-length" {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn presigned_uploads_go_straight_to_s3_and_are_checked_on_completion() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let bob = sign_up(base, "Bob").await;

    // presign -> PUT -> complete.
    let file = png(2048);
    let request = json!({"kind": "profile/avatar", "filename": "me.png", "contentType": "image/png", "size": file.len()});
    let (status, presigned) = presign(base, &ada, request.clone()).await;
    assert_eq!(status, 200, "{presigned}");
    let key = presigned["key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with(&format!("profiles/avatars/{}/", ada.id)),
        "{key}"
    );
    assert!(key.ends_with("-me.png"));
    assert_eq!(presigned["method"], "PUT");
    let url = presigned["url"].as_str().unwrap();
    let signed = url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "X-Amz-SignedHeaders")
        .unwrap()
        .1
        .into_owned();
    assert!(
        signed.contains("content-length") && signed.contains("content-type"),
        "bound to length and type: {signed}"
    );
    assert_eq!(put_presigned(&presigned, file.clone()).await, 200);
    let (status, body) = complete(base, &bob, json!({"key": key})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "another user's key: {body}"
    );
    let (status, body) = complete(base, &ada, json!({"kind": "profile/avatar", "key": key})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["filename"], "me.png");
    assert_stored(
        &stack,
        &body["data"],
        "profiles/avatars",
        "image/png",
        file.len(),
    )
    .await;

    // S3 refuses a body of another length or type than signed, and a tampered URL.
    let (_, presigned) = presign(base, &ada, request.clone()).await;
    assert_eq!(
        put_presigned(&presigned, png(2049)).await,
        403,
        "another length"
    );
    let mut other_type = presigned.clone();
    other_type["headers"]["content-type"] = json!("image/jpeg");
    assert_eq!(
        put_presigned(&other_type, png(2048)).await,
        403,
        "another type"
    );
    let mut tampered = presigned.clone();
    let mut parsed = url::Url::parse(presigned["url"].as_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "X-Amz-Expires" {
                "604800".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    tampered["url"] = json!(parsed.to_string());
    assert_eq!(
        put_presigned(&tampered, png(2048)).await,
        403,
        "a changed query parameter"
    );
    assert_eq!(head(&stack, presigned["key"].as_str().unwrap()).await, None);

    // Text PUT under an image kind: deleted on completion.
    let words = text();
    let (_, presigned) = presign(base, &ada, json!({"kind": "message/image", "filename": "x.png", "contentType": "image/png", "size": words.len()})).await;
    assert_eq!(put_presigned(&presigned, words).await, 200);
    let key = presigned["key"].as_str().unwrap();
    assert!(head(&stack, key).await.is_some());
    let (status, body) = complete(base, &ada, json!({"key": key})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("UNSUPPORTED_MEDIA_TYPE")),
        "{body}"
    );
    assert_eq!(
        head(&stack, key).await,
        None,
        "the mismatched object is deleted"
    );
    let (status, _) = complete(base, &ada, json!({"key": key})).await;
    assert_eq!(status, 404, "and gone");

    // Presign refuses what could never be completed.
    let (status, body) = presign(base, &ada, json!({"kind": "profile/avatar", "filename": "a.png", "contentType": "image/png", "size": 5 * MIB + 1})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "File size (5.00MB) exceeds maximum allowed size of 5.0MB"
    );
    let (status, body) = presign(base, &ada, json!({"kind": "profile/avatar", "filename": "a.pdf", "contentType": "application/pdf", "size": 10})).await;
    assert_eq!(
        (status, body["details"][0]["field"].as_str()),
        (415, Some("contentType")),
        "{body}"
    );
    let (status, body) = presign(
        base,
        &ada,
        json!({"kind": "tmp/uploads", "filename": "a", "contentType": "image/png", "size": 10}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("UNKNOWN_KIND")),
        "{body}"
    );
    let (status, body) = presign(base, &ada, json!({"kind": "profile/avatar"})).await;
    assert_eq!(
        (status, body["details"][0]["field"].as_str()),
        (400, Some("filename")),
        "{body}"
    );
    let (status, _) = complete(base, &ada, json!({})).await;
    assert_eq!(status, 400);
    let (status, _) = complete(
        base,
        &ada,
        json!({"key": "profiles/avatars/somebody/0-x.png", "kind": "message/image"}),
    )
    .await;
    assert_eq!(status, 400, "the key is not in the kind's folder");

    drop_bucket(&stack).await;
}

#[tokio::test]
async fn an_expired_presigned_url_is_refused_by_s3() {
    let stack = stack_with(Options {
        env: vec![("PRESIGN_TTL_SECS".to_owned(), "1".to_owned())],
        ..Options::default()
    })
    .await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let file = jpeg(1000);
    let (status, presigned) = presign(base, &ada, json!({"kind": "message/image", "filename": "a.jpg", "contentType": "image/jpeg", "size": file.len()})).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(put_presigned(&presigned, file).await, 403);
    assert_eq!(keys(&stack, "").await, Vec::<String>::new());
    drop_bucket(&stack).await;
}

#[tokio::test]
async fn every_upload_route_needs_a_session() {
    let stack = stack().await;
    let base = stack.gateway();
    let routes = [
        "profile/avatar",
        "profile/banner",
        "channel/icon",
        "channel/banner",
        "message/image",
        "message/attachment",
        "message/video",
        "message/audio",
        "message/images",
        "message/attachments",
        "message/videos",
        "message/audios",
    ];
    let unauthorized = json!({"code": "UNAUTHORIZED", "message": "Unauthorized"});
    for route in routes {
        let field = if route.ends_with('s') {
            "files"
        } else {
            "file"
        };
        let body = form(vec![(field, "a.png", "image/png", png(100))]);
        assert_eq!(
            post_form(base, route, None, body).await,
            (401, unauthorized.clone()),
            "{route}"
        );
    }
    for (method, route) in [
        (Method::POST, "validate"),
        (Method::GET, "info"),
        (Method::POST, "presign"),
        (Method::POST, "complete"),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        let answer = call(method, format!("{base}/api/uploads/{route}"), None, body).await;
        assert_eq!(answer, (401, unauthorized.clone()), "{route}");
    }
    // A forged bearer is no better.
    let forged = User {
        id: "x".into(),
        email: "x".into(),
        token: "not-a-session".into(),
        cookie: String::new(),
    };
    let (status, _) = post_form(
        base,
        "profile/avatar",
        Some(&forged),
        form(vec![("file", "a.png", "image/png", png(10))]),
    )
    .await;
    assert_eq!(status, 401);
    drop_bucket(&stack).await;
}

/// Peak memory of the gateway and uploads while a 50 MiB file (the audio limit) streams
/// through. Run with `cargo nextest run -p hilo-e2e --run-ignored only -E 'test(peak_rss)' --no-capture`.
#[tokio::test]
#[ignore = "a measurement: prints numbers"]
async fn peak_rss_while_streaming_a_50_mib_upload() {
    let stack = stack().await;
    let base = stack.gateway();
    let ada = sign_up(base, "Ada").await;
    let (gateway, uploads) = (
        stack.pid("gateway-0").unwrap(),
        stack.pid("uploads").unwrap(),
    );
    // Warm both paths with a small upload so one-off allocations are not counted as growth.
    let (status, _) = post_form(
        base,
        "message/audio",
        Some(&ada),
        form(vec![("file", "a.mp3", "audio/mpeg", mp3(1000))]),
    )
    .await;
    assert_eq!(status, 200);
    let before = (peak_rss_kib(gateway), peak_rss_kib(uploads));
    let size = 50 * MIB;
    let started = Instant::now();
    let (status, body) = post_form(
        base,
        "message/audio",
        Some(&ada),
        endless_form("file", &mp3(64), Some(size)),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["size"], size);
    let after = (peak_rss_kib(gateway), peak_rss_kib(uploads));
    println!(
        "50 MiB upload in {elapsed:?}: peak RSS (VmHWM) gateway {} -> {} KiB (+{}), uploads {} -> {} KiB (+{})",
        before.0,
        after.0,
        after.0 - before.0,
        before.1,
        after.1,
        after.1 - before.1
    );
    drop_bucket(&stack).await;
}
